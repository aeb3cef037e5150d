export { registerSchedulingParts } from "./control-parts.js";
export { ProcessLifecycleManager, idDeriver, type WaitReasons } from "./plm.js";
export { TaskTable, type LiveTask } from "./task-table.js";
export { TaskLifecycle, backoffMs } from "./task-lifecycle.js";
export { DelayedTasks } from "./delayed-tasks.js";
export { Dependencies, checkFlow, validateDependencies, type DependencyOutcome, type Doomed, type Readiness } from "./dependencies.js";
export { Limits, type ConcurrencyKey, type RateBucket, type TaskLimits } from "./limits.js";
export { Schedules, FIRING_RETRY_MS, type ScheduleInput } from "./schedules.js";
export { cronTiming, intervalTiming, planFirings, type FiringPlan, type Timing } from "./schedule-timing.js";
export { scheduleToWire } from "./schedule-service.js";
export { MemoryAdmission, QUEUED_TASK_BYTES, cgroupMemoryLimit, processMemorySampler, taskHeapCapacityOf, type MemoryUse } from "./memory-admission.js";
export { delayedUntil, humanDuration } from "./due-time.js";
export { ResultDelivery } from "./result-delivery.js";
export { Tenants, MAX_TENANT_LABELS, OTHER_LABEL, type TenantAccount } from "./tenants.js";
export { StoreWriteBehind } from "./store-write-behind.js";
export { Recovery, type Reconciled } from "./recovery.js";
export { MainScheduler } from "./scheduler.js";
export { LoopInbox } from "./scheduler-inbox.js";
export { WorkerRegister, type HelloInfo, type WorkerChanges, type WorkerEntry } from "./register.js";
export { WorkerIndex, type WorkerPage, type WorkerSummary } from "./worker-index.js";
export { DEFAULT_WORKER_PAGE, MAX_WORKER_PAGE } from "./cluster-state.js";
export { WorkerPortDirectory, type OutgoingAssignment, type PortLink, type WorkerSessionPort } from "./worker-ports.js";
export { ControlServer, toStatus } from "./server.js";
export { StandbyServer, notLeaderError, type StandbyServerOptions } from "./standby-server.js";
export { WorkerSession, WorkerSessions, type HelloCheck, type SessionTransport } from "./worker-sessions.js";
export { MemoryTaskStore } from "./memory-store.js";
export { LocalEventBus } from "./events.js";
export { validateSpec } from "./validation.js";
export { loadPolicy, type BuiltInPolicies } from "./policy-loader.js";
export {
  ANONYMOUS,
  Authenticator,
  ROLES_BY_METHOD,
  createToken,
  hashToken,
  type AuthFailure,
  type AuthFailureEvent,
  type Principal,
  type ServerSecurity,
  type TlsMaterial,
} from "./auth.js";
