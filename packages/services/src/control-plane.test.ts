/**
 * PLM + Register + Scheduler wired together in one process, as apps/node wires them, with the
 * worker sessions as recording ports (the gRPC edge is covered by the end-to-end tests).
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { TaskOutcome } from "@taskflow/core";
import { settle, spec, startControlPlane, type RecordingPort, type TestControlPlane } from "./control-plane.test.fixture.js";

describe("the control plane (PLM, Register, Scheduler)", () => {
  let cp: TestControlPlane;
  let plm: TestControlPlane["plm"];

  beforeEach(async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 2 } } });
    plm = cp.plm;
  });
  afterEach(() => cp.stop());

  function join(id: string, types: string[], slots = 4): RecordingPort {
    return cp.join(id, types, slots);
  }

  it("assigns with epoch 1, and delivers the result to the submitting client", async () => {
    const port = join("w1", ["echo"]);
    const outcomes: TaskOutcome[] = [];
    plm.subscribeResults("c1", (o) => outcomes.push(...o));
    const { ids } = await plm.submit([spec("echo")], "c1");
    await settle();
    assert.deepEqual(port.assigned.map((a) => [a.taskId, a.epoch, a.attempt]), [[ids[0], 1, 1]]);
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: new Uint8Array([7]), error: "" }]);
    await settle();
    const done = await plm.get(ids[0]!);
    assert.equal(done.state, "succeeded");
    // No start notice came (it started and finished within one worker flush): still stamped.
    assert.ok(done.startedAt > 0 && done.startedAt <= done.finishedAt, `startedAt ${done.startedAt}, finishedAt ${done.finishedAt}`);
    assert.equal(done.attempts[0]!.startedAt, done.startedAt);
    assert.deepEqual(outcomes.map((o) => [o.taskId, o.state, [...(o.result ?? [])]]), [[ids[0], "succeeded", [7]]]);
  });

  it("fences off a lost worker's late result and accepts the new epoch's", async () => {
    join("w1", ["echo"]);
    const { ids } = await plm.submit([spec("echo")], "c1");
    await settle();
    const w2 = join("w2", ["echo"]);
    cp.lifecycle.requeueWorkerTasks("w1", "lost in a test");
    await settle();
    const reassigned = w2.assigned.find((a) => a.taskId === ids[0]);
    assert.equal(reassigned?.epoch, 2);
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    const task = await plm.get(ids[0]!);
    assert.equal(task.state, "assigned", "the stale result changed nothing");
    assert.equal(task.attempts[0]!.error, "lost in a test");
    cp.lifecycle.completed("w2", [{ taskId: ids[0]!, epoch: 2, ok: true, result: undefined, error: "" }]);
    assert.equal((await plm.get(ids[0]!)).state, "succeeded");
  });

  it("parks a task no worker serves, says why, and runs it when such a worker joins", async () => {
    join("w1", ["echo"]);
    const { ids } = await plm.submit([spec("resize"), spec("echo")], "c1");
    await settle();
    const waiting = await plm.get(ids[0]!);
    assert.equal(waiting.state, "queued");
    assert.match(waiting.waitingReason, /no worker serves task type "resize"/);
    assert.equal((await plm.get(ids[1]!)).state, "assigned", "the queue behind it moved on");
    const w2 = join("w2", ["resize"]);
    await settle();
    assert.deepEqual(w2.assigned.map((a) => a.taskId), [ids[0]]);
  });

  it("says how many tasks are ahead of a waiting one, counting only the heap's front", async () => {
    join("w1", ["echo"], 1);
    const { ids } = await plm.submit([spec("echo"), spec("echo"), spec("echo"), spec("echo"), spec("echo")], "c1");
    await settle();
    assert.equal((await plm.get(ids[0]!)).state, "assigned", "one slot, one task");
    const last = await plm.get(ids[4]!);
    assert.match(last.waitingReason, /^all 1 worker\(s\) that can take it are busy or unavailable; 3 task\(s\) ahead of it in fifo order$/);
    assert.match((await plm.get(ids[1]!)).waitingReason, /busy or unavailable$/, "nothing ahead of the next in line");
  });

  it("frees the slot of a cancelled running task and tells its worker", async () => {
    const port = join("w1", ["sleep"], 1);
    const { ids } = await plm.submit([spec("sleep"), spec("sleep")], "c1");
    await settle();
    assert.equal(port.assigned.length, 1, "one slot, one task");
    await plm.cancel(ids[0]!, "stop");
    await settle();
    assert.deepEqual(port.cancelled, [{ taskId: ids[0], epoch: 1, reason: "stop" }]);
    assert.deepEqual(port.assigned.map((a) => a.taskId), [ids[0], ids[1]], "the freed slot took the next task");
  });
});
