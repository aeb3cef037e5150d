/**
 * The control plane's components, as DESIGN.md names them. `services` implements them;
 * `apps/node` wires them with DI. They talk to each other only through these interfaces.
 */
import type { TaskOutcome, TaskRecord, TaskSpec, TenantScope, WorkerRecord } from "./model.js";
import type { TaskPage, TaskQuery } from "./store.js";

/** A pino-compatible logger subset. */
export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Every task transition and worker change, for watchers and monitoring. */
export type ClusterEvent =
  | { readonly kind: "task"; readonly time: number; readonly task: TaskRecord }
  | { readonly kind: "worker"; readonly time: number; readonly worker: WorkerRecord };

export interface EventBus {
  publish(event: ClusterEvent): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: (event: ClusterEvent) => void): () => void;
  /** True when anyone listens; lets hot paths skip building events. */
  readonly hasSubscribers: boolean;
}

export interface SubmitResult {
  ids: string[];
  /** Per task: true when it names an existing task (same idempotency key, or a repeated request ID). */
  deduplicated: boolean[];
}

/** A result a worker reports for one attempt. */
export interface WorkerResult {
  taskId: string;
  epoch: number;
  ok: boolean;
  result: Uint8Array | undefined;
  error: string;
}

/** The work the scheduler hands a worker's session. */
export interface Assignment {
  task: TaskRecord;
  epoch: number;
}

/**
 * The Process Lifecycle Manager: task IDs, the task table and its state machine, the task heap,
 * the task-to-worker mapping, result delivery and retries.
 */
export interface Plm {
  /**
   * Accepts tasks for `tenant`, all or none. With a `requestId`, a repeat of an accepted call
   * (same tenant, client ID and request ID) creates nothing and answers the same IDs,
   * deduplicated. Throws RESOURCE_EXHAUSTED (`TASKFLOW_ERR_QUOTA`) past the tenant's quota.
   */
  submit(specs: readonly TaskSpec[], clientId: string, requestId?: string, tenant?: string): Promise<SubmitResult>;
  /** Throws NOT_FOUND for an unknown ID, and for a task outside `scope` (its existence is not revealed). */
  get(taskId: string, scope: TenantScope): Promise<TaskRecord>;
  /** Throws NOT_FOUND as {@link get} does. */
  cancel(taskId: string, reason: string, scope: TenantScope): Promise<TaskRecord>;
  /** Tasks in `scope` only, whatever `query.tenant` says when `scope` is one tenant. */
  list(query: TaskQuery, scope: TenantScope): Promise<TaskPage>;
  /** Calls `listener` on every change of the task until it is final; returns unsubscribe. NOT_FOUND as {@link get}. */
  watch(taskId: string, listener: (task: TaskRecord) => void, scope: TenantScope): Promise<() => void>;
  /** Streams outcomes of tasks `tenant` submitted with `clientId`; returns unsubscribe. */
  subscribeResults(clientId: string, listener: (outcomes: readonly TaskOutcome[]) => void, tenant?: string): () => void;
  /** A worker started running a task (fenced by epoch). */
  started(workerId: string, taskId: string, epoch: number): void;
  /** A worker reports finished attempts (fenced by epoch: stale ones are dropped). */
  completed(workerId: string, results: readonly WorkerResult[]): void;
  /** Puts a lost worker's tasks back in the queue, except those in `keep`; returns how many. */
  requeueWorkerTasks(workerId: string, reason: string, keep?: ReadonlySet<string>): number;
  counts(): Promise<Record<TaskRecord["state"], number>>;
  /** Per-tenant counters for metrics, one entry per label (bounded; see {@link TenantUsage}). */
  tenantUsage(): TenantUsage[];
}

/**
 * One metrics label's share of the work. Tenants named in `tenants.quotas` or by a token (and
 * `default`) have their own label, at most 100 of them; every other tenant counts under
 * `other`, so a store full of old tenants cannot blow up the number of series.
 */
export interface TenantUsage {
  /** The tenant's name, or `other`. */
  label: string;
  /** Tasks accepted since the start. */
  submitted: number;
  /** Tasks accepted and not finished now (what `maxUnfinishedTasks` limits). */
  unfinished: number;
  /** Submits refused by `maxUnfinishedTasks` since the start (tasks, not calls). */
  refusedUnfinished: number;
  /** Submits refused by `submitsPerSecond` since the start (tasks, not calls). */
  refusedRate: number;
}

/** The Main Scheduler: pops the task heap, picks a worker through the policy, dispatches. */
export interface Scheduler {
  readonly policyName: string;
  start(): void;
  stop(): Promise<void>;
  /** Something changed (a task queued, a slot freed, a worker joined): run a loop turn soon. */
  wake(): void;
}

/** The Register: workers, their sessions, heartbeats and liveness. */
export interface Register {
  workers(): WorkerRecord[];
  get(workerId: string): WorkerRecord | undefined;
  /** Stop sending it tasks, let running ones finish, then end its session. */
  drain(workerId: string): WorkerRecord;
}
