/**
 * The control plane's components, as DESIGN.md names them. `services` implements them;
 * `apps/node` wires them with DI. They talk to each other only through these interfaces.
 */
import type { TaskOutcome, TaskRecord, TaskSpec, TaskState, TenantScope, WorkerRecord } from "./model.js";
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

/** The time every control-plane part reads, injected so tests can set it (see `FakeClock`). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** An opaque handle of a timer started through {@link Timers}. */
export interface TimerHandle {
  readonly __timerHandle?: never;
}

/**
 * Every delay the control plane waits for (retry backoff, timeouts, liveness checks, store-write
 * retries, purges) runs through these, injected, so a test drives them with a fake clock instead
 * of sleeping. Timers never keep the process alive (the system ones are unref'd).
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): TimerHandle;
  setInterval(callback: () => void, ms: number): TimerHandle;
  /** Stops a timeout or an interval; `undefined` and a handle that already fired are fine. */
  clear(handle: TimerHandle | undefined): void;
}

/** Node's timers, unref'd: a pending retry or check never holds a stopping process open. */
export const systemTimers: Timers = {
  setTimeout(callback, ms) {
    const t = setTimeout(callback, ms);
    t.unref();
    return t as TimerHandle;
  },
  setInterval(callback, ms) {
    const t = setInterval(callback, ms);
    t.unref();
    return t as TimerHandle;
  },
  clear(handle) {
    // clearTimeout also stops an interval in Node.
    if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
  },
};

/** One reading of the process's memory, in bytes. */
export interface MemorySample {
  /** V8 heap in use (`used_heap_size`), garbage not yet collected included. */
  readonly heapUsed: number;
  /** The V8 heap's limit (`heap_size_limit`): past it the process dies "out of memory". */
  readonly heapLimit: number;
  /** The process's resident set. */
  readonly rss: number;
  /** The memory the process may use: the host's, or its cgroup's `memory.max` when lower. */
  readonly systemLimit: number;
}

/** Reads the process's memory; injected so tests can play any memory pressure. */
export interface MemorySampler {
  sample(): MemorySample;
}

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

/** One task of a flow (`Plm.submitFlow`): its spec, and the flow's nodes it waits for by index. */
export interface FlowNode {
  spec: TaskSpec;
  /** Indices into the flow's nodes; added to `spec.dependsOn` as their task IDs. */
  dependsOnNodes: readonly number[];
}

/** A task's place in its graph now: what it waits for, and who waits for it. */
export interface TaskGraphView {
  /** Dependencies a queued task still waits for. */
  waitingOn: string[];
  /** Tasks waiting for this one now, at most 1,000 listed. */
  dependents: string[];
  /** How many tasks wait for this one now. */
  dependentCount: number;
}

/** A result a worker reports for one attempt. */
export interface WorkerResult {
  taskId: string;
  epoch: number;
  ok: boolean;
  result: Uint8Array | undefined;
  error: string;
  /** The handler said the task must not run again: a failure is final, attempts left or not. */
  unrecoverable?: boolean;
}

/** The work the scheduler hands a worker's session. */
export interface Assignment {
  task: TaskRecord;
  epoch: number;
}

/**
 * The client-facing task API of the Process Lifecycle Manager: submit, get, cancel, list,
 * watch, results. Behind it the PLM is parts (see docs/adr/0015-the-control-plane.md): the task
 * table, the task lifecycle, result delivery, store write-behind and recovery.
 */
export interface Plm {
  /**
   * Accepts tasks for `tenant`, all or none; resolves once they are committed to the store.
   * With a `requestId`, a repeat of an accepted call (same tenant, client ID and request ID)
   * creates nothing and answers the same IDs, deduplicated. Throws RESOURCE_EXHAUSTED (`TASKFLOW_ERR_QUOTA`) past the tenant's quota.
   */
  submit(specs: readonly TaskSpec[], clientId: string, requestId?: string, tenant?: string): Promise<SubmitResult>;
  /**
   * Accepts a task graph as {@link submit} does, all or none; a node's `dependsOnNodes` become
   * its `dependsOn`. INVALID_ARGUMENT for a cycle or an index out of range, naming the node.
   */
  submitFlow(nodes: readonly FlowNode[], clientId: string, requestId?: string, tenant?: string): Promise<SubmitResult>;
  /** The task's place in its graph now (empty for a task outside any); call after {@link get}. */
  graphOf(taskId: string): TaskGraphView;
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
  /**
   * Puts failed or cancelled tasks back in the queue with a fresh attempt budget (IDs: all or
   * none; NOT_FOUND as {@link get}, FAILED_PRECONDITION for a task in another state), or those
   * matching a filter. Returns the tasks retried; with `dryRun`, those that would be.
   */
  retry(target: readonly string[] | TaskFilter, options: BulkOptions, scope: TenantScope): Promise<TaskRecord[]>;
  /** Cancels the unfinished tasks matching `filter`; returns them (with `dryRun`, changes nothing). */
  cancelMany(filter: TaskFilter, reason: string, options: BulkOptions, scope: TenantScope): Promise<TaskRecord[]>;
  counts(): Promise<Record<TaskRecord["state"], number>>;
  /** Per-tenant counters for metrics, one entry per label (bounded; see {@link TenantUsage}). */
  tenantUsage(): TenantUsage[];
}

/** Which tasks a bulk retry or cancel acts on; every field set narrows the match. */
export interface TaskFilter {
  type?: string;
  /** One tenant's tasks; outside an all-tenants scope only the caller's own. */
  tenant?: string;
  /** Retry: failed and/or cancelled (default failed). Cancel: unfinished states (default all). */
  states?: readonly TaskState[];
  /** Epoch ms bounds, 0 or absent = none: created in [createdAfter, createdBefore), finished in [finishedAfter, finishedBefore). */
  createdAfter?: number;
  createdBefore?: number;
  finishedAfter?: number;
  finishedBefore?: number;
}

/** How far a bulk call goes. */
export interface BulkOptions {
  /**
   * Act on at most this many tasks (filters only).
   * @defaultValue 1000 ({@link BULK_DEFAULT_MAX}); at most {@link BULK_LIMIT}
   */
  maxTasks?: number;
  /**
   * Find the tasks and change nothing.
   * @defaultValue false
   */
  dryRun?: boolean;
}

/** The default of {@link BulkOptions.maxTasks}. */
export const BULK_DEFAULT_MAX = 1000;
/** The most tasks one bulk call acts on (and the most IDs one retry names). */
export const BULK_LIMIT = 10_000;

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

/** What workers report about their tasks, fenced by epoch (stale reports are dropped). */
export interface TaskReports {
  /** A worker started running a task. */
  started(workerId: string, taskId: string, epoch: number): void;
  /** A worker reports finished attempts. */
  completed(workerId: string, results: readonly WorkerResult[]): void;
  /** A draining worker hands back tasks it never started: they run elsewhere, not counted as an attempt. */
  handBack(workerId: string, tasks: readonly { taskId: string; epoch: number }[]): number;
}

/** The task lifecycle, as the Register sees it when a worker is lost. */
export interface LostWorkerTasks {
  /** Requeues a lost worker's tasks, except those in `keep` (or fails those out of attempts); returns how many. */
  requeueWorkerTasks(workerId: string, reason: string, keep?: ReadonlySet<string>): number;
}

/** How the control plane reaches a worker's open session, by worker ID. */
export interface WorkerPorts {
  /** Tells the worker to stop a task it runs; nothing happens when it has no open session. */
  cancel(workerId: string, taskId: string, epoch: number, reason: string): void;
}

/**
 * What the scheduler's loop is told between turns. Parts below the scheduler (the task
 * lifecycle, the Register, store write-behind) only note what changed; the scheduler acts on it
 * in its next turn, so no part below it calls up into it.
 */
export interface SchedulerInbox {
  /** Something changed that may let the scheduler assign (tasks queued, the store writable again): run a turn soon. */
  wake(): void;
  /** `count` tasks left a worker's hands (finished, cancelled, timed out, handed back): free their slots. */
  released(workerId: string, count: number): void;
}

/** Whether the task store takes writes; while it does not, the node takes no new work. */
export interface StoreHealth {
  /** The store's kind, for example `sqlite`. */
  kind: string;
  writable: boolean;
  /** The last write error while not writable, else "". */
  error: string;
  /** Since when (ms since the epoch) it is in this state; 0 = since the start. */
  since: number;
  /** Writes that failed since the start. */
  failedWrites: number;
}

/** Store write-behind as the rest of the control plane sees it: durability and health. */
export interface Durability {
  /**
   * Runs `callback` once every change made so far is durable in the store (results are
   * acknowledged to workers, and assignments sent, only then).
   */
  afterDurable(callback: () => void): void;
  /** True with a durable store that keeps copies: assignments go out only once stored (ADR 0011). */
  readonly assignmentsWaitForStore: boolean;
  /** False while store writes fail: the scheduler then assigns nothing. */
  readonly storeWritable: boolean;
  storeHealth(): StoreHealth;
  /** Calls `listener` whenever the store stops or starts taking writes; returns the unsubscribe. */
  onStoreHealth(listener: (health: StoreHealth) => void): () => void;
  /**
   * The newest record of a task whose change is not stored yet (waiting, or in a write in flight),
   * else undefined: a task that just finished has left the task table, and the store still holds
   * its previous state until the write lands.
   */
  unsaved?(taskId: string): TaskRecord | undefined;
}

/** This control node's place among standby control nodes (`ha`, ADR 0028), as GetClusterState shows it. */
export interface LeadershipState {
  /** `leader` or `standby`; `single` without `ha.enabled`. */
  role: "leader" | "standby" | "single";
  /** The lease epoch this node leads with (leader), or the one it last saw (standby); 0 when single. */
  epoch: number;
  /** The leader's advertised address, when one leads ("" when unknown or single). */
  leader: string;
}

/** Where the control server reads {@link LeadershipState} (registered as `TOKENS.Leadership`). */
export interface Leadership {
  current(): LeadershipState;
}

/** The Main Scheduler: pops the task heap, picks a worker through the policy, dispatches. */
export interface Scheduler {
  readonly policyName: string;
  start(): void;
  stop(): Promise<void>;
}

/** The Register: workers, their sessions, heartbeats and liveness. */
export interface Register {
  workers(): WorkerRecord[];
  get(workerId: string): WorkerRecord | undefined;
  /** Stop sending it tasks, let running ones finish, then end its session. */
  drain(workerId: string): WorkerRecord;
}
