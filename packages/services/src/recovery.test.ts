/** Recovery after a restart, under a fake clock: re-adoption and its grace. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";
import { SwitchableStore, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

describe("recovery after a restart", () => {
  /** Two tasks given to w1 (the first reported started), then a new control node over the store. */
  async function restartedWithTwoTasksOfW1(): Promise<{ ids: string[]; clock: FakeClock; store: SwitchableStore }> {
    const store = new SwitchableStore(new MemoryTaskStore());
    const clock = new FakeClock();
    cp = await startControlPlane({ store, clock });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
    await settle();
    cp.lifecycle.started("w1", ids[0]!, 1);
    await settle();
    await cp.stop();
    cp = await startControlPlane({ store, clock });
    for (const id of ids) {
      const t = await cp.plm.get(id, ALL_TENANTS);
      assert.equal(t.state, "queued");
      assert.match(t.waitingReason, /waiting for worker w1 to reconnect and re-adopt it/);
    }
    return { ids, clock, store };
  }

  it("keeps tasks that were with a worker out of the queue until it comes back; what it no longer holds runs again at once, an assignment it never started without costing an attempt", async () => {
    const { ids } = await restartedWithTwoTasksOfW1();
    const c = cp!;
    const w2 = c.join("w2", ["echo"]);
    await settle();
    assert.equal(w2.assigned.length, 0, "nobody else runs them while w1 may come back");

    const w1 = c.join("w1", ["echo"]);
    const { adopted, lost, stale } = c.recovery.reconcile("w1", [{ taskId: ids[0]!, epoch: 1 }]);
    assert.deepEqual({ adopted, lost, stale }, { adopted: 1, lost: 1, stale: [] });
    assert.equal((await c.plm.get(ids[0]!, ALL_TENANTS)).state, "running");
    await settle();
    const rerun = [...w1.assigned, ...w2.assigned].map((a) => [a.taskId, a.epoch]);
    assert.deepEqual(rerun, [[ids[1], 2]], "the task w1 came back without runs again, before any grace, with a new epoch");
    const again = await c.plm.get(ids[1]!, ALL_TENANTS);
    assert.equal(again.attempt, 1, "its first assignment never reached w1, so this is still attempt 1");
    assert.equal(again.attempts.length, 1);
  });

  it("still gives the attempt back after a second restart before the worker came back", async () => {
    const { ids, clock, store } = await restartedWithTwoTasksOfW1();
    // The second control node stored both as queued for w1; it dies before w1 returns.
    await cp!.stop();
    cp = await startControlPlane({ store, clock });
    const c = cp;
    const w1 = c.join("w1", ["echo"]);
    const { adopted, lost } = c.recovery.reconcile("w1", [{ taskId: ids[0]!, epoch: 1 }]);
    assert.deepEqual({ adopted, lost }, { adopted: 1, lost: 1 });
    await settle();
    assert.deepEqual(w1.assigned.map((a) => [a.taskId, a.epoch]), [[ids[1], 2]]);
    const again = await c.plm.get(ids[1]!, ALL_TENANTS);
    assert.equal(again.attempt, 1, "its first assignment never reached w1: still attempt 1, two restarts later");
    assert.equal(again.attempts.length, 1);
  });

  it("runs again, as a new attempt, whatever no worker re-adopts within the grace", async () => {
    const { ids } = await restartedWithTwoTasksOfW1();
    const c = cp!;
    const w2 = c.join("w2", ["echo"]);
    await c.advance(c.config.liveness.heartbeatTimeoutMs * 2 - 1, { heartbeats: true });
    assert.equal(w2.assigned.length, 0);
    await c.advance(1, { heartbeats: true });
    assert.deepEqual(
      w2.assigned.map((a) => [a.taskId, a.epoch]).sort(),
      ids.map((id) => [id, 2]).sort(),
      "both run again on w2 once w1 did not come back",
    );
    for (const id of ids) assert.equal((await c.plm.get(id, ALL_TENANTS)).attempt, 2, "without w1's word, each assignment counts");
  });
});
