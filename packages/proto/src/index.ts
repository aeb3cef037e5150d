export * from "./gen/taskflow/v1/task_pb.js";
export * from "./gen/taskflow/v1/task_service_pb.js";
export * from "./gen/taskflow/v1/worker_service_pb.js";
export * from "./gen/taskflow/v1/cluster_service_pb.js";
export { StatusSchema, type Status } from "./gen/google/rpc/status_pb.js";
export { ErrorInfoSchema, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";
export { ERROR_DOMAIN, REASON_KEY, STATUS_DETAILS_KEY, encodeStatus, errorInfoOf, reasonFromStatusBytes, statusMessage, type ErrorReason } from "./status.js";
export { file_google_protobuf_timestamp, timestampDate, timestampFromDate, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
export { create, toBinary, fromBinary, toJson, fromJson } from "@bufbuild/protobuf";
