export * from "./gen/taskflow/v1/task_pb.js";
export * from "./gen/taskflow/v1/task_service_pb.js";
export * from "./gen/taskflow/v1/worker_service_pb.js";
export * from "./gen/taskflow/v1/cluster_service_pb.js";
export { file_google_protobuf_timestamp, timestampDate, timestampFromDate, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
export { create, toBinary, fromBinary, toJson, fromJson } from "@bufbuild/protobuf";
