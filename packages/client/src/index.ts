export { TaskflowClient, type BulkFilter, type ClientOptions, type FlowTask, type SubmitOptions, type TaskRequest } from "./client.js";
export { type Outcome } from "./outcome.js";
export { TaskflowWorker } from "./worker.js";
export { type DependencyOutcome, type HandlerMap, type HeldResult, type TaskContext, type TaskHandler, type WorkerHooks, type WorkerOptions } from "./worker-options.js";
export { UnrecoverableError, wireError } from "./errors.js";
export { CLIENT_DEFAULTS, WORKER_DEFAULTS } from "./defaults.js";
export { jsonCodec, type Codec } from "./codec.js";
export { TaskState, taskStateName } from "@taskflow/proto";
export { type ConnectionOptions, type TlsOptions } from "./connection.js";
