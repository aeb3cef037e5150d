/** The task and worker records every component shares. Times are epoch milliseconds; 0 = not yet. */

export const TASK_STATES = ["queued", "assigned", "running", "succeeded", "failed", "cancelled"] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** True for SUCCEEDED, FAILED and CANCELLED: a task in such a state never changes again. */
export function isFinal(state: TaskState): boolean {
  return state === "succeeded" || state === "failed" || state === "cancelled";
}

/**
 * The longest per-attempt timeout, in ms (about 23 days). Node's timers hold at most 2^31-1 ms
 * and fire at once past that, so a larger timeout would fail every attempt immediately; the
 * headroom below 2^31-1 covers the grace the control node adds to its backstop timer.
 */
export const MAX_TIMEOUT_MS = 2_000_000_000;

/**
 * The longest delay of a delayed task, in ms: 365 days. `delayMs` above it, or a `runAt` further
 * ahead, is refused; the due-time heap re-arms its one timer in steps below Node's 2^31-1 ms.
 */
export const MAX_DELAY_MS = 365 * 24 * 60 * 60 * 1000;

/**
 * Most dependencies one task may have (`TaskSpec.dependsOn`), and the most nodes of one flow.
 * Bounds the work of a submit's checks and the size of the assignment carrying their results.
 */
export const MAX_DEPENDENCIES = 1_000;

/**
 * What a dependent does when a dependency fails or is cancelled: `"cancel"` (the default) cancels
 * it, its error naming the dependency; `"run"` runs it anyway once every dependency finished.
 */
export type DependencyFailureMode = "cancel" | "run";

/** What a client asks to run. */
export interface TaskSpec {
  type: string;
  payload: Uint8Array;
  priority: number;
  requiredLabels: Readonly<Record<string, string>>;
  /** 0 means the cluster default. */
  maxAttempts: number;
  /** 0 means the cluster default; at most {@link MAX_TIMEOUT_MS}. */
  timeoutMs: number;
  idempotencyKey: string;
  expectedDurationMs: number;
  /**
   * Submit only (not stored): enter the queue this many ms after the submit; 0 or absent = now.
   * The record keeps the resolved due time in {@link TaskRecord.notBefore}.
   */
  delayMs?: number;
  /** Submit only (not stored): enter the queue at this epoch ms; 0, absent or past = now. */
  runAt?: number;
  /**
   * Free-form string attributes for handlers, policies and operators. Absent = none. Stored in
   * the attributes column (see `SPEC_ATTRIBUTE_KEYS`).
   */
  metadata?: Readonly<Record<string, string>>;
  /**
   * When the task should have finished, in epoch ms: a hint deadline-aware policies order by
   * (earliest deadline first); nothing cancels a task that misses it. Absent = none.
   */
  deadline?: number;
  /**
   * Task graph: IDs of tasks of the same tenant this one waits for (at most
   * {@link MAX_DEPENDENCIES}). It enters the queue once every one succeeded; its handler gets
   * their results. Absent = none. Stored in the attributes column.
   */
  dependsOn?: readonly string[];
  /** What it does when a dependency fails or is cancelled. Absent = `"cancel"`. Stored in the attributes column. */
  onDependencyFailure?: DependencyFailureMode;
  /**
   * Tasks sharing this key run at most N at a time across the cluster, N from the first
   * `concurrency` rule of the config whose match fits; no matching rule = no limit. Absent = none.
   * Stored in the attributes column.
   */
  concurrencyKey?: string;
  /**
   * The task's start takes a token of this key's bucket, the bucket from the first `limits` rule
   * whose match fits (a rule matching `rateLimitKey` keeps one bucket per key). Absent = none.
   * Stored in the attributes column.
   */
  rateLimitKey?: string;
  /**
   * Set by the control node on a task a schedule's firing created: the schedule's ID and the
   * firing time (epoch ms). Never taken from a client's submit. Absent = submitted directly.
   */
  schedule?: { readonly id: string; readonly at: number };
}

/** One attempt of a task on one worker. */
export interface AttemptRecord {
  attempt: number;
  epoch: number;
  workerId: string;
  startedAt: number;
  finishedAt: number;
  error: string;
}

/**
 * The tenant of every task submitted without authentication (no tokens configured), of tasks
 * stored before tenants existed, and of tokens whose entry names none.
 */
export const DEFAULT_TENANT = "default";

/**
 * Whose tasks a read may see: one tenant's (a client token's), or every tenant's (`ALL_TENANTS`:
 * admins, viewers and the dashboard, which operate the whole cluster).
 */
export type TenantScope = string | null;

/** The {@link TenantScope} of cluster-wide operators. */
export const ALL_TENANTS: TenantScope = null;

/** A task as the PLM and the store keep it. */
export interface TaskRecord extends TaskSpec {
  id: string;
  /** Submission order across the cluster; FIFO tie-break. */
  seq: number;
  /**
   * The tenant it belongs to: the submitter's credential's, {@link DEFAULT_TENANT} without
   * authentication. Fixed at submission; only that tenant (and operators) may see it.
   */
  tenant: string;
  clientId: string;
  state: TaskState;
  attempt: number;
  /** Fencing number, raised on every (re)assignment. */
  epoch: number;
  workerId: string;
  createdAt: number;
  assignedAt: number;
  startedAt: number;
  finishedAt: number;
  /**
   * Not before this epoch ms does the task enter the queue: a delayed task's due time (from the
   * submit's `delayMs`/`runAt`), or when a retry may run after its backoff. 0 = now.
   */
  notBefore: number;
  result: Uint8Array | undefined;
  error: string;
  waitingReason: string;
  attempts: AttemptRecord[];
}

export const WORKER_STATES = ["alive", "suspect", "dead", "draining"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** A worker as the Register keeps it. */
export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  state: WorkerState;
  slots: number;
  running: number;
  labels: Readonly<Record<string, string>>;
  taskTypes: ReadonlySet<string>;
  lastHeartbeat: number;
  connectedAt: number;
}

/** A finished task's outcome as delivered to clients. */
export interface TaskOutcome {
  taskId: string;
  state: TaskState;
  result: Uint8Array | undefined;
  error: string;
  attempt: number;
  workerId: string;
}
