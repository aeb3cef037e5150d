/** Delayed tasks under a fake clock: due time, cancel, restart, order, and the submit's checks. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, MAX_DELAY_MS, TaskflowError } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";
import { SwitchableStore, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";
import { humanDuration } from "./due-time.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

async function rejectsInvalid(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TaskflowError, String(err));
    assert.equal(err.code, Code.INVALID_ARGUMENT);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("DelayedTasks", () => {
  describe("a task submitted with delayMs", () => {
    it("enters the queue at its due time, not a millisecond before, and says why it waits", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["echo"]);
      const submittedAt = cp.clock.now();
      const { ids } = await cp.plm.submit([spec("echo", { delayMs: 252_000 })], "c1");
      await settle();
      const waiting = await cp.plm.get(ids[0]!, ALL_TENANTS);
      assert.equal(waiting.state, "queued");
      assert.equal(waiting.notBefore, submittedAt + 252_000);
      assert.equal(waiting.waitingReason, `delayed until ${new Date(submittedAt + 252_000).toISOString()} (in 4m 12s)`);
      assert.equal(cp.delayed.size, 1);
      assert.equal(cp.table.inHeap, 0, "not in the task heap until due");

      await cp.advance(251_999, { heartbeats: true });
      assert.equal(w1.assigned.length, 0);
      assert.match((await cp.plm.get(ids[0]!, ALL_TENANTS)).waitingReason, /\(in 1ms\)$/);
      await cp.advance(1, { heartbeats: true });
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[0]]);
      assert.equal(cp.delayed.size, 0);
    });

    it("runs a runAt in the past now, and a runAt in the future at that time", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["echo"]);
      const now = cp.clock.now();
      const { ids } = await cp.plm.submit([spec("echo", { runAt: now - 60_000 }), spec("echo", { runAt: now + 1000 })], "c1");
      await settle();
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[0]]);
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).notBefore, 0);
      await cp.advance(1000, { heartbeats: true });
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[0], ids[1]]);
    });
  });

  describe("cancel", () => {
    it("cancels a delayed task: it leaves the due-time heap and never runs", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["echo"]);
      const { ids } = await cp.plm.submit([spec("echo", { delayMs: 5000 }), spec("echo", { delayMs: 6000 })], "c1");
      await settle();
      await cp.plm.cancel(ids[0]!, "not needed", ALL_TENANTS);
      const cancelled = await cp.plm.get(ids[0]!, ALL_TENANTS);
      assert.equal(cancelled.state, "cancelled");
      assert.equal(cancelled.error, "not needed");
      assert.equal(cp.delayed.size, 1);
      await cp.advance(10_000, { heartbeats: true });
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[1]], "only the task not cancelled ran");
      assert.equal(cp.delayed.size, 0);
    });
  });

  describe("after a restart", () => {
    it("reloads a delayed task into the due-time heap: it runs at its time, once", async () => {
      const store = new SwitchableStore(new MemoryTaskStore());
      const clock = new FakeClock();
      cp = await startControlPlane({ store, clock });
      const { ids } = await cp.plm.submit([spec("echo", { delayMs: 60_000 }), spec("echo")], "c1");
      await settle();
      const due = clock.now() + 60_000;
      await cp.stop();
      clock.advance(20_000);

      cp = await startControlPlane({ store, clock });
      assert.equal(cp.delayed.size, 1);
      const t = await cp.plm.get(ids[0]!, ALL_TENANTS);
      assert.equal(t.state, "queued");
      assert.equal(t.notBefore, due);
      assert.equal(t.waitingReason, `delayed until ${new Date(due).toISOString()} (in 40s)`);
      const w1 = cp.join("w1", ["echo"]);
      await settle();
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[1]], "the undelayed task runs at once");
      await cp.advance(39_999, { heartbeats: true });
      assert.equal(w1.assigned.length, 1);
      await cp.advance(1, { heartbeats: true });
      assert.deepEqual(w1.assigned.map((a) => a.taskId), [ids[1], ids[0]]);
      await cp.advance(120_000, { heartbeats: true });
      assert.equal(w1.assigned.filter((a) => a.taskId === ids[0]).length, 1, "it ran once");
    });

    it("runs at once a delayed task whose time passed while the control node was down", async () => {
      const store = new MemoryTaskStore();
      const clock = new FakeClock();
      cp = await startControlPlane({ store, clock });
      const { ids } = await cp.plm.submit([spec("echo", { delayMs: 1000 })], "c1");
      await settle();
      await cp.stop();
      clock.advance(5000);
      cp = await startControlPlane({ store, clock });
      assert.equal(cp.delayed.size, 0);
      const w1 = cp.join("w1", ["echo"]);
      await settle();
      assert.deepEqual(w1.assigned.map((a) => a.taskId), ids);
    });
  });

  describe("ordering", () => {
    it("releases 300 tasks submitted in shuffled order in due-time order, each at its time", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["echo"], 1000);
      const delays = Array.from({ length: 300 }, (_, i) => (i + 1) * 10);
      for (let i = delays.length - 1; i > 0; i--) {
        const j = (i * 7919) % (i + 1);
        [delays[i], delays[j]] = [delays[j]!, delays[i]!];
      }
      const { ids } = await cp.plm.submit(delays.map((delayMs) => spec("echo", { delayMs })), "c1");
      await settle();
      const byDelay = new Map(ids.map((id, i) => [id, delays[i]!]));
      for (let step = 1; step <= 300; step++) {
        await cp.advance(10, { heartbeats: true });
        assert.equal(w1.assigned.length, step, `after ${step * 10} ms`);
        assert.equal(byDelay.get(w1.assigned[step - 1]!.taskId), step * 10);
      }
    });
  });

  describe("submit checks", () => {
    it("refuses delay_ms with run_at_ms, a negative delay and one past 365 days, naming the field", async () => {
      cp = await startControlPlane();
      const now = cp.clock.now();
      await rejectsInvalid(cp.plm.submit([spec("t", { delayMs: 10, runAt: now + 10 })], "c1"), /^spec\.delay_ms and spec\.run_at_ms are exclusive/);
      await rejectsInvalid(cp.plm.submit([spec("t"), spec("t", { delayMs: -1 })], "c1"), /^specs\[1\]\.delay_ms must be 0 … 31536000000 \(365 days\), got -1/);
      await rejectsInvalid(cp.plm.submit([spec("t", { delayMs: MAX_DELAY_MS + 1 })], "c1"), /^spec\.delay_ms must be 0 … 31536000000/);
      await rejectsInvalid(cp.plm.submit([spec("t", { delayMs: 1.5 })], "c1"), /^spec\.delay_ms must be/);
      await rejectsInvalid(cp.plm.submit([spec("t", { runAt: -5 })], "c1"), /^spec\.run_at_ms must be epoch milliseconds/);
      await rejectsInvalid(cp.plm.submit([spec("t", { runAt: now + MAX_DELAY_MS + 1 })], "c1"), /^spec\.run_at_ms .* is more than 365 days ahead/);
      assert.equal((await cp.plm.counts()).queued, 0);
      await cp.plm.submit([spec("t", { delayMs: MAX_DELAY_MS }), spec("t", { runAt: now + MAX_DELAY_MS })], "c1");
      assert.equal(cp.delayed.size, 2);
    });
  });
});

describe("humanDuration", () => {
  it("gives the two largest units", () => {
    assert.equal(humanDuration(250), "250ms");
    assert.equal(humanDuration(252_000), "4m 12s");
    assert.equal(humanDuration(3_600_000), "1h 0m");
    assert.equal(humanDuration(90_061_000), "1d 1h");
  });
});
