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
  it("keeps tasks that were with a worker out of the queue until it re-adopts them, and requeues the rest after the grace", async () => {
    const store = new SwitchableStore(new MemoryTaskStore());
    const clock = new FakeClock();
    cp = await startControlPlane({ store, clock });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
    await settle();
    cp.lifecycle.started("w1", ids[0]!, 1);
    await settle();
    await cp.stop();

    // A new control node over the same store.
    cp = await startControlPlane({ store, clock });
    for (const id of ids) {
      const t = await cp.plm.get(id, ALL_TENANTS);
      assert.equal(t.state, "queued");
      assert.match(t.waitingReason, /waiting for worker w1 to reconnect and re-adopt it/);
    }
    const w2 = cp.join("w2", ["echo"]);
    await settle();
    assert.equal(w2.assigned.length, 0, "nobody else runs them while w1 may come back");

    const w1 = cp.join("w1", ["echo"]);
    const { adopted, lost, stale } = cp.recovery.reconcile("w1", [{ taskId: ids[0]!, epoch: 1 }]);
    assert.deepEqual({ adopted, lost, stale }, { adopted: 1, lost: 0, stale: [] });
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "running");
    assert.equal(w1.assigned.length, 0);

    await cp.advance(cp.config.liveness.heartbeatTimeoutMs * 2 - 1, { heartbeats: true });
    assert.equal((await cp.plm.get(ids[1]!, ALL_TENANTS)).state, "queued");
    await cp.advance(1, { heartbeats: true });
    const rerun = [...w1.assigned, ...w2.assigned].map((a) => [a.taskId, a.epoch]);
    assert.deepEqual(rerun, [[ids[1], 2]], "the task no worker re-adopted runs again");
  });
});
