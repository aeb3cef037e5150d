/**
 * Worker sessions with real messages (protobuf-es), the real control plane and a fake clock:
 * hello checks, reconcile of a worker's tasks on hello, heartbeats carrying results, stored
 * acknowledgements once durable, and the reconnect grace when a stream ends.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, TaskflowError } from "@taskflow/core";
import { create, SessionRequestSchema, type SessionRequest } from "@taskflow/proto";
import { RecordingTransport, SwitchableStore, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

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
