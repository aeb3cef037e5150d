/**
 * The dashboard's JSON API, as the control node serves it and the browser reads it. Types only:
 * the dashboard imports them without pulling Node code into the bundle. Times are epoch ms.
 */

export type TaskStateName = "queued" | "assigned" | "running" | "succeeded" | "failed" | "cancelled";
export type WorkerStateName = "alive" | "suspect" | "dead" | "draining";

export interface WorkerJson {
  id: string;
  host: string;
  pid: number;
  state: WorkerStateName;
  slots: number;
  running: number;
  labels: Record<string, string>;
  taskTypes: string[];
  lastHeartbeat: number;
  connectedAt: number;
}

/** A row of the task list. */
export interface TaskSummaryJson {
  id: string;
  type: string;
  state: TaskStateName;
  priority: number;
  attempt: number;
  workerId: string;
  createdAt: number;
  finishedAt: number;
}

export interface AttemptJson {
  attempt: number;
  epoch: number;
  workerId: string;
  startedAt: number;
  finishedAt: number;
  error: string;
}

/** Everything the task page shows. */
export interface TaskDetailJson extends TaskSummaryJson {
  seq: number;
  /** The tenant it belongs to (the dashboard shows every tenant's tasks). */
  tenant: string;
  clientId: string;
  epoch: number;
  maxAttempts: number;
  timeoutMs: number;
  requiredLabels: Record<string, string>;
  idempotencyKey: string;
  assignedAt: number;
  startedAt: number;
  notBefore: number;
  payloadBytes: number;
  /** The payload as text (UTF-8, cut at `TEXT_LIMIT` bytes). */
  payload: string;
  resultBytes: number;
  result: string;
  error: string;
  waitingReason: string;
  attempts: AttemptJson[];
  /** Task graph: its dependencies in `dependsOn` order (the first 50 with their state). */
  dependsOn: GraphLinkJson[];
  /** How many dependencies it has. */
  dependsOnCount: number;
  /** What it does when a dependency fails: "cancel" or "run"; "" without dependencies. */
  onDependencyFailure: string;
  /** Task graph: tasks waiting for this one now (the first 50 with their state). */
  dependents: GraphLinkJson[];
  /** How many tasks wait for this one now. */
  dependentCount: number;
}

/** A task linked in a graph, and its state ("unknown" when it cannot be read, such as purged). */
export interface GraphLinkJson {
  id: string;
  state: string;
}

export interface TaskListJson {
  tasks: TaskSummaryJson[];
  nextPageToken: string;
  total: number;
}

export type TaskCountsJson = Record<TaskStateName, number>;

/** A recurring schedule (ADR 0025), as `GET /api/schedules` lists it. */
export interface ScheduleJson {
  id: string;
  tenant: string;
  /** The task type each firing submits. */
  type: string;
  /** A cron expression, or "" for an interval schedule. */
  cron: string;
  /** The cron's IANA zone; "UTC" when none. */
  timezone: string;
  /** 0 for a cron schedule. */
  intervalMs: number;
  missed: "skip" | "run-once" | "catch-up";
  paused: boolean;
  /** 0 while paused. */
  nextFireAt: number;
  lastFireAt: number;
  lastTaskId: string;
  /** Why the pending firing was refused (it is retried every second); "" when it was not. */
  lastError: string;
}

export interface ScheduleListJson {
  schedules: ScheduleJson[];
}

/** One point of the charts: taken every second. Rates are per second over that second. */
export interface SampleJson {
  time: number;
  queued: number;
  running: number;
  submittedPerSec: number;
  succeededPerSec: number;
  failedPerSec: number;
}

/** Every worker counted, beside a list that holds at most `listed` of them (`dashboard.maxWorkersListed`). */
export interface WorkerCountsJson {
  total: number;
  alive: number;
  suspect: number;
  draining: number;
  /** Session lost, within the reconnect grace. */
  disconnected: number;
  slots: number;
  running: number;
  /** Most workers the lists carry: the first to join. */
  listed: number;
}

export interface ClusterJson {
  policy: string;
  counts: TaskCountsJson;
  /** Tasks in the task heap, tasks parked because no worker can take them now, and delayed tasks not yet due. */
  queue: { inHeap: number; parked: number; delayed: number };
  /** The first `workerCounts.listed` workers to join. */
  workers: WorkerJson[];
  workerCounts: WorkerCountsJson;
  history: SampleJson[];
  now: number;
}

/**
 * Server-sent events on `GET /api/events`:
 * - `stats`: a `StatsEventJson` every second (workers with their load, counts, the new sample);
 * - `worker`: a `WorkerJson` as soon as a worker joins, changes state or leaves;
 * - `tasks`: a `TasksEventJson` a few times a second with the tasks that changed since the last.
 */
export interface StatsEventJson {
  counts: TaskCountsJson;
  queue: { inHeap: number; parked: number; delayed: number };
  workers: WorkerJson[];
  workerCounts: WorkerCountsJson;
  sample: SampleJson;
}

export interface TasksEventJson {
  tasks: TaskSummaryJson[];
  /** Tasks that changed but were left out to keep the stream small; refetch the list when > 0. */
  omitted: number;
}

export interface ErrorJson {
  error: string;
  code: string;
}
