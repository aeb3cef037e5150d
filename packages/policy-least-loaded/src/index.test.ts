import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PolicyWorker } from "@taskflow/core";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker, runPolicyConformance } from "@taskflow/core/testing";
import leastLoaded, { decodeLeastLoadedKey, leastLoadedPolicy, leastLoadedWorkerKey, LOAD_LEVELS, MAX_LOAD } from "./index.js";

runPolicyConformance(leastLoaded);

const policy = leastLoaded.create({}, createPolicyTestContext());

function byKey(workers: PolicyWorker[]): string[] {
  return [...workers].sort((a, b) => policy.workerKey(a) - policy.workerKey(b)).map((w) => w.id);
}

describe("leastLoadedPolicy", () => {
  it("is the default export, named least-loaded", () => {
    assert.equal(leastLoaded, leastLoadedPolicy);
    assert.equal(leastLoaded.name, "least-loaded");
  });

  describe("parseOptions", () => {
    it("accepts no options and rejects any key", () => {
      assert.deepEqual(leastLoaded.parseOptions(undefined), {});
      assert.throws(() => leastLoaded.parseOptions({ weight: 2 }), /policy "least-loaded": unknown option "weight"/);
    });
  });

  describe("taskKey", () => {
    it("orders tasks by submission", () => {
      assert.ok(policy.taskKey(makePolicyTask({ seq: 1, priority: 0 })) < policy.taskKey(makePolicyTask({ seq: 2, priority: 9 })));
    });
  });

  describe("workerKey", () => {
    it("prefers the lowest running / slots, whatever the slot count", () => {
      const workers = [
        makePolicyWorker({ id: "half", slots: 8, running: 4, lastAssignedSeq: 1 }),
        makePolicyWorker({ id: "quarter", slots: 16, running: 4, lastAssignedSeq: 99 }),
        makePolicyWorker({ id: "idle", slots: 1, running: 0, lastAssignedSeq: 500 }),
        makePolicyWorker({ id: "full", slots: 2, running: 2, lastAssignedSeq: 0 }),
      ];
      assert.deepEqual(byKey(workers), ["idle", "quarter", "half", "full"]);
    });

    it("breaks ties of equal load to the least recently assigned", () => {
      const workers = [
        makePolicyWorker({ id: "recent", slots: 4, running: 2, lastAssignedSeq: 70 }),
        makePolicyWorker({ id: "earlier", slots: 2, running: 1, lastAssignedSeq: 12 }),
        makePolicyWorker({ id: "never", slots: 8, running: 4, lastAssignedSeq: 0 }),
      ];
      assert.deepEqual(byKey(workers), ["never", "earlier", "recent"]);
    });

    it("counts prefetched tasks beyond the slots: running / slots above 1", () => {
      // Two workers holding more than their slots (worker.prefetch): 14 on 2 slots is 7 times full,
      // 18 on 6 slots 3 times; the second is the less loaded one.
      const workers = [
        makePolicyWorker({ id: "small-7x", slots: 2, running: 14, lastAssignedSeq: 1 }),
        makePolicyWorker({ id: "big-3x", slots: 6, running: 18, lastAssignedSeq: 2 }),
        makePolicyWorker({ id: "full", slots: 4, running: 4, lastAssignedSeq: 3 }),
      ];
      assert.deepEqual(byKey(workers), ["full", "big-3x", "small-7x"]);
      const beyond = makePolicyWorker({ slots: 1, running: 100, lastAssignedSeq: 1 });
      const atMax = makePolicyWorker({ slots: 1, running: MAX_LOAD, lastAssignedSeq: 2 });
      assert.ok(policy.workerKey(beyond) < policy.workerKey(atMax), "loads above MAX_LOAD tie, then the least recently assigned");
    });

    it("keeps the tie-break exact for assignment counters far beyond 2^32", () => {
      const a = makePolicyWorker({ slots: 3, running: 1, lastAssignedSeq: 2 ** 40 + 1 });
      const b = makePolicyWorker({ slots: 3, running: 1, lastAssignedSeq: 2 ** 40 + 2 });
      const c = makePolicyWorker({ slots: 3, running: 2, lastAssignedSeq: 1 });
      assert.ok(policy.workerKey(a) < policy.workerKey(b));
      assert.ok(policy.workerKey(b) < policy.workerKey(c));
    });

    it("round-trips load and counter through decodeLeastLoadedKey", () => {
      const key = leastLoadedWorkerKey(makePolicyWorker({ slots: 4, running: 1, lastAssignedSeq: 123_456_789_012 }));
      const decoded = decodeLeastLoadedKey(key);
      assert.equal(decoded.lastAssignedSeq, 123_456_789_012);
      assert.equal(decoded.load, (Math.round((0.25 / MAX_LOAD) * LOAD_LEVELS) / LOAD_LEVELS) * MAX_LOAD);
      assert.ok(Math.abs(decoded.load - 0.25) < 1e-5);
    });

    it("stays finite for degenerate workers", () => {
      for (const worker of [
        makePolicyWorker({ slots: 0, running: 0 }),
        makePolicyWorker({ slots: 2, running: 5, lastAssignedSeq: 2 ** 60 }),
        makePolicyWorker({ slots: 2, running: Number.NaN, lastAssignedSeq: Number.NaN }),
      ]) {
        assert.ok(Number.isFinite(policy.workerKey(worker)));
      }
    });

    it("spreads tasks in proportion to slots", () => {
      const state = [
        { id: "s2", slots: 2, running: 0, lastAssignedSeq: 0, joinSeq: 1 },
        { id: "s4", slots: 4, running: 0, lastAssignedSeq: 0, joinSeq: 2 },
        { id: "s8", slots: 8, running: 0, lastAssignedSeq: 0, joinSeq: 3 },
      ];
      for (let seq = 1; seq <= 7; seq++) {
        const next = [...state].sort(
          (a, b) => policy.workerKey(makePolicyWorker(a)) - policy.workerKey(makePolicyWorker(b)) || a.joinSeq - b.joinSeq,
        )[0];
        assert.ok(next);
        next.running++;
        next.lastAssignedSeq = seq;
      }
      assert.deepEqual(
        state.map((w) => w.running),
        [1, 2, 4],
      );
    });
  });
});
