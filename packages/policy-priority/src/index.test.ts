import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Reason, TaskflowError, type PolicyTask } from "@taskflow/core";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker, runPolicyConformance } from "@taskflow/core/testing";
import priority, { PRIORITY_DEFAULTS, priorityPolicy, type PriorityOptions } from "./index.js";

runPolicyConformance(priority);
runPolicyConformance(priority, { options: { agingRate: 0 } });
runPolicyConformance(priority, { options: { agingRate: 5, requeueBoost: 0 } });

const T0 = Date.UTC(2026, 3, 1, 12);

function create(options?: Partial<PriorityOptions>) {
  return priority.create(priority.parseOptions(options), createPolicyTestContext(T0));
}

function order(tasks: PolicyTask[], options?: Partial<PriorityOptions>): string[] {
  const policy = create(options);
  return tasks
    .map((task) => ({ task, key: policy.taskKey(task) }))
    .sort((a, b) => a.key - b.key || a.task.seq - b.task.seq)
    .map(({ task }) => task.id);
}

function isOptionsError(pattern: RegExp) {
  return (e: unknown) => TaskflowError.is(e) && e.reason === Reason.POLICY_OPTIONS && pattern.test(e.message);
}

describe("priorityPolicy", () => {
  it("is the default export, named priority", () => {
    assert.equal(priority, priorityPolicy);
    assert.equal(priority.name, "priority");
  });

  describe("parseOptions", () => {
    it("applies the defaults", () => {
      assert.deepEqual(priority.parseOptions(undefined), { agingRate: 0.1, requeueBoost: 1 });
      assert.deepEqual(priority.parseOptions({ agingRate: 0 }), { ...PRIORITY_DEFAULTS, agingRate: 0 });
    });

    it("rejects a negative, infinite or too large aging rate", () => {
      for (const agingRate of [-0.1, Infinity, 5000]) {
        assert.throws(() => priority.parseOptions({ agingRate }), isOptionsError(/policy "priority": option "agingRate" must be between 0 and 1000/));
      }
    });

    it("rejects a negative requeue boost, a string and an unknown key", () => {
      assert.throws(() => priority.parseOptions({ requeueBoost: -1 }), isOptionsError(/"requeueBoost" must be a finite number/));
      assert.throws(() => priority.parseOptions({ agingRate: "fast" }), isOptionsError(/"agingRate" must be a number, got string "fast"/));
      assert.throws(() => priority.parseOptions({ aging: 1 }), isOptionsError(/unknown option "aging" \(known options: agingRate, requeueBoost\)/));
    });
  });

  describe("taskKey", () => {
    it("puts higher priorities first", () => {
      const tasks = [
        makePolicyTask({ id: "low", seq: 1, priority: 0, enqueuedAt: T0 }),
        makePolicyTask({ id: "high", seq: 2, priority: 5, enqueuedAt: T0 + 10 }),
        makePolicyTask({ id: "mid", seq: 3, priority: 2, enqueuedAt: T0 + 20 }),
      ];
      assert.deepEqual(order(tasks), ["high", "mid", "low"]);
      assert.deepEqual(order(tasks, { agingRate: 0 }), ["high", "mid", "low"]);
    });

    it("keeps FIFO within a priority", () => {
      const tasks = [3, 1, 2].map((seq) => makePolicyTask({ id: `t${seq}`, seq, priority: 1, enqueuedAt: T0 + seq }));
      assert.deepEqual(order(tasks), ["t1", "t2", "t3"]);
      assert.deepEqual(order(tasks, { agingRate: 0 }), ["t1", "t2", "t3"]);
    });

    it("lets a waiting task pass newer tasks Δ levels higher after Δ / agingRate seconds", () => {
      const low = makePolicyTask({ id: "low", seq: 1, priority: 0, enqueuedAt: T0 });
      const justInside = makePolicyTask({ id: "high-49s", seq: 2, priority: 5, enqueuedAt: T0 + 49_000 });
      const justOutside = makePolicyTask({ id: "high-51s", seq: 3, priority: 5, enqueuedAt: T0 + 51_000 });
      assert.deepEqual(order([low, justInside, justOutside], { agingRate: 0.1 }), ["high-49s", "low", "high-51s"]);
      assert.deepEqual(order([low, justInside, justOutside], { agingRate: 0 }), ["high-49s", "high-51s", "low"]);
    });

    it("tells apart tasks a millisecond apart at the largest aging rate", () => {
      const policy = create({ agingRate: 1000 });
      const a = makePolicyTask({ priority: 0, enqueuedAt: Date.UTC(2099, 0, 1) });
      const b = makePolicyTask({ priority: 0, enqueuedAt: Date.UTC(2099, 0, 1) + 1 });
      assert.ok(policy.taskKey(a) < policy.taskKey(b));
    });
  });

  describe("starvation bound", () => {
    it("runs a low-priority task within its aging bound under a stream of high-priority tasks", () => {
      // One slot; a task of priority 10 arrives every 500 ms and each runs 1 s, so without aging
      // the queue never empties of high-priority work.
      const agingRate = 0.5;
      const bound = 10 / agingRate;
      const run = (rate: number): number | undefined => {
        const policy = create({ agingRate: rate });
        const queue: { task: PolicyTask; key: number }[] = [];
        const push = (task: PolicyTask) => queue.push({ task, key: policy.taskKey(task) });
        let seq = 0;
        push(makePolicyTask({ id: "low", seq: ++seq, priority: 0, enqueuedAt: T0 }));
        for (let ms = 0; ms <= 120_000; ms += 500) {
          push(makePolicyTask({ id: `high-${ms}`, seq: ++seq, priority: 10, enqueuedAt: T0 + ms }));
          if (ms % 1000 === 0) {
            queue.sort((a, b) => a.key - b.key || a.task.seq - b.task.seq);
            const next = queue.shift();
            if (next?.task.id === "low") return ms / 1000;
          }
        }
        return undefined;
      };
      const startedAfter = run(agingRate);
      assert.ok(startedAfter !== undefined, "the low-priority task never ran");
      // Behind it: only high tasks that arrived within the bound, one per 500 ms, each served in 1 s.
      assert.ok(startedAfter <= 2 * bound + 1, `started after ${startedAfter}s, bound ${bound}s`);
      assert.ok(startedAfter >= bound, `started after ${startedAfter}s, before the high tasks it should wait for`);
      assert.equal(run(0), undefined, "without aging the stream starves it");
    });
  });

  describe("workerKey", () => {
    it("prefers the least-loaded worker, then the least recently assigned", () => {
      const policy = create();
      const quarter = makePolicyWorker({ slots: 8, running: 2, lastAssignedSeq: 50 });
      const half = makePolicyWorker({ slots: 2, running: 1, lastAssignedSeq: 1 });
      const halfRecent = makePolicyWorker({ slots: 4, running: 2, lastAssignedSeq: 60 });
      assert.ok(policy.workerKey(quarter) < policy.workerKey(half));
      assert.ok(policy.workerKey(half) < policy.workerKey(halfRecent));
      // Prefetched tasks count: 18 held on 6 slots (3x) is less loaded than 14 on 2 slots (7x).
      assert.ok(policy.workerKey(makePolicyWorker({ slots: 6, running: 18, lastAssignedSeq: 9 })) < policy.workerKey(makePolicyWorker({ slots: 2, running: 14, lastAssignedSeq: 1 })));
    });
  });

  describe("onRequeue", () => {
    it("raises a reassigned task by requeueBoost levels", () => {
      const task = makePolicyTask({ priority: 3, attempt: 2 });
      assert.deepEqual(create().onRequeue?.(task), { priority: 4 });
      assert.deepEqual(create({ requeueBoost: 2.5 }).onRequeue?.(task), { priority: 5.5 });
      assert.equal(create({ requeueBoost: 0 }).onRequeue?.(task), undefined);
    });

    it("moves the requeued task ahead of its former peers", () => {
      const policy = create({ agingRate: 0 });
      const peer = makePolicyTask({ seq: 1, priority: 3 });
      const requeued = makePolicyTask({ seq: 2, priority: policy.onRequeue?.(makePolicyTask({ priority: 3 }))?.priority ?? 3 });
      assert.ok(policy.taskKey(requeued) < policy.taskKey(peer));
    });
  });
});
