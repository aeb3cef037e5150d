/**
 * The policy contract v2 as the scheduler keeps it, over the in-process control plane: read-only
 * views, filter refusals retried, score, late binding, and the lifecycle hooks with their replay
 * after a restart.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, FITS, doesNotFit, type PolicyOutcome, type PolicyTask, type PolicyWorker, type SchedulingPolicy } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";
import { FILTER_RETRY_MS } from "./policy-hooks.js";
import { RecordingPort, fifo, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

/** FIFO plus hooks that record what they were told, as `event:taskId[:worker|outcome]`. */
function recordingPolicy(extra: Partial<SchedulingPolicy> = {}): { policy: SchedulingPolicy; events: string[] } {
  const events: string[] = [];
  const policy: SchedulingPolicy = {
    ...fifo,
    name: "recording",
    taskKey: (task) => {
      events.push(`key:${task.id}`);
      return task.seq;
    },
    onAssigned: (task: PolicyTask, worker: PolicyWorker) => events.push(`assigned:${task.id}:${worker.id}`),
    onFinished: (task: PolicyTask, outcome: PolicyOutcome) => events.push(`finished:${task.id}:${outcome}`),
    ...extra,
  };
  return { policy, events };
}

describe("policy contract v2 in the scheduler", () => {
  describe("views", () => {
    it("hands policies read-only views: deleting a task type or writing a label changes nothing on the node", async () => {
      const errors: string[] = [];
      const attempt = (what: string, fn: () => void) => {
        try {
          fn();
          errors.push(`${what}: no error`);
        } catch (error) {
          errors.push(`${what}: ${(error as Error).constructor.name}`);
        }
      };
      const vandal: SchedulingPolicy = {
        ...fifo,
        name: "vandal",
        filter: (task, worker) => {
          attempt("taskTypes.delete", () => (worker.taskTypes as Set<string>).delete("t"));
          attempt("taskTypes.clear", () => (worker.taskTypes as Set<string>).clear());
          attempt("labels write", () => ((worker.labels as Record<string, string>)["zone"] = "stolen"));
          attempt("requiredLabels write", () => ((task.requiredLabels as Record<string, string>)["x"] = "y"));
          attempt("metadata write", () => ((task.metadata as Record<string, string>)["x"] = "y"));
          attempt("task write", () => ((task as { priority: number }).priority = 99));
          return FITS;
        },
      };
      cp = await startControlPlane({ policy: vandal });
      const port = new RecordingPort();
      cp.register.connect({ workerId: "w1", host: "h", pid: 1, slots: 4, prefetch: 0, labels: { zone: "a" }, taskTypes: ["t"] }, port);
      const { ids } = await cp.plm.submit([spec("t"), spec("t")], "c1");
      await settle();
      assert.deepEqual(port.assigned.map((a) => a.taskId), ids, "both tasks still run on w1");
      const worker = cp.register.get("w1")!;
      assert.deepEqual([...worker.taskTypes], ["t"], "the node still serves t");
      assert.deepEqual(worker.labels, { zone: "a" });
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).priority, 0);
      assert.ok(errors.length >= 6);
      assert.ok(errors.every((e) => e.endsWith("TypeError")), errors.join("\n"));
    });
  });

  describe("filter refusals", () => {
    it("tries a task the policy's filter refused again when nothing else changes, so an idle cluster does not strand it", async () => {
      const clock = new FakeClock();
      const openAt = clock.now() + 5 * FILTER_RETRY_MS;
      // A refusal by the clock: no worker event would ever put the task back before the fix.
      const notYet: SchedulingPolicy = { ...fifo, name: "not-yet", filter: () => (clock.now() >= openAt ? FITS : doesNotFit("not yet")) };
      cp = await startControlPlane({ policy: notYet, clock });
      const port = cp.join("w1", ["t"]);
      const { ids } = await cp.plm.submit([spec("t")], "c1");
      await settle();
      assert.equal(port.assigned.length, 0);
      assert.equal(cp.scheduler.parkedCount(), 1);
      assert.match((await cp.plm.get(ids[0]!, ALL_TENANTS)).waitingReason, /filtered out by policy not-yet: not yet/);
      await cp.advance(5 * FILTER_RETRY_MS, { heartbeats: true });
      assert.deepEqual(port.assigned.map((a) => a.taskId), ids);
      assert.equal(cp.scheduler.parkedCount(), 0);
    });

    it("puts a refused task back when a worker of another type changes (the policy's own state may have)", async () => {
      let capped = true;
      const capPolicy: SchedulingPolicy = { ...fifo, name: "cap", filter: (task) => (task.type === "x" && capped ? doesNotFit("tenant at its cap") : FITS) };
      cp = await startControlPlane({ policy: capPolicy });
      const xs = cp.join("wx", ["x"]);
      cp.join("wy", ["y"]);
      const { ids: [y] } = await cp.plm.submit([spec("y")], "c1");
      const { ids: [x] } = await cp.plm.submit([spec("x")], "c1");
      await settle();
      assert.equal(xs.assigned.length, 0);
      capped = false;
      cp.lifecycle.completed("wy", [{ taskId: y!, epoch: 1, ok: true, result: undefined, error: "" }]);
      await settle();
      assert.deepEqual(xs.assigned.map((a) => a.taskId), [x]);
    });
  });

  describe("score", () => {
    it("places a task on the best-scoring feasible worker instead of the first in worker-key order", async () => {
      const scored: SchedulingPolicy = { ...fifo, name: "scored", score: (task, worker) => (task.priority > 0 && worker.labels["gpu"] === "yes" ? 100 : 10) };
      cp = await startControlPlane({ policy: scored });
      const plain = cp.join("w1", ["t"]);
      const gpu = new RecordingPort();
      cp.register.connect({ workerId: "w2", host: "h", pid: 1, slots: 4, prefetch: 0, labels: { gpu: "yes" }, taskTypes: ["t"] }, gpu);
      await settle();
      const { ids } = await cp.plm.submit([spec("t", { priority: 5 }), spec("t")], "c1");
      await settle();
      assert.deepEqual(gpu.assigned.map((a) => a.taskId), [ids[0]], "the priority task scores higher on the gpu worker");
      assert.deepEqual(plain.assigned.map((a) => a.taskId), [ids[1]], "the other goes to the first worker in key order");
    });
  });

  describe("late binding", () => {
    for (const lateBinding of [false, true]) {
      it(`${lateBinding ? "assigns only up to free slots" : "fills slots and prefetch"} when the policy ${lateBinding ? "needs" : "does not need"} late binding`, async () => {
        cp = await startControlPlane({ policy: { ...fifo, name: "late", lateBinding } });
        const port = new RecordingPort();
        cp.register.connect({ workerId: "w1", host: "h", pid: 1, slots: 2, prefetch: 4, labels: {}, taskTypes: ["t"] }, port);
        const { ids } = await cp.plm.submit(Array.from({ length: 10 }, () => spec("t")), "c1");
        await settle();
        assert.equal(port.assigned.length, lateBinding ? 2 : 6);
        cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
        await settle();
        assert.equal(port.assigned.length, lateBinding ? 3 : 7, "a finished task frees room for exactly one more");
      });
    }
  });

  describe("lifecycle hooks", () => {
    it("tells the policy of assignments and of every way a task leaves: success, failure, requeue, cancel while queued", async () => {
      const { policy, events } = recordingPolicy();
      cp = await startControlPlane({ policy });
      cp.join("w1", ["t"], 3);
      const { ids } = await cp.plm.submit([spec("t"), spec("t", { maxAttempts: 1 }), spec("t"), spec("t")], "c1");
      const [a, b, c, d] = ids as [string, string, string, string];
      await settle();
      cp.lifecycle.completed("w1", [
        { taskId: a, epoch: 1, ok: true, result: undefined, error: "" },
        { taskId: b, epoch: 1, ok: false, result: undefined, error: "boom" },
      ]);
      await cp.plm.cancel(d, "no longer needed", ALL_TENANTS).catch(() => {});
      await settle();
      assert.deepEqual(events.slice(0, 7), [
        `key:${a}`,
        `key:${b}`,
        `key:${c}`,
        `key:${d}`,
        `assigned:${a}:w1`,
        `assigned:${b}:w1`,
        `assigned:${c}:w1`,
      ]);
      assert.deepEqual(events.slice(7).sort(), [`finished:${a}:succeeded`, `finished:${b}:failed`, `finished:${d}:cancelled`].sort());
      events.length = 0;
      // The worker is lost: its task goes back to the queue, and the policy hears it first.
      cp.register.drain("w1");
      cp.lifecycle.requeueWorkerTasks("w1", "lost (test)");
      await settle();
      assert.deepEqual(events.slice(0, 2), [`finished:${c}:requeued`, `key:${c}`]);
    });

    it("replays onAssigned for tasks recovered with a worker, in seq order, before serving; then keys the queued ones", async () => {
      const store = new MemoryTaskStore();
      const clock = new FakeClock();
      const first = recordingPolicy();
      cp = await startControlPlane({ store, clock, policy: first.policy });
      cp.join("w1", ["t"], 2);
      const { ids } = await cp.plm.submit([spec("t"), spec("t"), spec("t")], "c1");
      await settle();
      cp.lifecycle.started("w1", ids[1]!, 1);
      await settle();
      await cp.stop();
      const second = recordingPolicy();
      cp = await startControlPlane({ store, clock, policy: second.policy });
      assert.deepEqual(second.events, [`assigned:${ids[0]}:w1`, `assigned:${ids[1]}:w1`, `key:${ids[2]}`]);
      // The worker never comes back: the tasks run again, and the policy hears they left w1 first.
      const w2 = cp.join("w2", ["t"], 4);
      await cp.advance(cp.config.liveness.heartbeatTimeoutMs * 2, { heartbeats: true });
      assert.equal(w2.assigned.length, 3);
      assert.deepEqual(
        second.events.filter((e) => e.startsWith("finished")),
        [`finished:${ids[0]}:requeued`, `finished:${ids[1]}:requeued`],
      );
    });
  });
});
