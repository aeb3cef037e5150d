/** The scheduler's loop over the in-process control plane: per-turn budget, labels, drained workers. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS } from "@taskflow/core";
import { RecordingPort, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

describe("MainScheduler", () => {
  it("assigns at most maxAssignmentsPerTurn per turn and takes another turn for the rest", async () => {
    cp = await startControlPlane({ config: { scheduler: { maxAssignmentsPerTurn: 2 } } });
    const port = cp.join("w1", ["t"], 10);
    await cp.plm.submit([spec("t"), spec("t"), spec("t"), spec("t"), spec("t")], "c1");
    await settle(1);
    const turnsBefore = cp.scheduler.stats.turns;
    await settle();
    assert.equal(port.assigned.length, 5);
    assert.ok(cp.scheduler.stats.turns - turnsBefore >= 2, `turns: ${cp.scheduler.stats.turns - turnsBefore}`);
    assert.equal(cp.register.get("w1")?.running, 5, "the Register counts what it holds");
  });

  it("parks a task whose labels no worker has, and runs it on a worker that joins with them", async () => {
    cp = await startControlPlane();
    const plain = cp.join("w1", ["t"]);
    const { ids } = await cp.plm.submit([spec("t", { requiredLabels: { gpu: "a100" } })], "c1");
    await settle();
    assert.equal(plain.assigned.length, 0);
    assert.equal(cp.scheduler.parkedCount(), 1);
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).waitingReason, 'no worker serving "t" has the required labels gpu=a100');
    const gpu = new RecordingPort();
    cp.register.connect({ workerId: "w2", host: "h", pid: 1, slots: 1, prefetch: 0, labels: { gpu: "a100" }, taskTypes: ["t"] }, gpu);
    await settle();
    assert.deepEqual(gpu.assigned.map((a) => a.taskId), ids);
    assert.equal(cp.scheduler.parkedCount(), 0);
  });

  it("frees slots in the turn after results arrive, and lets a drained worker go once it holds nothing", async () => {
    cp = await startControlPlane();
    const port = cp.join("w1", ["t"], 2);
    const { ids } = await cp.plm.submit([spec("t"), spec("t")], "c1");
    await settle();
    cp.register.drain("w1");
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    assert.equal(cp.register.get("w1")?.running, 2, "counted down in the next turn, not here");
    await settle();
    assert.equal(cp.register.get("w1")?.running, 1);
    assert.equal(port.closed, false);
    cp.lifecycle.completed("w1", [{ taskId: ids[1]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle();
    assert.equal(port.closed, true);
  });
});
