/**
 * Dead-letter retry and bulk cancel (ADR 0020) over the in-process control plane with a fake
 * clock: a retried task's lifecycle, its bookkeeping, and the checks of the bulk calls.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, TaskflowError, type TaskOutcome } from "@taskflow/core";
import { settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

async function rejectsWith(p: Promise<unknown>, code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TaskflowError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

/** Fails the task's current attempt on worker w1. */
async function fail(id: string, error: string): Promise<void> {
  const rec = await cp!.plm.get(id, ALL_TENANTS);
  cp!.lifecycle.completed("w1", [{ taskId: id, epoch: rec.epoch, ok: false, result: undefined, error }]);
  await settle();
}

describe("ProcessLifecycleManager.retry", () => {
  describe("by ID", () => {
    it("puts a failed task back in the queue with its ID, history and a fresh attempt budget; subscribers hear it finish again", async () => {
      cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 2 } } });
      const port = cp.join("w1", ["flaky"]);
      const outcomes: TaskOutcome[] = [];
      cp.plm.subscribeResults("c1", (o) => outcomes.push(...o));
      const { ids } = await cp.plm.submit([spec("flaky")], "c1");
      const id = ids[0]!;
      await settle();
      await fail(id, "first");
      await cp.advance(200);
      await fail(id, "second");
      assert.equal((await cp.plm.get(id, ALL_TENANTS)).state, "failed");
      assert.deepEqual(outcomes.map((o) => [o.state, o.error]), [["failed", "second"]]);
      assert.equal((await cp.plm.counts()).failed, 1);
      assert.equal(cp.tenants.account("default").unfinished, 0);

      const [retried] = await cp.plm.retry([id], {}, ALL_TENANTS);
      assert.equal(retried!.id, id);
      assert.equal(retried!.state, "queued");
      assert.equal(retried!.attempt, 0);
      assert.equal(retried!.finishedAt, 0);
      assert.equal(retried!.error, "");
      assert.match(retried!.waitingReason, /retried by request after it failed: second/);
      const counts = await cp.plm.counts();
      assert.equal(counts.failed, 0, "no longer counted as failed");
      assert.equal(cp.tenants.account("default").unfinished, 1, "counts as unfinished again");
      await settle();
      assert.equal(port.assigned.length, 3);
      assert.deepEqual([port.assigned[2]!.epoch, port.assigned[2]!.attempt], [3, 1], "a new epoch, attempt 1 of a fresh budget");

      // A fresh budget of 2: the first failure after the retry requeues, it does not fail for good.
      await fail(id, "third");
      assert.equal((await cp.plm.get(id, ALL_TENANTS)).state, "queued");
      await cp.advance(200);
      cp.lifecycle.completed("w1", [{ taskId: id, epoch: 4, ok: true, result: new Uint8Array([1]), error: "" }]);
      await settle();
      const done = await cp.plm.get(id, ALL_TENANTS);
      assert.equal(done.state, "succeeded");
      assert.deepEqual(done.attempts.map((a) => [a.epoch, a.error]), [[1, "first"], [2, "second"], [3, "third"], [4, ""]]);
      assert.deepEqual(outcomes.map((o) => o.state), ["failed", "succeeded"]);
      assert.equal((await cp.plm.counts()).succeeded, 1);
      assert.equal(cp.tenants.account("default").unfinished, 0);
    });

    it("retries a cancelled task, and persists the queued state through the store", async () => {
      cp = await startControlPlane();
      const { ids } = await cp.plm.submit([spec("t")], "c1");
      await cp.plm.cancel(ids[0]!, "stop", ALL_TENANTS);
      await settle();
      await cp.plm.retry(ids, {}, ALL_TENANTS);
      await settle();
      assert.equal((await cp.store.get(ids[0]!))!.state, "queued");
      assert.deepEqual((await cp.store.loadUnfinished()).map((t) => t.id), ids);
    });

    it("is all or none: an unknown ID, another tenant's or an unfinished task refuses the whole call", async () => {
      cp = await startControlPlane();
      const mine = await cp.plm.submit([spec("t"), spec("t")], "c1", "", "a");
      const theirs = await cp.plm.submit([spec("t")], "c1", "", "b");
      for (const id of [...mine.ids, ...theirs.ids]) await cp.plm.cancel(id, "x", ALL_TENANTS);
      const live = await cp.plm.submit([spec("t")], "c1", "", "a");
      await settle();
      await rejectsWith(cp.plm.retry([mine.ids[0]!, theirs.ids[0]!], {}, "a"), Code.NOT_FOUND, new RegExp(`task ${theirs.ids[0]} not found`));
      await rejectsWith(cp.plm.retry([mine.ids[0]!, "nope"], {}, "a"), Code.NOT_FOUND, /task nope not found/);
      await rejectsWith(cp.plm.retry([mine.ids[0]!, live.ids[0]!], {}, "a"), Code.FAILED_PRECONDITION, /is queued; only failed or cancelled tasks can be retried/);
      await rejectsWith(cp.plm.retry([], {}, "a"), Code.INVALID_ARGUMENT, /task_ids or filter is required/);
      await rejectsWith(cp.plm.retry([""], {}, "a"), Code.INVALID_ARGUMENT, /task_ids\[0\] is empty/);
      assert.equal((await cp.plm.get(mine.ids[0]!, ALL_TENANTS)).state, "cancelled", "nothing was retried");
      assert.equal((await cp.plm.retry(mine.ids, {}, "a")).length, 2);
      await rejectsWith(cp.plm.retry([mine.ids[0]!], {}, "a"), Code.FAILED_PRECONDITION, /is queued/);
    });

    it("counts retried tasks against the tenant's quota of unfinished tasks", async () => {
      cp = await startControlPlane({ config: { tenants: { quotas: { a: { maxUnfinishedTasks: 2 } } } } });
      const { ids } = await cp.plm.submit([spec("t"), spec("t")], "c1", "", "a");
      for (const id of ids) await cp.plm.cancel(id, "x", "a");
      await cp.plm.submit([spec("t")], "c1", "", "a");
      await rejectsWith(cp.plm.retry(ids, {}, "a"), Code.RESOURCE_EXHAUSTED, /tenant a has 1 unfinished tasks and this submit adds 2, over its quota of 2/);
      assert.equal(cp.tenants.account("a").unfinished, 1);
      assert.equal(cp.tenants.account("a").reserved, 0);
      assert.equal((await cp.plm.retry([ids[0]!], {}, "a")).length, 1);
      assert.equal(cp.tenants.account("a").unfinished, 2);
    });
  });

  describe("by filter", () => {
    it("retries the matching failed tasks newest first up to max_tasks; a dry run changes nothing", async () => {
      cp = await startControlPlane();
      const a = await cp.plm.submit([spec("a"), spec("a"), spec("a")], "c1");
      const b = await cp.plm.submit([spec("b")], "c1");
      for (const id of [...a.ids, ...b.ids]) await cp.plm.cancel(id, "x", ALL_TENANTS);
      await settle();
      assert.equal((await cp.plm.retry({ type: "a" }, {}, ALL_TENANTS)).length, 0, "default states: failed only");
      const dry = await cp.plm.retry({ type: "a", states: ["cancelled"] }, { dryRun: true }, ALL_TENANTS);
      assert.deepEqual(dry.map((t) => t.id), [...a.ids].reverse());
      assert.equal((await cp.plm.counts()).cancelled, 4, "a dry run changes nothing");
      const done = await cp.plm.retry({ type: "a", states: ["cancelled"] }, { maxTasks: 2 }, ALL_TENANTS);
      assert.deepEqual(done.map((t) => t.id), [a.ids[2], a.ids[1]]);
      assert.equal((await cp.plm.counts()).queued, 2);
      assert.equal((await cp.plm.get(b.ids[0]!, ALL_TENANTS)).state, "cancelled");
    });

    it("matches the finished-time range, and keeps a client to its own tenant", async () => {
      cp = await startControlPlane();
      const early = await cp.plm.submit([spec("t")], "c1", "", "a");
      await cp.plm.cancel(early.ids[0]!, "x", ALL_TENANTS);
      await cp.advance(60_000);
      const since = cp.clock.now();
      const late = await cp.plm.submit([spec("t")], "c1", "", "a");
      const other = await cp.plm.submit([spec("t")], "c1", "", "b");
      await cp.plm.cancel(late.ids[0]!, "x", ALL_TENANTS);
      await cp.plm.cancel(other.ids[0]!, "x", ALL_TENANTS);
      await settle();
      const f = { states: ["cancelled" as const], finishedAfter: since };
      assert.deepEqual((await cp.plm.retry(f, { dryRun: true }, "a")).map((t) => t.id), late.ids);
      assert.deepEqual((await cp.plm.retry(f, { dryRun: true }, ALL_TENANTS)).map((t) => t.id).sort(), [...late.ids, ...other.ids].sort());
      assert.deepEqual((await cp.plm.retry({ ...f, tenant: "b" }, { dryRun: true }, ALL_TENANTS)).map((t) => t.id), other.ids);
      await rejectsWith(cp.plm.retry({ ...f, tenant: "b" }, {}, "a"), Code.PERMISSION_DENIED, /filter\.tenant b is for admin tokens/);
      await rejectsWith(cp.plm.retry({ states: ["queued"] }, {}, "a"), Code.INVALID_ARGUMENT, /filter\.states may hold only failed, cancelled for RetryTasks, got queued/);
      await rejectsWith(cp.plm.retry({ finishedAfter: 5, finishedBefore: 5 }, {}, "a"), Code.INVALID_ARGUMENT, /filter\.finished_after_ms \(5\) must be before filter\.finished_before_ms/);
      await rejectsWith(cp.plm.retry({}, { maxTasks: 10_001 }, "a"), Code.INVALID_ARGUMENT, /max_tasks must be at most 10000, got 10001/);
    });
  });
});

describe("ProcessLifecycleManager.cancelMany", () => {
  it("cancels the matching unfinished tasks, oldest first, within the caller's tenant", async () => {
    cp = await startControlPlane();
    const port = cp.join("w1", ["a"], 1);
    const a = await cp.plm.submit([spec("a"), spec("a")], "c1", "", "t1");
    const other = await cp.plm.submit([spec("a")], "c1", "", "t2");
    const b = await cp.plm.submit([spec("b")], "c1", "", "t1");
    await settle();
    assert.equal(port.assigned.length, 1, "the first runs");
    const dry = await cp.plm.cancelMany({ type: "a" }, "", { dryRun: true }, "t1");
    assert.deepEqual(dry.map((t) => t.id), a.ids);
    assert.equal((await cp.plm.counts()).cancelled, 0);
    const done = await cp.plm.cancelMany({ type: "a" }, "bulk stop", {}, "t1");
    assert.deepEqual(done.map((t) => [t.id, t.state, t.error]), a.ids.map((id) => [id, "cancelled", "bulk stop"]));
    assert.deepEqual(port.cancelled.map((c) => c.taskId), [a.ids[0]], "the running one is stopped on its worker");
    assert.equal((await cp.plm.get(other.ids[0]!, ALL_TENANTS)).state, "queued");
    assert.equal((await cp.plm.get(b.ids[0]!, ALL_TENANTS)).state, "queued");
    await rejectsWith(cp.plm.cancelMany({}, "", {}, "t1"), Code.INVALID_ARGUMENT, /filter must set at least one field/);
    await rejectsWith(cp.plm.cancelMany({ type: "a", finishedAfter: 1 }, "", {}, "t1"), Code.INVALID_ARGUMENT, /do not apply to CancelTasks/);
    await rejectsWith(cp.plm.cancelMany({ states: ["failed"] }, "", {}, "t1"), Code.INVALID_ARGUMENT, /filter\.states may hold only queued, assigned, running/);
  });
});
