/** Rate and concurrency limits under a fake clock: refill timing, park and release order, exact counts. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, TaskflowError, type TaskflowConfigInput } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";
import { SwitchableStore, settle, spec, startControlPlane, type RecordingPort, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

const ids = (port: RecordingPort) => port.assigned.map((a) => a.taskId);

/** Tasks of `key` a worker holds now, from the table (what the limit must never exceed). */
function withWorker(c: TestControlPlane, key: string): number {
  let n = 0;
  for (const live of c.table.liveTasks()) {
    if (live.rec.concurrencyKey === key && (live.rec.state === "assigned" || live.rec.state === "running")) n++;
  }
  return n;
}

function finish(c: TestControlPlane, workerId: string, taskId: string, ok = true): void {
  const rec = c.table.get(taskId)!.rec;
  c.lifecycle.completed(workerId, [{ taskId, epoch: rec.epoch, ok, result: undefined, error: ok ? "" : "boom" }]);
}

const perCustomer: TaskflowConfigInput = { concurrency: [{ match: { concurrencyKey: "customer-*" }, max: 2 }] };

describe("Limits", () => {
  describe("concurrency", () => {
    it("runs at most max tasks per key, without holding back other keys or unkeyed tasks behind them", async () => {
      cp = await startControlPlane({ config: perCustomer });
      const w1 = cp.join("w1", ["echo"], 20);
      const { ids: a } = await cp.plm.submit([1, 2, 3, 4].map(() => spec("echo", { concurrencyKey: "customer-a" })), "c1");
      const { ids: rest } = await cp.plm.submit([spec("echo", { concurrencyKey: "customer-b" }), spec("echo"), spec("echo", { concurrencyKey: "other" })], "c1");
      await settle();
      assert.deepEqual(ids(w1), [a[0], a[1], ...rest], "two of customer-a; customer-b, an unkeyed task and a key no rule matches all run");
      const held = await cp.plm.get(a[2]!, ALL_TENANTS);
      assert.equal(held.state, "queued");
      assert.equal(held.waitingReason, "concurrency key customer-a at its limit 2 (2 running)");
      assert.equal(held.concurrencyKey, "customer-a");

      finish(cp, "w1", a[0]!);
      await settle();
      assert.deepEqual(ids(w1).slice(-1), [a[2]], "the next of the key, in order, when one finishes");
      assert.equal(withWorker(cp, "customer-a"), 2);
      finish(cp, "w1", a[1]!, false); // a failed attempt leaves its worker (a retry waits out a backoff)
      await settle();
      assert.deepEqual(ids(w1).slice(-1), [a[3]]);
      assert.equal(withWorker(cp, "customer-a"), 2, "the retry of a[1] waits: a[2] and a[3] hold the slots");
      await cp.advance(60_000, { heartbeats: true });
      assert.equal(withWorker(cp, "customer-a"), 2, "still two after the backoff");
    });

    it("frees the slot of a cancelled task, running or waiting, exactly once", async () => {
      cp = await startControlPlane({ config: perCustomer });
      const w1 = cp.join("w1", ["echo"], 20);
      const { ids: a } = await cp.plm.submit([1, 2, 3, 4, 5].map(() => spec("echo", { concurrencyKey: "customer-a" })), "c1");
      await settle();
      assert.deepEqual(ids(w1), [a[0], a[1]]);
      await cp.plm.cancel(a[2]!, "not needed", ALL_TENANTS); // a waiting one: gives up its place
      await cp.plm.cancel(a[0]!, "not needed", ALL_TENANTS); // a running one: frees its slot
      await cp.plm.cancel(a[0]!, "twice", ALL_TENANTS).catch((err: unknown) => assert.equal((err as TaskflowError).code, Code.FAILED_PRECONDITION));
      await settle();
      assert.deepEqual(ids(w1), [a[0], a[1], a[3]], "the cancelled waiter is skipped");
      assert.equal(cp.limits.waiting, 1, "a[4] waits; the cancelled one is not counted");
      assert.equal(withWorker(cp, "customer-a"), 2);
      finish(cp, "w1", a[1]!);
      finish(cp, "w1", a[3]!);
      await settle();
      assert.deepEqual(ids(w1), [a[0], a[1], a[3], a[4]]);
      finish(cp, "w1", a[4]!);
      await settle();
      assert.deepEqual(cp.limits.sizes.keys, 0, "a key with nothing bound to it is dropped");
    });

    it("counts exactly across a lost worker: its tasks run again elsewhere, never more than max at once", async () => {
      cp = await startControlPlane({ config: { ...perCustomer, liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000 } } });
      const w1 = cp.join("w1", ["echo"], 20);
      const { ids: a } = await cp.plm.submit([1, 2, 3, 4].map(() => spec("echo", { concurrencyKey: "customer-a" })), "c1");
      await settle();
      assert.deepEqual(ids(w1), [a[0], a[1]]);
      const w2 = cp.join("w2", ["echo"], 20);
      // w1 falls silent; w2 keeps heartbeating.
      for (let t = 0; t < 3_000; t += 500) {
        cp.register.heartbeat(cp.entry("w2"), cp.entry("w2").sent);
        await cp.advance(500);
      }
      assert.equal([...cp.workers.entries()].some((e) => e.record.id === "w1" && e.record.state !== "dead"), false, "w1 is gone");
      // The slots w1's tasks free go to the tasks waiting for them; w1's own go back in line.
      assert.deepEqual(ids(w2), [a[2], a[3]]);
      assert.equal(withWorker(cp, "customer-a"), 2);
      assert.match((await cp.plm.get(a[0]!, ALL_TENANTS)).waitingReason, /^concurrency key customer-a at its limit 2 \(2 running\)$/);
      finish(cp, "w2", a[2]!);
      await settle();
      assert.deepEqual(ids(w2), [a[2], a[3], a[0]]);
      assert.equal(withWorker(cp, "customer-a"), 2);
    });

    it("after a restart counts the tasks still with a worker until they are settled", async () => {
      const store = new SwitchableStore(new MemoryTaskStore());
      const clock = new FakeClock();
      cp = await startControlPlane({ store, clock, config: perCustomer });
      cp.join("w1", ["echo"], 20);
      const { ids: a } = await cp.plm.submit([1, 2].map(() => spec("echo", { concurrencyKey: "customer-a" })), "c1");
      await settle();
      cp.lifecycle.started("w1", a[0]!, 1);
      cp.lifecycle.started("w1", a[1]!, 1);
      await settle();
      await cp.stop();

      cp = await startControlPlane({ store, clock, config: perCustomer });
      const w2 = cp.join("w2", ["echo"], 20);
      const { ids: b } = await cp.plm.submit([spec("echo", { concurrencyKey: "customer-a" })], "c1");
      await settle();
      assert.deepEqual(ids(w2), [], "w1 may still run both: the new one waits");
      assert.equal((await cp.plm.get(b[0]!, ALL_TENANTS)).waitingReason, "concurrency key customer-a at its limit 2 (2 running)");
      const w1 = cp.join("w1", ["echo"], 20);
      const back = cp.recovery.reconcile("w1", [
        { taskId: a[0]!, epoch: 1 },
        { taskId: a[1]!, epoch: 1 },
      ]);
      assert.equal(back.adopted, 2);
      await settle();
      assert.deepEqual([...ids(w1), ...ids(w2)], [], "re-adopted, both still count");
      finish(cp, "w1", a[0]!);
      await settle();
      assert.deepEqual([...ids(w1), ...ids(w2)], [b[0]]);
    });

    it("after a restart frees the slot of a task its worker came back without", async () => {
      const store = new SwitchableStore(new MemoryTaskStore());
      const clock = new FakeClock();
      cp = await startControlPlane({ store, clock, config: perCustomer });
      cp.join("w1", ["echo"], 20);
      const { ids: a } = await cp.plm.submit([1, 2, 3].map(() => spec("echo", { concurrencyKey: "customer-a" })), "c1");
      await settle();
      cp.lifecycle.started("w1", a[0]!, 1);
      await settle();
      await cp.stop();
      cp = await startControlPlane({ store, clock, config: perCustomer });
      const w1 = cp.join("w1", ["echo"], 20);
      cp.recovery.reconcile("w1", [{ taskId: a[0]!, epoch: 1 }]);
      await settle();
      assert.deepEqual(ids(w1), [a[1]], "a[1] runs again in its own slot; a[2] still waits");
      assert.equal(withWorker(cp, "customer-a"), 2);
    });
  });

  describe("rate", () => {
    const emails: TaskflowConfigInput = { limits: [{ match: { type: "email" }, rate: "10/s", burst: 2 }] };

    it("starts a burst at once, then one task per token, in submit order, while other types pass", async () => {
      cp = await startControlPlane({ config: emails });
      const w1 = cp.join("w1", ["email", "echo"], 100);
      const { ids: e } = await cp.plm.submit(Array.from({ length: 6 }, () => spec("email")), "c1");
      const { ids: other } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
      await settle();
      assert.deepEqual(ids(w1), [e[0], e[1], ...other], "the burst of 2, and the other type behind them");
      assert.equal(cp.limits.waiting, 4);
      assert.equal((await cp.plm.get(e[2]!, ALL_TENANTS)).waitingReason, "rate limit email 10/s, next token in 100 ms");
      await cp.advance(40);
      assert.equal((await cp.plm.get(e[2]!, ALL_TENANTS)).waitingReason, "rate limit email 10/s, next token in 60 ms", "the wait counts down");
      await cp.advance(59);
      assert.equal(w1.assigned.length, 4);
      await cp.advance(1);
      assert.deepEqual(ids(w1).slice(4), [e[2]]);
      await cp.advance(300);
      assert.deepEqual(ids(w1).slice(4), [e[2], e[3], e[4], e[5]], "one every 100 ms, in order");
      assert.equal(cp.limits.waiting, 0);
    });

    it("holds a steady rate: 10/s over 10 s starts 100 tasks plus the burst", async () => {
      cp = await startControlPlane({ config: emails, heapCapacity: 2000 });
      const w1 = cp.join("w1", ["email"], 2000);
      await cp.plm.submit(Array.from({ length: 500 }, () => spec("email")), "c1");
      await settle();
      for (let t = 0; t < 10_000; t += 50) await cp.advance(50, { heartbeats: true });
      assert.equal(w1.assigned.length, 102);
    });

    it("gives each rateLimitKey its own bucket, and a retry's start takes a token again", async () => {
      cp = await startControlPlane({ config: { limits: [{ match: { rateLimitKey: "customer-*" }, rate: "1/s", burst: 1 }] } });
      const w1 = cp.join("w1", ["echo"], 100);
      const { ids: t } = await cp.plm.submit(
        [spec("echo", { rateLimitKey: "customer-a" }), spec("echo", { rateLimitKey: "customer-a" }), spec("echo", { rateLimitKey: "customer-b" }), spec("echo", { rateLimitKey: "x" })],
        "c1",
      );
      await settle();
      assert.deepEqual(ids(w1), [t[0], t[2], t[3]]);
      assert.equal((await cp.plm.get(t[1]!, ALL_TENANTS)).waitingReason, "rate limit customer-a 1/s, next token in 1000 ms");
      finish(cp, "w1", t[2]!, false);
      await cp.advance(100, { heartbeats: true }); // past the first backoff (at most 100 ms), before the next tokens
      assert.equal(ids(w1).length, 3, "the retry waits for customer-b's next token");
      assert.equal((await cp.plm.get(t[2]!, ALL_TENANTS)).waitingReason, "rate limit customer-b 1/s, next token in 900 ms");
      await cp.advance(900, { heartbeats: true });
      assert.deepEqual(ids(w1).slice(3).sort(), [t[1], t[2]].sort());
    });

    it("combines with a concurrency limit: a task waits for both, releasing neither out of order", async () => {
      cp = await startControlPlane({
        config: { limits: [{ match: { type: "email" }, rate: "100/s", burst: 1 }], concurrency: [{ match: { type: "email" }, max: 1 }] },
      });
      const w1 = cp.join("w1", ["email"], 100);
      const { ids: e } = await cp.plm.submit([spec("email"), spec("email"), spec("email")], "c1");
      await settle();
      assert.deepEqual(ids(w1), [e[0]]);
      assert.equal((await cp.plm.get(e[1]!, ALL_TENANTS)).waitingReason, "concurrency limit email at its limit 1 (1 running)");
      finish(cp, "w1", e[0]!);
      await settle();
      assert.deepEqual(ids(w1), [e[0]], "the slot is free, the token not yet");
      assert.match((await cp.plm.get(e[1]!, ALL_TENANTS)).waitingReason, /^rate limit email 100\/s, next token in \d+ ms$/);
      await cp.advance(10);
      assert.deepEqual(ids(w1), [e[0], e[1]]);
    });
  });

  describe("submit checks", () => {
    it("refuses a key with control characters or over 256 characters, naming the field", async () => {
      cp = await startControlPlane();
      const refused = async (s: ReturnType<typeof spec>, pattern: RegExp) =>
        assert.rejects(cp!.plm.submit([spec("t"), s], "c1"), (err: unknown) => {
          assert.ok(err instanceof TaskflowError);
          assert.equal(err.code, Code.INVALID_ARGUMENT);
          assert.match(err.message, pattern);
          return true;
        });
      await refused(spec("t", { concurrencyKey: "a\nb" }), /^specs\[1\]\.concurrency_key "a\\nb" must be 1-256 printable characters/);
      await refused(spec("t", { rateLimitKey: "k".repeat(257) }), /^specs\[1\]\.rate_limit_key "k+…" must be 1-256 printable characters .* got 257 characters/);
      const { ids: ok } = await cp.plm.submit([spec("t", { concurrencyKey: "ü".repeat(256), rateLimitKey: "customer 42/é" })], "c1");
      const rec = await cp.plm.get(ok[0]!, ALL_TENANTS);
      assert.equal(rec.concurrencyKey, "ü".repeat(256));
      assert.equal(rec.rateLimitKey, "customer 42/é");
    });

    it("binds nothing on the plain path: no rules, no limits on any task", async () => {
      cp = await startControlPlane();
      cp.join("w1", ["t"]);
      await cp.plm.submit([spec("t", { concurrencyKey: "a", rateLimitKey: "b" }), spec("t")], "c1");
      assert.equal(cp.limits.active, false);
      for (const live of cp.table.liveTasks()) assert.equal(live.limits, undefined);
    });
  });
});
