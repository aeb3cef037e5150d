/**
 * Lower-case names of the wire enums' values ("queued", "alive"), read from the generated enum
 * descriptors: a state added to the proto is named everywhere without a table to keep in step.
 */
import type { DescEnum } from "@bufbuild/protobuf";
import { WorkerStateSchema, type WorkerState } from "./gen/taskflow/v1/cluster_service_pb.js";
import { TaskStateSchema, type TaskState } from "./gen/taskflow/v1/task_pb.js";

/** Value → lower-case local name (`TASK_STATE_QUEUED` → "queued"), without the zero `UNSPECIFIED`. */
export function enumNames(schema: DescEnum): ReadonlyMap<number, string> {
  return new Map(schema.values.filter((v) => v.number !== 0).map((v) => [v.number, v.localName.toLowerCase()]));
}

const TASK_STATES = enumNames(TaskStateSchema);
const WORKER_STATES = enumNames(WorkerStateSchema);

/** The lower-case name of a wire task state, for example "queued"; "unspecified" for 0 or an unknown number. */
export function taskStateName(state: TaskState): string {
  return TASK_STATES.get(state) ?? "unspecified";
}

/** The lower-case name of a wire worker state, for example "alive"; "unknown" for 0 or an unknown number. */
export function workerStateName(state: WorkerState): string {
  return WORKER_STATES.get(state) ?? "unknown";
}
