/**
 * Where the task table lives. The PLM keeps live tasks in memory for speed and writes every
 * change through a store; a submit is acknowledged only after `insert` resolves, so an
 * acknowledged task survives a crash of the control node whenever the store is durable.
 *
 * Deliberately not in this contract: locking and leader election (a replicated store adds them
 * on its own side), and the task heap (order lives in shm-heap, rebuilt from `loadUnfinished`).
 */
import { Code, Reason, TaskflowError } from "./errors.js";
import type { TaskRecord, TaskState } from "./model.js";
import { SPEC_ATTRIBUTE_KEYS } from "./spec-attributes.js";

export interface TaskQuery {
  /** Only these states; empty or absent = all. */
  states?: readonly TaskState[];
  type?: string;
  clientId?: string;
  /** Only tasks of this tenant; absent = every tenant. */
  tenant?: string;
  /** Default 50, at most 1000. */
  pageSize?: number;
  /**
   * Opaque token from a previous page's `nextPageToken`. Empty or absent = the first page. A
   * store answers `INVALID_ARGUMENT` for a token it did not give out.
   */
  pageToken?: string;
}

/**
 * The form every page token has: 1-128 characters of the base64url alphabet, so that a token
 * passes through a URL, a shell and a CLI flag unchanged. `ListTasks` refuses any other string
 * before a store sees it, so a store's `nextPageToken` must match this, whatever it encodes.
 */
export const PAGE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** True when `token` has the form of a page token ({@link PAGE_TOKEN_PATTERN}). */
export function isWellFormedPageToken(token: string): boolean {
  return PAGE_TOKEN_PATTERN.test(token);
}

/** `TaskQuery.pageSize` when it is absent or 0. */
export const DEFAULT_LIST_PAGE_SIZE = 50;
/** The largest page a store returns: a larger `pageSize` is cut to it. */
export const MAX_LIST_PAGE_SIZE = 1000;

/** `TaskQuery.pageSize` as a store applies it; `INVALID_ARGUMENT` for a negative or fractional one. */
export function listPageSize(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return DEFAULT_LIST_PAGE_SIZE;
  if (!Number.isInteger(requested) || requested < 0) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `pageSize must be a whole number ≥ 0, got ${requested}`, { reason: Reason.STORE });
  }
  return Math.min(requested, MAX_LIST_PAGE_SIZE);
}

/**
 * The page token of a store that walks tasks newest first by `seq` (SQLite, Postgres): the last
 * seq of the page, base64url-encoded, so it is opaque and matches {@link PAGE_TOKEN_PATTERN}.
 */
export function seqPageToken(seq: number): string {
  return Buffer.from(`s${seq}`).toString("base64url");
}

/** The seq inside a {@link seqPageToken}; `INVALID_ARGUMENT` for any token no store gave out. */
export function seqOfPageToken(token: string): number {
  const text = Buffer.from(token, "base64url").toString();
  const seq = /^s\d{1,16}$/.test(text) ? Number(text.slice(1)) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, "page_token is not one this server gave out", { reason: Reason.STORE });
  }
  return seq;
}

/** What a page of {@link TaskStore.loadUnfinishedPage} leaves out. */
export interface UnfinishedPageFilter {
  /**
   * Leave out the plain queued tasks ({@link isPlainQueuedRecord}): a restart reads everything
   * else first to rebuild the policy's state, then the plain ones, which on a deep queue are
   * nearly all, in a second walk. @defaultValue false
   */
  skipPlainQueued?: boolean;
}

/**
 * A queued task with no worker, no not-before time and no submission attributes (no
 * dependencies, key, deadline, metadata…): one a restarted control node queues as it reads it.
 * The durable stores filter on the same columns.
 */
export function isPlainQueuedRecord(rec: Readonly<TaskRecord>): boolean {
  if (rec.state !== "queued" || rec.workerId !== "" || rec.notBefore !== 0) return false;
  // The stores' test: the attributes column is '' (encodeSpecAttributes writes '' when all are unset).
  for (const key of SPEC_ATTRIBUTE_KEYS) if (rec[key] !== undefined) return false;
  return true;
}

export interface TaskPage {
  tasks: TaskRecord[];
  /** Empty when this is the last page; otherwise matches {@link PAGE_TOKEN_PATTERN}. */
  nextPageToken: string;
  totalSize: number;
}

export type TaskCounts = Record<TaskState, number>;

export interface TaskStore {
  /** For logs and `cluster state`, for example `memory` or `sqlite`. */
  readonly kind: string;
  /** True when an acknowledged write survives a crash of this process. */
  readonly durable: boolean;
  /**
   * True when the store keeps the very record objects `insert` was given, so later changes to
   * them are already "saved" and the PLM skips `update` for them (the in-memory store).
   * @defaultValue false
   */
  readonly keepsRecords?: boolean;
  open(): Promise<void>;
  close(): Promise<void>;
  /** Persists new tasks; resolves once they are committed. */
  insert(tasks: readonly TaskRecord[]): Promise<void>;
  /** Persists the current state of existing tasks (whole records). */
  update(tasks: readonly TaskRecord[]): Promise<void>;
  get(id: string): Promise<TaskRecord | undefined>;
  /**
   * The task of `tenant` with this idempotency key. Keys are scoped per tenant: two tenants may
   * use the same key for different tasks. The empty key matches nothing.
   */
  findByIdempotencyKey(tenant: string, key: string): Promise<TaskRecord | undefined>;
  /** Newest first. */
  list(query: TaskQuery): Promise<TaskPage>;
  /** Every task not in a final state, in submission order: what a restarted control node resumes. */
  loadUnfinished(): Promise<TaskRecord[]>;
  /**
   * The unfinished tasks with a `seq` above `afterSeq`, in submission order, at most `limit`: the
   * same tasks as {@link loadUnfinished}, a page at a time, so that a control node restarting on
   * millions of queued tasks never holds them all as objects at once. Optional: recovery falls
   * back to `loadUnfinished` without it. A store should answer each page in time proportional to
   * the page (plus the rows it skips), not to everything unfinished.
   * @param filter what the page leaves out (see {@link UnfinishedPageFilter}). @defaultValue nothing
   */
  loadUnfinishedPage?(afterSeq: number, limit: number, filter?: UnfinishedPageFilter): Promise<TaskRecord[]>;
  /** The highest `seq` ever stored, so a restarted node continues the sequence. */
  maxSeq(): Promise<number>;
  /** Deletes finished tasks that finished before `beforeMs`; returns how many. */
  purgeFinished(beforeMs: number): Promise<number>;
  counts(): Promise<TaskCounts>;
}
