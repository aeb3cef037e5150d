/**
 * `fifo`: tasks run in submission order; workers take turns, the one assigned least recently
 * first, so work spreads round-robin across the cluster.
 */
import { definePolicy, type PolicyTask, type PolicyWorker, type SchedulingPolicy } from "@taskflow/core";

/** The fifo policy has no options; any key in `scheduler.policyOptions` is rejected. */
export type FifoOptions = Record<string, never>;

/**
 * Never-assigned workers sort below every assigned one, by join order: `joinSeq - 2^53` is exact
 * and negative for any join counter below 2^53, and assignment counters are positive.
 */
const NEVER_ASSIGNED_BASE = -(2 ** 53);

/** Submission order: a requeued task keeps its place at the front. */
export function fifoTaskKey(task: PolicyTask): number {
  return task.seq;
}

/**
 * Least recently assigned first. `lastAssignedSeq` comes from one cluster-wide counter, so
 * assigned workers never tie; workers that never had a task go first, in the order they joined.
 */
export function fifoWorkerKey(worker: PolicyWorker): number {
  if (worker.lastAssignedSeq > 0 && Number.isFinite(worker.lastAssignedSeq)) return worker.lastAssignedSeq;
  return NEVER_ASSIGNED_BASE + (Number.isFinite(worker.joinSeq) ? Math.max(0, worker.joinSeq) : 0);
}

export const fifoPolicy = definePolicy<FifoOptions>({
  name: "fifo",
  coreVersions: "^0.1.0",
  defaults: {},
  create: (): SchedulingPolicy => ({ name: "fifo", taskKey: fifoTaskKey, workerKey: fifoWorkerKey }),
});

export default fifoPolicy;
