/**
 * Store write-behind under a fake clock: results held back while writes fail, the doubling
 * retry backoff, afterDurable, purges. No test sleeps.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, type TaskOutcome } from "@taskflow/core";
import { SwitchableStore, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

describe("store write-behind", () => {
  it("holds results back while writes fail, retries with a doubling backoff, then delivers them", async () => {
    const store = new SwitchableStore();
    cp = await startControlPlane({ store });
    cp.join("w1", ["echo"]);
    const outcomes: TaskOutcome[] = [];
    cp.plm.subscribeResults("c1", (o) => outcomes.push(...o));
    const health: boolean[] = [];
    cp.writer.onStoreHealth((h) => health.push(h.writable));
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    store.failWrites = true;
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: new Uint8Array([1]), error: "" }]);
    await settle();
    assert.deepEqual(health, [false]);
    assert.equal(cp.writer.storeHealth().writable, false);
    assert.match(cp.writer.storeHealth().error, /disk full/);
    assert.equal(outcomes.length, 0, "not visible before it is durable");
    await assert.rejects(cp.plm.submit([spec("echo")], "c1"), /task store cannot write/);

    const calls = () => store.updateCalls;
    const before = calls();
    // Retries after 100, then 200, then 400 ms: none in between.
    await cp.advance(99);
    assert.equal(calls(), before);
    await cp.advance(1);
    assert.equal(calls(), before + 1);
    await cp.advance(199);
    assert.equal(calls(), before + 1);
    await cp.advance(1);
    assert.equal(calls(), before + 2);
    assert.equal(cp.writer.storeHealth().failedWrites, 3);

    store.failWrites = false;
    await cp.advance(400);
    assert.deepEqual(health, [false, true]);
    assert.deepEqual(outcomes.map((o) => [o.taskId, o.state]), [[ids[0], "succeeded"]]);
    assert.equal((await store.get(ids[0]!))?.state, "succeeded");
  });

  it("runs afterDurable callbacks only once everything changed before them is stored", async () => {
    const store = new SwitchableStore();
    cp = await startControlPlane({ store });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    store.failWrites = true;
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    let ran = 0;
    cp.writer.afterDurable(() => ran++);
    await cp.advance(100);
    assert.equal(ran, 0);
    store.failWrites = false;
    await cp.advance(200);
    assert.equal(ran, 1);
  });

  it("runs afterDurable callbacks after a write already in flight, not with the next, empty flush", async () => {
    const store = new SwitchableStore();
    cp = await startControlPlane({ store });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    let release!: () => void;
    store.holdUpdates = new Promise((resolve) => (release = resolve));
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle(); // the flush has taken the change; its write is in flight
    let ran = 0;
    cp.writer.afterDurable(() => ran++);
    await settle();
    assert.equal(ran, 0, "the succeeded state is not stored yet");
    assert.equal((await store.get(ids[0]!))?.state, "assigned");
    release();
    await settle();
    assert.equal(ran, 1);
    assert.equal((await store.get(ids[0]!))?.state, "succeeded");
  });
});


describe("a task whose final state is not stored yet", () => {
  it("reads as finished in GetTask and WatchTask, not as the store's previous state", async () => {
    // The failover test's watch that said ASSIGNED and never the end: the task had just
    // finished (it left the table) while the Postgres write of that was in flight.
    const store = new SwitchableStore();
    cp = await startControlPlane({ store });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    let release!: () => void;
    store.holdUpdates = new Promise((resolve) => (release = resolve));
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle(); // the write of the succeeded state is in flight
    assert.equal((await store.get(ids[0]!))?.state, "assigned", "the store has the state before");
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded");
    const seen: string[] = [];
    const unwatch = await cp.plm.watch(ids[0]!, (rec) => seen.push(rec.state), ALL_TENANTS);
    assert.deepEqual(seen, ["succeeded"], "the watch opens with the end");
    unwatch();
    release();
    await settle();
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded");

    // A write that fails keeps the change pending: still read as finished.
    const second = (await cp.plm.submit([spec("echo")], "c1")).ids[0]!;
    await settle();
    store.failWrites = true;
    cp.lifecycle.completed("w1", [{ taskId: second, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle();
    assert.equal((await cp.plm.get(second, ALL_TENANTS)).state, "succeeded");
    store.failWrites = false;
    await cp.advance(100);
  });
});

describe("purge", () => {
  it("removes finished tasks past control.resultRetentionMs from the store", async () => {
    cp = await startControlPlane({ config: { control: { resultRetentionMs: 10_000 } } });
    cp.join("w1", ["echo"]);
    const { ids } = await cp.plm.submit([spec("echo")], "c1");
    await settle();
    cp.lifecycle.completed("w1", [{ taskId: ids[0]!, epoch: 1, ok: true, result: undefined, error: "" }]);
    await settle();
    await cp.advance(10_000);
    assert.equal((await cp.plm.get(ids[0]!, ALL_TENANTS)).state, "succeeded", "kept for its retention");
    await cp.advance(10_000);
    await assert.rejects(cp.plm.get(ids[0]!, ALL_TENANTS), /not found/);
  });
});
