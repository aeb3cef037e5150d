export { Code, Reason, TaskflowError, type TaskflowErrorOptions } from "./errors.js";
export {
  MAX_TIMEOUT_MS,
  TASK_STATES,
  WORKER_STATES,
  isFinal,
  type AttemptRecord,
  type TaskOutcome,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type WorkerRecord,
  type WorkerState,
} from "./model.js";
export {
  FITS,
  definePolicy,
  doesNotFit,
  isPolicyDefinition,
  type DefinePolicyInit,
  type FilterResult,
  type PolicyContext,
  type PolicyDefinition,
  type PolicyLogger,
  type PolicyTask,
  type PolicyWorker,
  type RequeueDecision,
  type SchedulingPolicy,
} from "./policy.js";
export { PAGE_TOKEN_PATTERN, isWellFormedPageToken, type TaskCounts, type TaskPage, type TaskQuery, type TaskStore } from "./store.js";
export { TOKENS } from "./tokens.js";
export {
  systemClock,
  type Assignment,
  type Clock,
  type ClusterEvent,
  type EventBus,
  type Logger,
  type Plm,
  type Register,
  type Scheduler,
  type SubmitResult,
  type WorkerResult,
} from "./contracts.js";
export { DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT } from "./config.js";
export {
  AUTH_ROLES,
  configSchema,
  isLoopbackHost,
  tokenEntrySchema,
  type AuthRole,
  type TokenEntry,
  defaultConfig,
  describeSystemError,
  parseConfig,
  systemErrorCode,
  unusableConfig,
  type TaskflowConfig,
  type TaskflowConfigInput,
} from "./config.js";
export { CORE_VERSION } from "./version.js";
