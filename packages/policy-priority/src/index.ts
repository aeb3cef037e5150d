/**
 * `priority`: higher priority first, FIFO within a priority, with aging so a low-priority task
 * cannot starve; a task taken back from a lost worker returns one level higher. Workers are
 * chosen least-loaded first, as in `least-loaded`.
 *
 * ## Aging without re-keying
 * A task's effective priority rises by `agingRate` levels for every second it waits:
 * `effective(t) = priority + agingRate * (t - enqueuedAt)`. Since `t` is the same for every queued
 * task, ordering by the highest effective priority at any moment is ordering by the static key
 * `agingRate * enqueuedAt - priority` (smallest first). The key is computed once, on enqueue, and
 * never needs a time-driven heap rebuild.
 *
 * **Bound**: a newer task with a priority `Δ` levels higher goes ahead of an older task only if it
 * arrived less than `Δ / agingRate` seconds after it. So a task waits behind newer higher-priority
 * tasks for at most `Δmax / agingRate` seconds, `Δmax` being the largest priority gap in use
 * (with the default 0.1 levels/s, 10 levels ahead wait at most 100 s). After that only tasks
 * already ahead of it and the cluster's capacity decide when it runs.
 */
import { definePolicy, type PolicyTask, type SchedulingPolicy } from "@taskflow/core";
// Among workers that fit, the least loaded goes first, exactly as under the least-loaded policy.
import { leastLoadedWorkerKey } from "@taskflow/policy-least-loaded";

export interface PriorityOptions {
  /**
   * How many priority levels a waiting task gains per second of waiting; 0 disables aging (strict
   * priority, where a stream of higher-priority tasks can starve a lower one forever). A task
   * waits at most `Δpriority / agingRate` seconds behind newer tasks `Δpriority` levels above it.
   * At most 1000.
   * @defaultValue 0.1
   */
  agingRate: number;
  /**
   * Priority levels added to a task taken back from a lost worker, so work that was already
   * running does not wait behind its peers again; 0 keeps the priority.
   * @defaultValue 1
   */
  requeueBoost: number;
}

export const PRIORITY_DEFAULTS: Readonly<PriorityOptions> = Object.freeze({ agingRate: 0.1, requeueBoost: 1 });

/** Most aging rate accepted: keeps a millisecond of enqueue time distinguishable in the key. */
const MAX_AGING_RATE = 1000;
/** Enqueue times are measured from here to keep keys small and precise. */
const AGING_EPOCH_MS = Date.UTC(2025, 0, 1);

/** The task heap key for these options: `agingRate * enqueuedAt(s) - priority`, smallest first. */
export function priorityTaskKey(task: PolicyTask, agingRate: number): number {
  const priority = Number.isFinite(task.priority) ? task.priority : 0;
  if (agingRate === 0) return -priority;
  return ((task.enqueuedAt - AGING_EPOCH_MS) / 1000) * agingRate - priority;
}

export const priorityPolicy = definePolicy<PriorityOptions>({
  name: "priority",
  coreVersions: "^0.1.0",
  defaults: { ...PRIORITY_DEFAULTS },
  validate: (options) => {
    if (!Number.isFinite(options.agingRate) || options.agingRate < 0 || options.agingRate > MAX_AGING_RATE) {
      return `option "agingRate" must be between 0 and ${MAX_AGING_RATE} levels per second, got ${options.agingRate}`;
    }
    if (!Number.isFinite(options.requeueBoost) || options.requeueBoost < 0) {
      return `option "requeueBoost" must be a finite number of levels, 0 or more, got ${options.requeueBoost}`;
    }
    return undefined;
  },
  create: ({ agingRate, requeueBoost }): SchedulingPolicy => ({
    name: "priority",
    taskKey: (task) => priorityTaskKey(task, agingRate),
    workerKey: leastLoadedWorkerKey,
    onRequeue: (task) => (requeueBoost === 0 ? undefined : { priority: task.priority + requeueBoost }),
  }),
});

export default priorityPolicy;
