/**
 * The control plane's components, as DESIGN.md names them. `services` implements them;
 * `apps/node` wires them with DI. They talk to each other only through these interfaces.
 */
import type { TaskOutcome, TaskRecord, TaskSpec, WorkerRecord } from "./model.js";
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
  /** The handler said the task must not run again: a failure is final, attempts left or not. */
  unrecoverable?: boolean;
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
  /** Validates and accepts tasks; resolves once they are committed to the store. All or none. */
  /**
   * Accepts tasks, all or none. With a `requestId`, a repeat of an accepted call (same client ID
   * and request ID) creates nothing and answers the same IDs, deduplicated.
   */
  submit(specs: readonly TaskSpec[], clientId: string, requestId?: string): Promise<SubmitResult>;
  /** Throws NOT_FOUND for an unknown ID. */
  get(taskId: string): Promise<TaskRecord>;
  cancel(taskId: string, reason: string): Promise<TaskRecord>;
  list(query: TaskQuery): Promise<TaskPage>;
  /** Calls `listener` on every change of the task until it is final; returns unsubscribe. */
  watch(taskId: string, listener: (task: TaskRecord) => void): Promise<() => void>;
  /** Streams outcomes of tasks submitted with `clientId`; returns unsubscribe. */
  subscribeResults(clientId: string, listener: (outcomes: readonly TaskOutcome[]) => void): () => void;
  /** A worker started running a task (fenced by epoch). */
  started(workerId: string, taskId: string, epoch: number): void;
  /** A worker reports finished attempts (fenced by epoch: stale ones are dropped). */
  completed(workerId: string, results: readonly WorkerResult[]): void;
  /** Puts a lost worker's tasks back in the queue, except those in `keep`; returns how many. */
  requeueWorkerTasks(workerId: string, reason: string, keep?: ReadonlySet<string>): number;
  counts(): Promise<Record<TaskRecord["state"], number>>;
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
