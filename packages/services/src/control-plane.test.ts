/**
 * PLM + Register + Scheduler wired together in one process, as apps/node wires them, with the
 * worker sessions as recording ports (the gRPC edge is covered by the end-to-end tests).
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, Reason, TaskflowError, type TaskOutcome } from "@taskflow/core";
import { settle, spec, startControlPlane, type RecordingPort, type TestControlPlane } from "./control-plane.test.fixture.js";

describe("the control plane (PLM, Register, Scheduler)", () => {
  let cp: TestControlPlane;
  let plm: TestControlPlane["plm"];

  beforeEach(async () => {
    cp = await startControlPlane({ config: { control: { defaultMaxAttempts: 2 }, tenants: { quotas: { small: { maxUnfinishedTasks: 2 } } } } });
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
    const done = await plm.get(ids[0]!, ALL_TENANTS);
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
    const task = await plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(task.state, "assigned", "the stale result changed nothing");
    assert.equal(task.attempts[0]!.error, "lost in a test");
    cp.lifecycle.completed("w2", [{ taskId: ids[0]!, epoch: 2, ok: true, result: undefined, error: "" }]);
    assert.equal((await plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded");
  });

  it("parks a task no worker serves, says why, and runs it when such a worker joins", async () => {
    join("w1", ["echo"]);
    const { ids } = await plm.submit([spec("resize"), spec("echo")], "c1");
    await settle();
    const waiting = await plm.get(ids[0]!, ALL_TENANTS);
    assert.equal(waiting.state, "queued");
    assert.match(waiting.waitingReason, /no worker serves task type "resize"/);
    assert.equal((await plm.get(ids[1]!, ALL_TENANTS)).state, "assigned", "the queue behind it moved on");
    const w2 = join("w2", ["resize"]);
    await settle();
    assert.deepEqual(w2.assigned.map((a) => a.taskId), [ids[0]]);
  });

  it("says how many tasks are ahead of a waiting one, counting only the heap's front", async () => {
    join("w1", ["echo"], 1);
    const { ids } = await plm.submit([spec("echo"), spec("echo"), spec("echo"), spec("echo"), spec("echo")], "c1");
    await settle();
    assert.equal((await plm.get(ids[0]!, ALL_TENANTS)).state, "assigned", "one slot, one task");
    const last = await plm.get(ids[4]!, ALL_TENANTS);
    assert.match(last.waitingReason, /^all 1 worker\(s\) that can take it are busy or unavailable; 3 task\(s\) ahead of it in fifo order$/);
    assert.match((await plm.get(ids[1]!, ALL_TENANTS)).waitingReason, /busy or unavailable$/, "nothing ahead of the next in line");
  });

  it("frees the slot of a cancelled running task and tells its worker", async () => {
    const port = join("w1", ["sleep"], 1);
    const { ids } = await plm.submit([spec("sleep"), spec("sleep")], "c1");
    await settle();
    assert.equal(port.assigned.length, 1, "one slot, one task");
    await plm.cancel(ids[0]!, "stop", ALL_TENANTS);
    await settle();
    assert.deepEqual(port.cancelled, [{ taskId: ids[0], epoch: 1, reason: "stop" }]);
    assert.deepEqual(port.assigned.map((a) => a.taskId), [ids[0], ids[1]], "the freed slot took the next task");
  });

  describe("tenants", () => {
    it("answers another tenant's task as unknown, and lists and watches only the scope's tasks", async () => {
      const { ids } = await plm.submit([spec("echo")], "c1", "", "acme");
      const notFound = (err: unknown) => TaskflowError.is(err) && err.code === Code.NOT_FOUND && err.message.startsWith(`task ${ids[0]} not found (unknown`);
      await assert.rejects(plm.get(ids[0]!, "globex"), notFound);
      await assert.rejects(plm.cancel(ids[0]!, "not yours", "globex"), notFound);
      await assert.rejects(plm.watch(ids[0]!, () => assert.fail("globex saw acme's task"), "globex"), notFound);
      assert.equal((await plm.get(ids[0]!, "acme")).tenant, "acme");
      assert.deepEqual((await plm.list({}, "globex")).tasks, []);
      assert.deepEqual((await plm.list({}, "acme")).tasks.map((t) => t.id), ids);
      assert.deepEqual((await plm.list({ tenant: "acme" }, "globex")).tasks, [], "a query cannot widen the scope");
      assert.equal((await plm.get(ids[0]!, ALL_TENANTS)).tenant, "acme");
    });

    it("delivers results to the task's tenant and client ID only", async () => {
      join("w1", ["echo"]);
      const got: Record<string, string[]> = { acme: [], globex: [], other: [] };
      plm.subscribeResults("c1", (o) => got.acme!.push(...o.map((x) => x.taskId)), "acme");
      plm.subscribeResults("c1", (o) => got.globex!.push(...o.map((x) => x.taskId)), "globex");
      plm.subscribeResults("c2", (o) => got.other!.push(...o.map((x) => x.taskId)), "acme");
      const { ids } = await plm.submit([spec("echo")], "c1", "", "acme");
      await settle();
      cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
      await settle();
      assert.deepEqual(got, { acme: ids, globex: [], other: [] });
    });

    it("scopes request IDs and idempotency keys per tenant", async () => {
      const a = await plm.submit([spec("echo")], "c1", "req-1", "acme");
      const b = await plm.submit([spec("echo")], "c1", "req-1", "globex");
      assert.notDeepEqual(b.ids, a.ids);
      assert.deepEqual(b.deduplicated, [false]);
      assert.deepEqual(await plm.submit([spec("echo")], "c1", "req-1", "acme"), { ids: a.ids, deduplicated: [true] });
      const keyed = spec("echo", { idempotencyKey: "k" });
      const ka = await plm.submit([keyed], "c1", "", "acme");
      const kb = await plm.submit([keyed], "c1", "", "globex");
      assert.notEqual(kb.ids[0], ka.ids[0]);
      assert.deepEqual(await plm.submit([keyed], "c9", "", "acme"), { ids: ka.ids, deduplicated: [true] });
    });

    it("counts a tenant's unfinished tasks through retries and requeues, and frees its quota as they finish", async () => {
      join("w1", ["echo"]);
      const { ids } = await plm.submit([spec("echo"), spec("echo")], "c1", "", "small");
      const refused = (err: unknown) => TaskflowError.is(err) && err.code === Code.RESOURCE_EXHAUSTED && err.reason === Reason.QUOTA && /tenants\.quotas\.small\.maxUnfinishedTasks/.test(err.message);
      await assert.rejects(plm.submit([spec("echo")], "c1", "", "small"), refused);
      await plm.submit([spec("echo")], "c1", "", "acme"); // another tenant is not limited by it
      await settle();
      // A failed first attempt goes back to the queue (2 attempts): still unfinished, still counted.
      cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: false, result: undefined, error: "boom" }]);
      cp.lifecycle.requeueWorkerTasks("w1", "lost in a test");
      await settle();
      await assert.rejects(plm.submit([spec("echo")], "c1", "", "small"), refused);
      const usage = () => plm.tenantUsage().find((u) => u.label === "small")!;
      assert.deepEqual([usage().unfinished, usage().submitted, usage().refusedUnfinished], [2, 2, 2]);
      await plm.cancel(ids[1]!, "make room", ALL_TENANTS);
      assert.equal(usage().unfinished, 1);
      await plm.submit([spec("echo")], "c1", "", "small");
      assert.deepEqual([usage().unfinished, usage().submitted], [2, 3]);
    });
  });
});
