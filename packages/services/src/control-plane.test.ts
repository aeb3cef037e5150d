/**
 * PLM + Register + Scheduler wired together in one process, as apps/node wires them, with the
 * worker sessions as recording ports (the gRPC edge is covered by the end-to-end tests).
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { parseConfig, systemClock, type Logger, type SchedulingPolicy, type TaskOutcome, type TaskSpec } from "@taskflow/core";
import { IndexedHeap } from "@taskflow/shm-heap";
import { LocalEventBus } from "./events.js";
import { MemoryTaskStore } from "./memory-store.js";
import { ProcessLifecycleManager } from "./plm.js";
import { WorkerRegister, type OutgoingAssignment, type WorkerSessionPort } from "./register.js";
import { MainScheduler } from "./scheduler.js";

const silent: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/**
 * Submission order, workers least recently assigned first: the built-in fifo policy's keys,
 * written out because the services know no policy package (apps/node wires those).
 */
const fifo: SchedulingPolicy = {
  name: "fifo",
  taskKey: (task) => task.seq,
  workerKey: (worker) => (worker.lastAssignedSeq > 0 ? worker.lastAssignedSeq : -(2 ** 53) + Math.max(0, worker.joinSeq)),
};

function spec(type: string, overrides: Partial<TaskSpec> = {}): TaskSpec {
  return { type, payload: new Uint8Array(0), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, ...overrides };
}

class RecordingPort implements WorkerSessionPort {
  assigned: OutgoingAssignment[] = [];
  cancelled: { taskId: string; epoch: number }[] = [];
  assign(a: readonly OutgoingAssignment[]) {
    this.assigned.push(...a);
  }
  cancel(tasks: readonly { taskId: string; epoch: number }[]) {
    this.cancelled.push(...tasks);
  }
  drain() {}
  close() {}
}

const tick = () => new Promise((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

describe("the control plane (PLM, Register, Scheduler)", () => {
  let plm: ProcessLifecycleManager;
  let register: WorkerRegister;
  let scheduler: MainScheduler;
  let heaps: IndexedHeap[];

  beforeEach(async () => {
    const config = parseConfig({ control: { defaultMaxAttempts: 2 } });
    const policy = fifo;
    const events = new LocalEventBus();
    heaps = [IndexedHeap.create({ capacity: 1000 }), IndexedHeap.create({ capacity: 16 })];
    plm = new ProcessLifecycleManager(config, new MemoryTaskStore(), policy, heaps[0]!, events, silent, systemClock);
    register = new WorkerRegister(config, events, silent, systemClock);
    scheduler = new MainScheduler(config, policy, heaps[1]!, plm, register, silent);
    await plm.start();
    scheduler.start();
  });
  afterEach(async () => {
    await scheduler.stop();
    register.stop();
    await plm.stop();
    for (const h of heaps) h.close();
  });

  function join(id: string, types: string[], slots = 4): RecordingPort {
    const port = new RecordingPort();
    register.connect({ workerId: id, host: "h", pid: 1, slots, prefetch: 0, labels: {}, taskTypes: types }, port);
    return port;
  }

  it("assigns with epoch 1, and delivers the result to the submitting client", async () => {
    const port = join("w1", ["echo"]);
    const outcomes: TaskOutcome[] = [];
    plm.subscribeResults("c1", (o) => outcomes.push(...o));
    const { ids } = await plm.submit([spec("echo")], "c1");
    await settle();
    assert.deepEqual(port.assigned.map((a) => [a.taskId, a.epoch, a.attempt]), [[ids[0], 1, 1]]);
    plm.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: new Uint8Array([7]), error: "" }]);
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
    plm.requeueWorkerTasks("w1", "lost in a test");
    await settle();
    const reassigned = w2.assigned.find((a) => a.taskId === ids[0]);
    assert.equal(reassigned?.epoch, 2);
    plm.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    const task = await plm.get(ids[0]!);
    assert.equal(task.state, "assigned", "the stale result changed nothing");
    assert.equal(task.attempts[0]!.error, "lost in a test");
    plm.completed("w2", [{ taskId: ids[0]!, epoch: 2, ok: true, result: undefined, error: "" }]);
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

  it("retries a failed attempt after a backoff, then fails with the last error", async () => {
    const port = join("w1", ["flaky"]);
    const { ids } = await plm.submit([spec("flaky")], "c1");
    await settle();
    plm.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: false, result: undefined, error: "first" }]);
    const retrying = await plm.get(ids[0]!);
    assert.equal(retrying.state, "queued");
    assert.ok(retrying.notBefore > Date.now() - 5, "waits out a backoff");
    await new Promise((r) => setTimeout(r, 150));
    await settle();
    assert.equal(port.assigned.at(-1)?.epoch, 2);
    plm.completed("w1", [{ taskId: ids[0]!, epoch: 2, ok: false, result: undefined, error: "second" }]);
    const failed = await plm.get(ids[0]!);
    assert.equal(failed.state, "failed");
    assert.equal(failed.error, "second");
    assert.deepEqual(failed.attempts.map((a) => a.error), ["first", "second"]);
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
    assert.deepEqual(port.cancelled, [{ taskId: ids[0], epoch: 1 }]);
    assert.deepEqual(port.assigned.map((a) => a.taskId), [ids[0], ids[1]], "the freed slot took the next task");
  });
});
