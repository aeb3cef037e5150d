/** The PLM's client-facing task API over the in-process control plane: submit, get, cancel, watch. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, Reason, TaskflowError, type TaskRecord } from "@taskflow/core";
import { settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

async function rejectsWith(p: Promise<unknown>, code: Code, pattern: RegExp, reason?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TaskflowError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    if (reason) assert.equal(err.reason, reason);
    return true;
  });
}

describe("ProcessLifecycleManager", () => {
  describe("submit", () => {
    it("accepts all or none: one invalid spec rejects the whole call, naming its index", async () => {
      cp = await startControlPlane();
      await rejectsWith(cp.plm.submit([spec("ok"), spec("")], "c1"), Code.INVALID_ARGUMENT, /specs\[1\]\.type is required/);
      assert.equal((await cp.plm.counts()).queued, 0);
      assert.equal((await cp.plm.list({ pageSize: 10 }, ALL_TENANTS)).tasks.length, 0);
    });

    it("answers the same ID for a repeated idempotency key, within a call and across calls", async () => {
      cp = await startControlPlane();
      const first = await cp.plm.submit([spec("t", { idempotencyKey: "k" }), spec("t", { idempotencyKey: "k" })], "c1");
      assert.equal(first.ids[0], first.ids[1]);
      assert.deepEqual(first.deduplicated, [false, true]);
      const again = await cp.plm.submit([spec("t", { idempotencyKey: "k" })], "c2");
      assert.deepEqual(again, { ids: [first.ids[0]], deduplicated: [true] });
      assert.equal((await cp.plm.counts()).queued, 1);
    });

    it("answers a repeated request ID with the same task IDs, and refuses a request ID over 128 characters", async () => {
      cp = await startControlPlane();
      const first = await cp.plm.submit([spec("t"), spec("t")], "c1", "req-1");
      const repeat = await cp.plm.submit([spec("t"), spec("t")], "c1", "req-1");
      assert.deepEqual(repeat, { ids: first.ids, deduplicated: [true, true] });
      const other = await cp.plm.submit([spec("t")], "c2", "req-1");
      assert.notEqual(other.ids[0], first.ids[0], "another client's request ID names other tasks");
      await rejectsWith(cp.plm.submit([spec("t")], "c1", "r".repeat(129)), Code.INVALID_ARGUMENT, /request_id must be at most 128 characters, got 129/);
    });

    it("refuses tasks beyond the heap's capacity with RESOURCE_EXHAUSTED, counting every unfinished task", async () => {
      cp = await startControlPlane({ heapCapacity: 3 });
      cp.join("w1", ["t"], 1);
      await cp.plm.submit([spec("t"), spec("t")], "c1");
      await settle();
      await rejectsWith(
        cp.plm.submit([spec("t"), spec("t")], "c1"),
        Code.RESOURCE_EXHAUSTED,
        /task queue is full \(2 of 3 unfinished tasks; control\.taskHeapCapacity\)/,
        Reason.HEAP_FULL,
      );
      await cp.plm.submit([spec("t")], "c1");
    });

    it("refuses submits once stopped", async () => {
      cp = await startControlPlane();
      cp.plm.stop();
      await rejectsWith(cp.plm.submit([spec("t")], "c1"), Code.UNAVAILABLE, /shutting down/);
    });
  });

  describe("get", () => {
    it("says NOT_FOUND for an unknown ID and why a queued task waits", async () => {
      cp = await startControlPlane();
      await rejectsWith(cp.plm.get("nope", ALL_TENANTS), Code.NOT_FOUND, /task nope not found/);
      const { ids } = await cp.plm.submit([spec("t"), spec("t")], "c1");
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).waitingReason, 'no worker serves task type "t"');
      assert.equal((await cp.plm.get(ids[1]!, ALL_TENANTS)).waitingReason, 'no worker serves task type "t"; 1 task(s) ahead of it in fifo order');
    });
  });

  describe("cancel", () => {
    it("cancels a queued task and refuses a finished one with FAILED_PRECONDITION", async () => {
      cp = await startControlPlane();
      const { ids } = await cp.plm.submit([spec("t")], "c1");
      const cancelled = await cp.plm.cancel(ids[0]!, "", ALL_TENANTS);
      assert.equal(cancelled.state, "cancelled");
      assert.equal(cancelled.error, "cancelled by request");
      await rejectsWith(cp.plm.cancel(ids[0]!, "again", ALL_TENANTS), Code.FAILED_PRECONDITION, /already finished \(cancelled\)/);
    });
  });

  describe("watch", () => {
    it("sends the current state, then every change until the task is final", async () => {
      cp = await startControlPlane();
      cp.join("w1", ["t"]);
      const { ids } = await cp.plm.submit([spec("t")], "c1");
      const states: TaskRecord["state"][] = [];
      await cp.plm.watch(ids[0]!, (t) => states.push(t.state), ALL_TENANTS);
      await settle();
      cp.lifecycle.started("w1", ids[0]!, 1);
      cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
      assert.deepEqual(states, ["queued", "assigned", "running", "succeeded"]);
      const late: string[] = [];
      await cp.plm.watch(ids[0]!, (t) => late.push(t.state), ALL_TENANTS);
      assert.deepEqual(late, ["succeeded"]);
    });
  });
});
