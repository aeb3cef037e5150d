/**
 * Worker liveness under a fake clock: alive → suspect → dead, the reconnect grace, unacknowledged
 * assignments, draining, and what happens to a lost worker's tasks. No test sleeps.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, type ClusterEvent } from "@taskflow/core";
import { RecordingLogger, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

describe("liveness", () => {
  it("marks a silent worker suspect after 2 heartbeat intervals, dead at heartbeatTimeoutMs, and reruns its tasks elsewhere", async () => {
    cp = await startControlPlane({ config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000 } } });
    const states: string[] = [];
    cp.events.subscribe((e: ClusterEvent) => {
      if (e.kind === "worker" && e.worker.id === "w1") states.push(e.worker.state);
    });
    const w1 = cp.join("w1", ["echo"], 1);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    assert.equal(w1.assigned.length, 1);
    cp.register.heartbeat(cp.entry("w1"), 1);
    const w2 = cp.join("w2", ["echo"], 1);

    // w2 keeps beating by hand; w1 falls silent.
    const beatW2 = () => cp!.register.heartbeat(cp!.entry("w2"), cp!.entry("w2").sent);
    for (let t = 0; t < 999; t += 250) {
      beatW2();
      await cp.advance(Math.min(250, 999 - t));
    }
    assert.equal(cp.register.get("w1")?.state, "alive", "silent for less than 2 intervals");
    beatW2();
    await cp.advance(250);
    assert.equal(cp.register.get("w1")?.state, "suspect");
    assert.equal(w2.assigned.length, 0, "a suspect worker keeps its tasks");
    for (let t = 0; t < 1_000; t += 250) {
      beatW2();
      await cp.advance(250);
    }
    assert.equal(cp.register.get("w1"), undefined, "dead workers leave the register");
    assert.equal(w1.closed, true, "its session is closed");
    assert.deepEqual(states, ["alive", "suspect", "dead"]);
    assert.deepEqual(w2.assigned.map((a) => [a.taskId, a.epoch]), [[ids[0], 2]]);
    const task = await cp.plm.get(ids[0]!, ALL_TENANTS);
    assert.match(task.attempts[0]!.error, /^worker w1 lost: no heartbeat for 2\d\d\d ms$/);
  });

  it("stretches a paced worker's suspect and dead thresholds by its pace (liveness.maxHeartbeatsPerSecond)", async () => {
    // 2 heartbeats a second at 500 ms: the first worker beats every 500 ms, the second every 1000 ms.
    cp = await startControlPlane({ config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000, maxHeartbeatsPerSecond: 2 } } });
    cp.join("fast", ["echo"], 1);
    cp.join("slow", ["echo"], 1);
    assert.deepEqual([cp.entry("fast").beatMs, cp.entry("slow").beatMs], [500, 1000]);
    await cp.advance(1_250);
    assert.deepEqual([cp.register.get("fast")?.state, cp.register.get("slow")?.state], ["suspect", "alive"], "silent 2.5 intervals of fast, 1.25 of slow");
    await cp.advance(1_000);
    assert.equal(cp.register.get("fast"), undefined, "fast is dead after 2 s");
    assert.equal(cp.register.get("slow")?.state, "suspect");
    await cp.advance(1_500);
    assert.equal(cp.register.get("slow")?.state, "suspect", "3.75 s: within its stretched 4 s timeout");
    await cp.advance(500);
    assert.equal(cp.register.get("slow"), undefined, "dead at 4 s");
  });

  it("judges silence after a blocked event loop only once the heartbeats that waited behind it are read", async () => {
    cp = await startControlPlane({ config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000 } } });
    cp.join("w1", ["echo"], 1);
    await cp.advance(400);
    // The loop is blocked 3 s (past the 2 s timeout): the sweep due meanwhile runs late, and skips.
    cp.clock.stall(3_000);
    await cp.advance(0);
    assert.equal(cp.register.get("w1")?.state, "alive", "not dead for a silence the node caused");
    // The heartbeat that waited in the socket is read; the next sweep finds the worker fine.
    cp.register.heartbeat(cp.entry("w1"), 0);
    await cp.advance(250);
    assert.equal(cp.register.get("w1")?.state, "alive");
    // Two stalls in a row: the second late sweep judges (every other sweep at worst), and the
    // worker, silent for 6 s by then, is dead.
    cp.clock.stall(3_000);
    await cp.advance(0);
    assert.equal(cp.register.get("w1")?.state, "alive");
    cp.clock.stall(3_000);
    await cp.advance(0);
    assert.equal(cp.register.get("w1"), undefined, "dead: an overloaded node still finds silent workers");
  });

  it("does not count the node's own recent stall as a worker's silence", async () => {
    cp = await startControlPlane({ config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000 } } });
    cp.join("w1", ["echo"], 1);
    await cp.advance(1_250);
    assert.equal(cp.register.get("w1")?.state, "suspect", "silent 1.25 s");
    // A 900 ms stall: the sweep due at 1.5 s runs 650 ms late and skips; the next, on time at
    // 2.4 s, sees 2.4 s of silence, 650 ms of it the node's own.
    cp.clock.stall(900);
    await cp.advance(0);
    await cp.advance(250);
    assert.equal(cp.register.get("w1")?.state, "suspect", "1.75 s of silence that is the worker's");
    await cp.advance(250);
    assert.equal(cp.register.get("w1"), undefined, "dead at 2 s of its own silence");
  });

  it("does not take the end of a dead worker's session for a disconnect", async () => {
    const logger = new RecordingLogger();
    cp = await startControlPlane({ logger, config: { liveness: { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000 } } });
    const w1 = cp.join("w1", ["echo"], 1);
    const entry = cp.entry("w1");
    await cp.advance(2_000);
    assert.equal(cp.register.get("w1"), undefined, "dead");
    // Its session closing (the register closed it) ends the stream.
    cp.register.disconnected(entry, w1, "session cancelled");
    assert.deepEqual(logger.messages(), ["worker is dead"], "no 'waiting for it to reconnect' for a dead worker");
    assert.equal(entry.disconnectedAt, 0);
  });

  it("brings a suspect worker back to alive on its next heartbeat, and it takes tasks again", async () => {
    cp = await startControlPlane();
    const w1 = cp.join("w1", ["echo"], 1);
    await cp.advance(1_000);
    assert.equal(cp.register.get("w1")?.state, "suspect");
    await cp.plm.submit([spec("echo")], "c1");
    await settle();
    assert.equal(w1.assigned.length, 0, "no tasks for a suspect worker");
    cp.register.heartbeat(cp.entry("w1"), 0);
    await settle();
    assert.equal(cp.register.get("w1")?.state, "alive");
    assert.equal(w1.assigned.length, 1);
  });

  it("suspects a worker that beats but does not acknowledge its assignments, and declares it dead at twice ackTimeoutMs", async () => {
    cp = await startControlPlane({ config: { liveness: { ackTimeoutMs: 1_000 } } });
    const w1 = cp.join("w1", ["echo"]);
    await cp.plm.submit([spec("echo")], "c1");
    await settle();
    assert.equal(w1.assigned.length, 1);
    const beatWithoutAck = async (ms: number) => {
      for (let t = 0; t < ms; t += 250) {
        cp!.register.heartbeat(cp!.entry("w1"), 0);
        await cp!.advance(250);
      }
    };
    await beatWithoutAck(750);
    assert.equal(cp.register.get("w1")?.state, "alive");
    await beatWithoutAck(250);
    assert.equal(cp.register.get("w1")?.state, "suspect");
    await beatWithoutAck(1_000);
    assert.equal(cp.register.get("w1"), undefined);
  });

  it("gives a worker whose session broke reconnectGraceMs to come back with its tasks", async () => {
    cp = await startControlPlane({ config: { liveness: { reconnectGraceMs: 1_000 } } });
    const w1 = cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    cp.register.disconnected(cp.entry("w1"), w1, "network");
    await cp.advance(750);
    assert.equal(cp.register.get("w1")?.state, "alive", "within the grace");
    cp.join("w1", ["echo"]);
    cp.register.heartbeat(cp.entry("w1"), 1);
    await cp.advance(750, { heartbeats: true });
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).workerId, "w1", "it kept its task");

    const again = cp.entry("w1").link.port!;
    cp.register.disconnected(cp.entry("w1"), again, "network");
    await cp.advance(1_000);
    assert.equal(cp.register.get("w1"), undefined, "dead after the grace");
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "queued");
  });
});

describe("drain", () => {
  it("sends no new tasks to a draining worker and ends its session once its last task finishes", async () => {
    cp = await startControlPlane();
    const w1 = cp.join("w1", ["echo"], 1);
    const { ids } = await cp.plm.submit([spec("echo"), spec("echo")], "c1");
    await settle();
    cp.register.drain("w1");
    assert.equal(w1.drained, true);
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle();
    assert.equal(w1.assigned.length, 1);
    assert.equal(w1.closed, true);
    assert.throws(() => cp!.register.drain("nobody"), /worker nobody not found/);
  });
});
