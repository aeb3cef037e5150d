import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Reason, TaskflowError } from "@taskflow/core";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker, runPolicyConformance } from "@taskflow/core/testing";
import fifo, { fifoPolicy } from "./index.js";

runPolicyConformance(fifo);

describe("fifoPolicy", () => {
  it("is the default export, named fifo", () => {
    assert.equal(fifo, fifoPolicy);
    assert.equal(fifo.name, "fifo");
  });

  describe("parseOptions", () => {
    it("accepts no options", () => {
      assert.deepEqual(fifo.parseOptions(undefined), {});
      assert.deepEqual(fifo.parseOptions({}), {});
    });

    it("rejects any key, saying there are no options", () => {
      assert.throws(
        () => fifo.parseOptions({ agingRate: 1 }),
        (e: unknown) => TaskflowError.is(e) && e.reason === Reason.POLICY_OPTIONS && /unknown option "agingRate" \(known options: none\)/.test(e.message),
      );
    });
  });

  describe("taskKey", () => {
    const policy = fifo.create({}, createPolicyTestContext());

    it("orders tasks by submission, ignoring priority and enqueue time", () => {
      const tasks = [
        makePolicyTask({ seq: 3, priority: 9 }),
        makePolicyTask({ seq: 1, priority: 0, enqueuedAt: Date.UTC(2030, 0, 1) }),
        makePolicyTask({ seq: 2, priority: -3 }),
      ];
      const order = [...tasks].sort((a, b) => policy.taskKey(a) - policy.taskKey(b)).map((t) => t.seq);
      assert.deepEqual(order, [1, 2, 3]);
    });

    it("puts a requeued task back in its original place", () => {
      const requeued = makePolicyTask({ seq: 5, attempt: 2, enqueuedAt: Date.UTC(2026, 5, 1) });
      assert.ok(policy.taskKey(requeued) < policy.taskKey(makePolicyTask({ seq: 6 })));
    });
  });

  describe("workerKey", () => {
    const policy = fifo.create({}, createPolicyTestContext());

    it("prefers never-assigned workers in join order, then the least recently assigned", () => {
      const workers = [
        makePolicyWorker({ id: "recent", lastAssignedSeq: 900, joinSeq: 1 }),
        makePolicyWorker({ id: "new-late", lastAssignedSeq: 0, joinSeq: 7 }),
        makePolicyWorker({ id: "old", lastAssignedSeq: 3, joinSeq: 2 }),
        makePolicyWorker({ id: "new-early", lastAssignedSeq: 0, joinSeq: 4 }),
      ];
      const order = [...workers].sort((a, b) => policy.workerKey(a) - policy.workerKey(b)).map((w) => w.id);
      assert.deepEqual(order, ["new-early", "new-late", "old", "recent"]);
    });

    it("ignores load, so workers take turns", () => {
      const idle = makePolicyWorker({ running: 0, lastAssignedSeq: 10 });
      const busy = makePolicyWorker({ running: 3, lastAssignedSeq: 10 });
      assert.equal(policy.workerKey(idle), policy.workerKey(busy));
    });

    it("spreads consecutive tasks round-robin over equal workers", () => {
      const state = [1, 2, 3].map((joinSeq) => ({ joinSeq, lastAssignedSeq: 0 }));
      const picks: number[] = [];
      for (let seq = 1; seq <= 7; seq++) {
        const next = [...state].sort(
          (a, b) => policy.workerKey(makePolicyWorker(a)) - policy.workerKey(makePolicyWorker(b)),
        )[0];
        assert.ok(next);
        next.lastAssignedSeq = seq;
        picks.push(next.joinSeq);
      }
      assert.deepEqual(picks, [1, 2, 3, 1, 2, 3, 1]);
    });
  });
});
