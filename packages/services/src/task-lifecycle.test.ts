/**
 * The task lifecycle under a fake clock: retries and their backoff, attempt timeouts. No test
 * sleeps: time moves only when a test advances the clock.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS } from "@taskflow/core";
import { settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";
import { backoffMs } from "./task-lifecycle.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

describe("backoffMs", () => {
  it("doubles from 100 ms with jitter in the upper half, capped at 30 s", () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(30_000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoffMs(attempt);
        assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d} not in [${ceiling / 2}, ${ceiling}]`);
      }
    }
  });
});


describe("retries", () => {
  it("holds a failed attempt out of the queue for its backoff, then runs it again under a new epoch", async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 3 } } });
    const port = cp.join("w1", ["flaky"]);
    const { ids } = await cp.plm.submit([spec("flaky")], "c1");
    await settle();
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: false, result: undefined, error: "first" }]);
    const retrying = await cp.plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(retrying.state, "queued");
    const wait = retrying.notBefore - cp.clock.now();
    assert.ok(wait >= 50 && wait <= 100, `first backoff ${wait} ms, expected 50-100`);
    assert.match(retrying.waitingReason, /^retrying after attempt 1 failed: first$/);

    await cp.advance(wait - 1);
    assert.equal(port.assigned.length, 1, "not before its backoff is over");
    await cp.advance(1);
    assert.deepEqual(port.assigned.map((a) => [a.epoch, a.attempt]), [[1, 1], [2, 2]]);
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).notBefore, 0);

    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 2, ok: false, result: undefined, error: "second" }]);
    const second = await cp.plm.get(ids[0]!, ALL_TENANTS);
    const wait2 = second.notBefore - cp.clock.now();
    assert.ok(wait2 >= 100 && wait2 <= 200, `second backoff ${wait2} ms, expected 100-200`);
    await cp.advance(wait2);
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 3, ok: false, result: undefined, error: "third" }]);
    const failed = await cp.plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(failed.state, "failed");
    assert.equal(failed.error, "third");
    assert.deepEqual(failed.attempts.map((a) => a.error), ["first", "second", "third"]);
  });

  it("fails an unrecoverable attempt for good, with attempts left, and runs it no more", async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 5 } } });
    const port = cp.join("w1", ["strict"]);
    const { ids } = await cp.plm.submit([spec("strict")], "c1");
    await settle();
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: false, result: undefined, error: "no order ID", unrecoverable: true }]);
    const failed = await cp.plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(failed.state, "failed");
    assert.equal(failed.error, "no order ID");
    assert.equal(failed.notBefore, 0, "no backoff");
    assert.deepEqual(failed.attempts.map((a) => [a.attempt, a.error]), [[1, "no order ID"]]);
    await cp.advance(30_000);
    assert.equal(port.assigned.length, 1, "never assigned again");
  });

  it("does not run a task cancelled during its backoff", async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 3 } } });
    const port = cp.join("w1", ["flaky"]);
    const { ids } = await cp.plm.submit([spec("flaky")], "c1");
    await settle();
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: false, result: undefined, error: "boom" }]);
    await cp.plm.cancel(ids[0]!, "changed my mind", ALL_TENANTS);
    await cp.advance(30_000);
    assert.equal(port.assigned.length, 1);
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "cancelled");
    assert.equal(cp.clock.pending, 2, "only the liveness check and the purge are left");
  });
});


describe("timeouts", () => {
  it("fails an attempt its worker does not finish within timeoutMs + 1 s, tells the worker, and retries elsewhere", async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 2 } } });
    const port = cp.join("w1", ["slow"], 1);
    const { ids } = await cp.plm.submit([spec("slow", { timeoutMs: 5_000 })], "c1");
    await settle();
    cp.lifecycle.started("w1", ids[0]!, 1);
    // The worker stays alive meanwhile: only the task's deadline passes.
    await cp.advance(5_999, { heartbeats: true });
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "running", "not before timeoutMs + 1 s");
    await cp.advance(1, { heartbeats: true });
    assert.deepEqual(port.cancelled, [{ taskId: ids[0], epoch: 1, reason: "timed out after 5000 ms" }]);
    const task = await cp.plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(task.state, "queued");
    assert.equal(task.attempts[0]!.error, "timed out after 5000 ms");
    assert.equal(cp.entry("w1").record.running, 0, "its slot is free again");
    await cp.advance(task.notBefore - cp.clock.now(), { heartbeats: true });
    assert.equal(port.assigned.at(-1)?.epoch, 2);
  });

  it("uses control.defaultTimeoutMs for a task without its own, and a result in time clears the timer", async () => {
    cp = await startControlPlane({ config: { control: { defaultTimeoutMs: 1_000 } } });
    const port = cp.join("w1", ["t"]);
    const { ids } = await cp.plm.submit([spec("t")], "c1");
    await settle();
    assert.equal(port.assigned[0]!.timeoutMs, 0, "the worker applies its own default");
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await cp.advance(1_500, { heartbeats: true });
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded");
    assert.deepEqual(port.cancelled, []);
  });
});
