export { TaskflowClient, taskStateName, type BulkFilter, type ClientOptions, type Outcome, type SubmitOptions, type TaskRequest } from "./client.js";
export { TaskflowWorker, type HandlerMap, type HeldResult, type TaskContext, type TaskHandler, type WorkerHooks, type WorkerOptions } from "./worker.js";
export { jsonCodec, type Codec } from "./codec.js";
export { TaskState } from "@taskflow/proto";
export { type ConnectionOptions, type TlsOptions } from "./connection.js";
