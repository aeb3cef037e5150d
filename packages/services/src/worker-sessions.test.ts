/**
 * Worker sessions with real messages (protobuf-es), the real control plane and a fake clock:
 * hello checks, reconcile of a worker's tasks on hello, heartbeats carrying results, stored
 * acknowledgements once durable, and the reconnect grace when a stream ends.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, TaskflowError } from "@taskflow/core";
import { create, SessionRequestSchema, type SessionRequest } from "@taskflow/proto";
import { RecordingLogger, RecordingTransport, SwitchableStore, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";
import { REFUSAL_LOG_INTERVAL_MS } from "./register.js";
import { HELLOS_PER_TURN } from "./worker-sessions.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

function hello(workerId: string, init: { slots?: number; taskTypes?: string[]; running?: { taskId: string; epoch: number }[] } = {}): SessionRequest {
  return create(SessionRequestSchema, {
    kind: {
      case: "hello",
      value: {
        workerId,
        host: "h",
        pid: 1,
        slots: init.slots ?? 2,
        taskTypes: init.taskTypes ?? ["echo"],
        running: (init.running ?? []).map((r) => ({ taskId: r.taskId, epoch: BigInt(r.epoch) })),
      },
    },
  });
}

function heartbeat(init: {
  seq?: number;
  ack?: number;
  started?: { taskId: string; epoch: number }[];
  results?: { taskId: string; epoch: number; ok: boolean; error?: string }[];
}): SessionRequest {
  return create(SessionRequestSchema, {
    kind: {
      case: "heartbeat",
      value: {
        seq: BigInt(init.seq ?? 0),
        assignmentsReceived: BigInt(init.ack ?? 0),
        started: (init.started ?? []).map((s) => ({ taskId: s.taskId, epoch: BigInt(s.epoch) })),
        results: (init.results ?? []).map((r) => ({ taskId: r.taskId, epoch: BigInt(r.epoch), ok: r.ok, error: r.error ?? "" })),
      },
    },
  });
}

describe("WorkerSessions", () => {
  describe("hello", () => {
    it("registers the worker and welcomes it with the heartbeat interval", async () => {
      cp = await startControlPlane();
      const t = new RecordingTransport();
      cp.sessions.open(t).receive(hello("w1", { slots: 3 }));
      assert.deepEqual(t.welcomed, [{ workerId: "w1", heartbeatIntervalMs: cp.config.liveness.heartbeatIntervalMs }]);
      assert.equal(cp.register.get("w1")?.slots, 3);
      assert.equal(t.failure, undefined);
    });

    it("handles a burst of hellos HELLOS_PER_TURN a turn, in order, holding what their sessions send meanwhile", async () => {
      cp = await startControlPlane({ config: { control: { workerHeapCapacity: 1000 } } });
      const n = HELLOS_PER_TURN * 2 + 7;
      const transports = Array.from({ length: n }, () => new RecordingTransport());
      const sessions = transports.map((t) => cp!.sessions.open(t));
      // One turn: every hello arrives, and each session sends a heartbeat (saying it drains) right after.
      const draining = create(SessionRequestSchema, { kind: { case: "heartbeat", value: { draining: true } } });
      sessions.forEach((s, i) => {
        s.receive(hello(`burst-${i}`));
        s.receive(draining);
      });
      // The last queued session's stream ends before its hello is handled.
      sessions[n - 1]!.ended("client went away");
      assert.equal(transports.filter((t) => t.welcomed.length).length, HELLOS_PER_TURN, "the first HELLOS_PER_TURN at once");
      await new Promise((r) => setImmediate(r));
      assert.equal(transports.filter((t) => t.welcomed.length).length, HELLOS_PER_TURN * 2, "the next HELLOS_PER_TURN a turn later");
      await settle();
      assert.equal(transports.filter((t) => t.welcomed.length).length, n - 1);
      assert.deepEqual(transports[n - 1]!.welcomed, [], "an ended session's hello registers nothing");
      assert.equal(cp.register.get(`burst-${n - 1}`), undefined);
      assert.deepEqual(
        cp.register.workers().map((w) => w.id),
        Array.from({ length: n - 1 }, (_, i) => `burst-${i}`),
        "in arrival order",
      );
      // A second hello while the first waits is refused like any repeated hello.
      const t = new RecordingTransport();
      const s = cp.sessions.open(t);
      for (let i = 0; i < HELLOS_PER_TURN; i++) cp.sessions.open(new RecordingTransport()).receive(hello(`filler-${i}`));
      s.receive(hello("late"));
      s.receive(hello("late"));
      assert.match(t.failure?.message ?? "", /hello was already sent on this session/);
      assert.equal(transports.every((x) => x.failure === undefined), true);
      assert.deepEqual(new Set(cp.register.workers().filter((w) => w.id.startsWith("burst-")).map((w) => w.state)), new Set(["draining"]), "held heartbeats went through after the welcome");
    });

    it("paces workers past liveness.maxHeartbeatsPerSecond: each welcomed beyond the base share beats k times slower", async () => {
      // 4 heartbeats a second at 500 ms: 2 workers at the base interval, then k = ceil(n / 2).
      cp = await startControlPlane({ config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2000, maxHeartbeatsPerSecond: 4 } } });
      const intervals: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const t = new RecordingTransport();
        cp.sessions.open(t).receive(hello(`w${i}`));
        intervals.push(t.welcomed[0]!.heartbeatIntervalMs);
      }
      assert.deepEqual(intervals, [500, 500, 1000, 1000, 1500]);
      // A returning worker is paced by the count at its new hello.
      const again = new RecordingTransport();
      cp.sessions.open(again).receive(hello("w1"));
      assert.equal(again.welcomed[0]!.heartbeatIntervalMs, 1500);
    });

    for (const [name, first, message] of [
      ["a heartbeat before hello", heartbeat({}), "the first message of a session must be hello"],
      ["a hello without worker ID", hello(""), "hello.worker_id is required"],
      ["a hello with 0 slots", hello("w1", { slots: 0 }), "hello.slots must be at least 1"],
      ["a hello without task types", hello("w1", { taskTypes: [] }), "hello.task_types must list at least one task type"],
    ] as const) {
      it(`ends the session with INVALID_ARGUMENT on ${name}`, async () => {
        cp = await startControlPlane();
        const t = new RecordingTransport();
        cp.sessions.open(t).receive(first);
        assert.equal(t.failure?.code, Code.INVALID_ARGUMENT);
        assert.equal(t.failure?.message, message);
        assert.deepEqual(cp.register.workers(), []);
      });
    }

    it("refuses a second hello, and a hello its check refuses", async () => {
      cp = await startControlPlane();
      const t = new RecordingTransport();
      const session = cp.sessions.open(t);
      session.receive(hello("w1"));
      session.receive(hello("w1"));
      assert.equal(t.failure?.message, "hello was already sent on this session");
      const refused = new RecordingTransport();
      cp.sessions.open(refused, () => new TaskflowError(Code.PERMISSION_DENIED, "not yours")).receive(hello("w2"));
      assert.equal(refused.failure?.code, Code.PERMISSION_DENIED);
      assert.equal(cp.register.get("w2"), undefined);
    });
  });

  describe("hello past control.workerHeapCapacity", () => {
    const capacity = { control: { workerHeapCapacity: 2 } };

    it("ends the session with RESOURCE_EXHAUSTED naming the key and the fix, and keeps no trace of the worker", async () => {
      cp = await startControlPlane({ config: capacity });
      cp.sessions.open(new RecordingTransport()).receive(hello("w1", { slots: 1 }));
      cp.sessions.open(new RecordingTransport()).receive(hello("w2", { slots: 1 }));
      const t = new RecordingTransport();
      cp.sessions.open(t).receive(hello("w3", { slots: 1 }));

      assert.equal(t.failure?.code, Code.RESOURCE_EXHAUSTED);
      assert.equal(t.failure?.reason, "TASKFLOW_ERR_WORKER_CAPACITY");
      assert.match(t.failure?.message ?? "", /already has its most workers, 2 \(control\.workerHeapCapacity\); fix: raise control\.workerHeapCapacity/);
      assert.deepEqual(t.welcomed, [], "no welcome");
      assert.equal(cp.register.get("w3"), undefined);
      assert.deepEqual(cp.register.workers().map((w) => w.id).sort(), ["w1", "w2"]);
      assert.equal(cp.register.refusedHellos, 1);
    });

    it("sets no liveness clock for a refused worker: no death, no requeue, and the others keep taking tasks", async () => {
      const logger = new RecordingLogger();
      cp = await startControlPlane({ config: capacity, logger });
      const t1 = new RecordingTransport();
      const t2 = new RecordingTransport();
      cp.sessions.open(t1).receive(hello("w1", { slots: 1 }));
      cp.sessions.open(t2).receive(hello("w2", { slots: 1 }));
      const refused = new RecordingTransport();
      cp.sessions.open(refused).receive(hello("w3", { slots: 1 }));
      // Well past the heartbeat timeout and the reconnect grace, the two admitted workers beating.
      await cp.advance(cp.config.liveness.heartbeatTimeoutMs + cp.config.liveness.reconnectGraceMs + 5_000, { heartbeats: true });
      const { ids } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
      await settle();

      assert.deepEqual(logger.messages().filter((m) => m.includes("dead")), []);
      assert.deepEqual(cp.register.workers().map((w) => [w.id, w.state]).sort(), [["w1", "alive"], ["w2", "alive"]]);
      assert.deepEqual([...t1.assigned, ...t2.assigned].map((a) => a.taskId).sort(), [...ids].sort(), "the full worker heap still schedules");
      assert.equal(refused.assigned.length, 0);
    });

    it("logs a refused worker ID once however often it retries, and again after REFUSAL_LOG_INTERVAL_MS", async () => {
      const logger = new RecordingLogger();
      cp = await startControlPlane({ config: capacity, logger });
      cp.join("w1", ["echo"]);
      cp.join("w2", ["echo"]);
      const retry = (id: string) => {
        const t = new RecordingTransport();
        cp!.sessions.open(t).receive(hello(id));
        assert.equal(t.failure?.code, Code.RESOURCE_EXHAUSTED);
      };
      for (let i = 0; i < 20; i++) {
        retry("w3");
        await cp.advance(1_000, { heartbeats: true });
      }
      retry("w4");
      const refusals = () => logger.lines.filter((l) => l[1].startsWith("worker refused"));
      assert.deepEqual(refusals().map((l) => (l[2] as { workerId: string }).workerId), ["w3", "w4"]);
      assert.equal(cp.register.refusedHellos, 21);
      assert.deepEqual(logger.messages("error"), [], "a refusal is not an error of the control node");

      await cp.advance(REFUSAL_LOG_INTERVAL_MS, { heartbeats: true });
      retry("w3");
      assert.equal(refusals().length, 3);
    });

    it("lets a registered worker resume while the register is full, and admits a new one once a worker left", async () => {
      cp = await startControlPlane({ config: capacity });
      const s1 = cp.sessions.open(new RecordingTransport());
      s1.receive(hello("w1"));
      cp.sessions.open(new RecordingTransport()).receive(hello("w2"));
      s1.ended("network");
      const back = new RecordingTransport();
      cp.sessions.open(back).receive(hello("w1"));
      assert.equal(back.failure, undefined);
      assert.equal(back.welcomed.length, 1, "its own ID resumes: it is already counted");

      // w2 falls silent and is declared dead: its place is free.
      for (let t = 0; t < cp.config.liveness.heartbeatTimeoutMs + 500; t += 250) {
        cp.register.heartbeat(cp.entry("w1"), 0);
        await cp.advance(250);
      }
      assert.equal(cp.register.get("w2"), undefined);
      const next = new RecordingTransport();
      cp.sessions.open(next).receive(hello("w3"));
      assert.equal(next.failure, undefined);
      assert.deepEqual(cp.register.workers().map((w) => w.id).sort(), ["w1", "w3"]);
    });
  });

  describe("reconcile on hello", () => {
    it("keeps the tasks a returning worker still holds, stops stale ones and reruns the ones it lost", async () => {
      cp = await startControlPlane();
      const first = new RecordingTransport();
      const s1 = cp.sessions.open(first);
      s1.receive(hello("w1"));
      const { ids } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
      await settle();
      assert.deepEqual(first.assigned.map((a) => a.taskId), ids);
      s1.ended("network");

      // Back within the grace, holding only the first task, plus one it was never given (epoch 7).
      const again = new RecordingTransport();
      cp.sessions.open(again).receive(hello("w1", { running: [{ taskId: ids[0]!, epoch: 1 }, { taskId: ids[1]!, epoch: 7 }] }));
      await settle();
      assert.deepEqual(again.cancelled, [{ taskId: ids[1], epoch: 7, reason: "reassigned while this worker was away" }]);
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).epoch, 1, "its own task stays");
      assert.deepEqual(again.assigned.map((a) => [a.taskId, a.epoch]), [[ids[1], 2]], "the lost one runs again");
      assert.equal(cp.register.get("w1")?.running, 2);
    });

    it("re-adopts tasks a worker kept running across a control node restart", async () => {
      const store = new SwitchableStore();
      cp = await startControlPlane({ store });
      const t = new RecordingTransport();
      cp.sessions.open(t).receive(hello("w1"));
      const { ids } = await cp.plm.submit([spec("echo")], "c1");
      await settle();
      await cp.stop();
      cp = await startControlPlane({ store, clock: cp.clock });
      const back = new RecordingTransport();
      cp.sessions.open(back).receive(hello("w1", { running: [{ taskId: ids[0]!, epoch: 1 }] }));
      await settle();
      const task = await cp.plm.get(ids[0]!, ALL_TENANTS);
      assert.equal(task.state, "running");
      assert.equal(task.workerId, "w1");
      assert.equal(cp.register.get("w1")?.running, 1, "it counts toward the worker's load");
      assert.equal(back.assigned.length, 0);
    });
  });

  describe("heartbeat", () => {
    it("records starts and results, and acknowledges the heartbeat as stored once durable", async () => {
      const store = new SwitchableStore();
      cp = await startControlPlane({ store });
      const t = new RecordingTransport();
      const session = cp.sessions.open(t);
      session.receive(hello("w1"));
      const { ids } = await cp.plm.submit([spec("echo")], "c1");
      await settle();
      session.receive(heartbeat({ seq: 1, ack: 1, started: [{ taskId: ids[0]!, epoch: 1 }] }));
      await settle();
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "running");
      store.failWrites = true;
      session.receive(heartbeat({ seq: 2, ack: 1, results: [{ taskId: ids[0]!, epoch: 1, ok: true }] }));
      await settle();
      assert.deepEqual(t.storedSeqs, [1n], "not acknowledged while the store cannot write");
      store.failWrites = false;
      await cp.advance(100);
      assert.deepEqual(t.storedSeqs, [1n, 2n]);
      assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded");
    });
  });
});
