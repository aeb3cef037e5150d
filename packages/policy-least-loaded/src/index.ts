/**
 * `least-loaded`: tasks in submission order; each goes to the worker with the lowest load
 * (running / slots), ties to the worker assigned least recently. The scheduler recomputes a
 * worker's key whenever its load changes, an O(log n) update in the worker heap.
 */
import { definePolicy, type PolicyTask, type SchedulingPolicy } from "@taskflow/core";
import { leastLoadedWorkerKey } from "./worker-key.js";

export { decodeLeastLoadedKey, leastLoadedWorkerKey, LOAD_LEVELS, MAX_LOAD } from "./worker-key.js";

/** The least-loaded policy has no options; any key in `scheduler.policyOptions` is rejected. */
export type LeastLoadedOptions = Record<string, never>;

/** Submission order. */
export function leastLoadedTaskKey(task: PolicyTask): number {
  return task.seq;
}

export const leastLoadedPolicy = definePolicy<LeastLoadedOptions>({
  name: "least-loaded",
  coreVersions: "^0.1.0",
  defaults: {},
  create: (): SchedulingPolicy => ({
    name: "least-loaded",
    taskKey: leastLoadedTaskKey,
    workerKey: leastLoadedWorkerKey,
  }),
});

export default leastLoadedPolicy;
