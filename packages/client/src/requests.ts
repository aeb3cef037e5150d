/**
 * What the client sends: the options of a submit, a flow's tasks and a bulk filter, and how each
 * becomes its wire form (validated here, so a bad option fails the call before anything is sent).
 */
import { Code, TaskflowError } from "@taskflow/core/base";
import { DependencyFailure, type TaskState } from "@taskflow/proto";
import type { FastSpec } from "@taskflow/proto/fast";
import type { Codec } from "./codec.js";

/** Per-task options of a submit. */
export interface SubmitOptions {
  /** Higher runs first under the priority policy. @defaultValue 0 */
  priority?: number;
  /** Labels a worker must have. @defaultValue {} */
  requiredLabels?: Record<string, string>;
  /** Attempts before it fails for good. @defaultValue the cluster's control.defaultMaxAttempts */
  maxAttempts?: number;
  /** Per-attempt timeout in ms. @defaultValue the cluster's control.defaultTimeoutMs */
  timeoutMs?: number;
  /** A repeated key returns the existing task instead of a new one. @defaultValue none */
  idempotencyKey?: string;
  /** A hint for policies. @defaultValue 0 */
  expectedDurationMs?: number;
  /**
   * Delayed task: enters the queue this many ms after the control node accepts it, at most
   * 365 days (`MAX_DELAY_MS`). The wait survives control node restarts; `cancel` works meanwhile.
   * Not together with `runAt`. @defaultValue 0 (now)
   */
  delayMs?: number;
  /**
   * Delayed task: enters the queue at this time (a Date or epoch ms, at most 365 days ahead of
   * the control node's clock); a time in the past runs now. Not together with `delayMs`.
   * @defaultValue none (now)
   */
  runAt?: Date | number;
  /**
   * Task graph: IDs of tasks (of this tenant) it waits for, at most 1,000. It stays queued until
   * every one succeeded; its handler then gets their results (`context.dependencies`). An unknown
   * ID is refused with INVALID_ARGUMENT. @defaultValue none
   */
  dependsOn?: readonly string[];
  /**
   * What it does when a dependency fails or is cancelled: `"cancel"` it (its error names the
   * dependency), or `"run"` it anyway once every dependency finished. @defaultValue "cancel"
   */
  onDependencyFailure?: "cancel" | "run";
  /**
   * At most N tasks sharing this key run at once across the cluster, N from the first rule of
   * the control node's `concurrency` config that fits (no rule fits = no limit). 1-256 printable
   * characters. @defaultValue none
   */
  concurrencyKey?: string;
  /**
   * Each start of the task takes a token of this key's bucket, from the first rule of the
   * control node's `limits` config that fits (for example `{match: {rateLimitKey: "customer-*"},
   * rate: "10/s"}`: a bucket per key). 1-256 printable characters. @defaultValue none
   */
  rateLimitKey?: string;
  /**
   * Free-form string attributes: the handler sees them in its context (`ctx.metadata`), policies
   * and `get` see them. At most 64 entries, keys 1–128 characters, values at most 1024.
   * @defaultValue none
   */
  metadata?: Record<string, string>;
  /**
   * When the task should have finished (a Date or epoch ms): a hint for deadline-aware policies;
   * nothing cancels a task that misses it. At most 365 days ahead of the control node's clock.
   * @defaultValue none
   */
  deadline?: Date | number;
}

export interface TaskRequest extends SubmitOptions {
  type: string;
  payload?: unknown;
}

/**
 * One task of a `TaskflowClient.flow`: its `dependsOn` may name other tasks of the same
 * flow by their key, and existing tasks by ID.
 */
export type FlowTask = TaskRequest;

/** Which tasks `TaskflowClient.retry` or `TaskflowClient.cancelMany` act on; every field set narrows the match. */
export interface BulkFilter {
  /** Only tasks of this type. @defaultValue every type */
  type?: string;
  /** Only this tenant's tasks (admin tokens; a client token always acts on its own tenant). @defaultValue every tenant the token may see */
  tenant?: string;
  /** Retry: FAILED and/or CANCELLED. Cancel: QUEUED, ASSIGNED and/or RUNNING. @defaultValue retry: FAILED; cancel: all three */
  states?: TaskState[];
  /** Only tasks submitted at or after this time. @defaultValue no bound */
  createdAfter?: Date | number;
  /** Only tasks submitted before this time. @defaultValue no bound */
  createdBefore?: Date | number;
  /** Retry only: tasks that finished at or after this time. @defaultValue no bound */
  finishedAfter?: Date | number;
  /** Retry only: tasks that finished before this time. @defaultValue no bound */
  finishedBefore?: Date | number;
  /** Act on at most this many tasks (at most 10,000). @defaultValue 1000 */
  maxTasks?: number;
  /** Find the tasks and change nothing. @defaultValue false */
  dryRun?: boolean;
}

export function filterToWire(f: BulkFilter) {
  const ms = (t: Date | number | undefined) => BigInt(t === undefined ? 0 : typeof t === "number" ? t : t.getTime());
  return {
    type: f.type ?? "",
    tenant: f.tenant ?? "",
    states: f.states ?? [],
    createdAfterMs: ms(f.createdAfter),
    createdBeforeMs: ms(f.createdBefore),
    finishedAfterMs: ms(f.finishedAfter),
    finishedBeforeMs: ms(f.finishedBefore),
  };
}

/** The nodes of a `SubmitFlow` call: a `dependsOn` entry naming a key of `tasks` is that node; any other is an existing task's ID. */
export function flowNodes<K extends string>(codec: Codec, tasks: Readonly<Record<K, FlowTask>>, keys: readonly K[]): { spec: FastSpec; dependsOnNodes: number[] }[] {
  const index = new Map<string, number>(keys.map((k, i) => [k, i]));
  return keys.map((key) => {
    const t = tasks[key];
    const local: number[] = [];
    const external: string[] = [];
    for (const dep of t.dependsOn ?? []) {
      const i = index.get(dep);
      if (i === undefined) external.push(dep);
      else local.push(i);
    }
    return { spec: specOf(codec, t.type, t.payload, { ...t, dependsOn: external }), dependsOnNodes: local };
  });
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** The wire spec of a submit; its payload encoded with `codec`. */
export function specOf(codec: Codec, type: string, payload: unknown, o: SubmitOptions | undefined): FastSpec {
  const spec: FastSpec = {
    type,
    payload: codec.encode(payload),
    priority: o?.priority ?? 0,
    requiredLabels: o?.requiredLabels ?? NO_LABELS,
    maxAttempts: o?.maxAttempts ?? 0,
    timeoutMs: o?.timeoutMs ?? 0,
    idempotencyKey: o?.idempotencyKey ?? "",
    expectedDurationMs: o?.expectedDurationMs ?? 0,
    delayMs: o?.delayMs ? int64Ms(o.delayMs, "delayMs") : 0n,
    runAtMs: o?.runAt === undefined ? 0n : int64Ms(+o.runAt, "runAt"),
    dependsOn: o?.dependsOn?.length ? [...o.dependsOn] : NO_DEPENDENCIES,
    onDependencyFailure: o?.onDependencyFailure ? dependencyFailure(o.onDependencyFailure) : 0,
    concurrencyKey: o?.concurrencyKey ?? "",
    rateLimitKey: o?.rateLimitKey ?? "",
  };
  // Set only when given (no spread: this runs per task): most tasks have neither.
  if (o?.metadata) spec.metadata = o.metadata;
  if (o?.deadline !== undefined) spec.deadlineMs = int64Ms(+o.deadline, "deadline");
  return spec;
}

const NO_DEPENDENCIES: string[] = [];

/** The wire's `DependencyFailure` for an option value; anything else is refused here, naming the option. */
function dependencyFailure(mode: string): DependencyFailure {
  if (mode === "cancel") return DependencyFailure.CANCEL;
  if (mode === "run") return DependencyFailure.RUN_ANYWAY;
  throw new TaskflowError(Code.INVALID_ARGUMENT, `onDependencyFailure must be "cancel" or "run", got ${JSON.stringify(mode)}`);
}

/** A delay or a time in whole ms for an int64 field; anything else is refused here, naming the option. */
function int64Ms(value: number, option: string): bigint {
  if (!Number.isSafeInteger(value)) throw new TaskflowError(Code.INVALID_ARGUMENT, `${option} must be a whole number of milliseconds, got ${value}`);
  return BigInt(value);
}
