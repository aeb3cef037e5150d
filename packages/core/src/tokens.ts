/**
 * Dependency-injection tokens. `Symbol.for` so two copies of core agree on them, and explicit
 * tokens everywhere because tsx emits no decorator metadata.
 */
export const TOKENS = {
  Config: Symbol.for("taskflow:Config"),
  Logger: Symbol.for("taskflow:Logger"),
  Clock: Symbol.for("taskflow:Clock"),
  TaskStore: Symbol.for("taskflow:TaskStore"),
  SchedulingPolicy: Symbol.for("taskflow:SchedulingPolicy"),
  TaskHeap: Symbol.for("taskflow:TaskHeap"),
  WorkerHeap: Symbol.for("taskflow:WorkerHeap"),
  Plm: Symbol.for("taskflow:Plm"),
  Scheduler: Symbol.for("taskflow:Scheduler"),
  Register: Symbol.for("taskflow:Register"),
  EventBus: Symbol.for("taskflow:EventBus"),
  /** TLS material and accepted tokens of the control server (`ServerSecurity` in the services). */
  Security: Symbol.for("taskflow:Security"),
} as const;
