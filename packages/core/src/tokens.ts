/**
 * Dependency-injection tokens. `Symbol.for` so two copies of core agree on them, and explicit
 * tokens everywhere because tsx emits no decorator metadata. apps/node/src/control.ts
 * registers every one of them; that file is the whole control plane.
 */
export const TOKENS = {
  Config: Symbol.for("taskflow:Config"),
  Logger: Symbol.for("taskflow:Logger"),
  Clock: Symbol.for("taskflow:Clock"),
  Timers: Symbol.for("taskflow:Timers"),
  TaskStore: Symbol.for("taskflow:TaskStore"),
  SchedulingPolicy: Symbol.for("taskflow:SchedulingPolicy"),
  TaskHeap: Symbol.for("taskflow:TaskHeap"),
  /** Delayed tasks by due time, until they enter the task heap (an IndexedHeap keyed by epoch ms). */
  DueHeap: Symbol.for("taskflow:DueHeap"),
  WorkerHeap: Symbol.for("taskflow:WorkerHeap"),
  EventBus: Symbol.for("taskflow:EventBus"),
  /** The task table: live tasks, their heap ids and indexes, state counts (services TaskTable). */
  TaskTable: Symbol.for("taskflow:TaskTable"),
  /** The task state machine: assign, start, finish, retry, time out, requeue (services TaskLifecycle). */
  TaskLifecycle: Symbol.for("taskflow:TaskLifecycle"),
  /** Delayed tasks waiting for their due time, and the one timer for the earliest (services DelayedTasks). */
  DelayedTasks: Symbol.for("taskflow:DelayedTasks"),
  /** Task graphs: dependents waiting for their dependencies, and who waits on whom (services Dependencies). */
  Dependencies: Symbol.for("taskflow:Dependencies"),
  /** Rate and concurrency limits: buckets, per-key running counts, tasks held back (services Limits). */
  Limits: Symbol.for("taskflow:Limits"),
  /** Watchers and result subscribers (services ResultDelivery). */
  ResultDelivery: Symbol.for("taskflow:ResultDelivery"),
  /** Batched store writes, their retries and the store's health (`Durability`). */
  StoreWriteBehind: Symbol.for("taskflow:StoreWriteBehind"),
  /** Tenants' accounts: quotas, unfinished counts, result subscribers, metrics (services Tenants). */
  Tenants: Symbol.for("taskflow:Tenants"),
  /** Reloading unfinished tasks after a restart, and re-adopting them from returning workers. */
  Recovery: Symbol.for("taskflow:Recovery"),
  /** Reads the process's memory: V8 heap, resident set, the host's limit (`MemorySampler`). */
  MemorySampler: Symbol.for("taskflow:MemorySampler"),
  /** Refuses submits near the memory budget, `control.memoryBudget` (services MemoryAdmission). */
  MemoryAdmission: Symbol.for("taskflow:MemoryAdmission"),
  /** Where schedules are kept (`ScheduleStore`): the task store's own database. */
  ScheduleStore: Symbol.for("taskflow:ScheduleStore"),
  /** Recurring schedules: their API, the due-time heap of their firings (services Schedules). */
  Schedules: Symbol.for("taskflow:Schedules"),
  /** The client-facing task API (`Plm`). */
  Plm: Symbol.for("taskflow:Plm"),
  /** What the scheduler's loop is told between turns (`SchedulerInbox`). */
  SchedulerInbox: Symbol.for("taskflow:SchedulerInbox"),
  Scheduler: Symbol.for("taskflow:Scheduler"),
  Register: Symbol.for("taskflow:Register"),
  /** Every registered worker by ID, heap id and join order: lookups, pages, summary counts (services WorkerIndex). */
  WorkerIndex: Symbol.for("taskflow:WorkerIndex"),
  /** Open worker sessions by worker ID (`WorkerPorts`). */
  WorkerPorts: Symbol.for("taskflow:WorkerPorts"),
  WorkerSessions: Symbol.for("taskflow:WorkerSessions"),
  /** TLS material and accepted tokens of the control server (`ServerSecurity` in the services). */
  Security: Symbol.for("taskflow:Security"),
  /** This node's role among standby control nodes, for GetClusterState (`Leadership`). */
  Leadership: Symbol.for("taskflow:Leadership"),
} as const;
