import "reflect-metadata";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { parseConfig } from "@taskflow/core";
import { FakeClock, makeTaskRecord, scheduleStoreConformance, storeConformance } from "@taskflow/core/testing";
import { IndexedHeap } from "@taskflow/shm-heap";
import { fifo, spec } from "./control-plane.test.fixture.js";
import { MemoryTaskStore } from "./memory-store.js";
import { TaskTable } from "./task-table.js";
import { Tenants } from "./tenants.js";

// The in-memory store keeps the records it is given (by reference), as the PLM relies on.
storeConformance("MemoryTaskStore", { makeStore: () => new MemoryTaskStore(), keepsReferences: true });
// Schedules are copies, though: the kit's isolation test runs.
scheduleStoreConformance("MemoryTaskStore", { makeStore: () => new MemoryTaskStore() });

describe("MemoryTaskStore maxFinishedTasks", () => {
  it("drops the oldest finished tasks beyond the cap, and never unfinished ones", async () => {
    const store = new MemoryTaskStore({ maxFinishedTasks: 2 });
    const now = Date.now();
    const tasks = [1, 2, 3, 4, 5].map((seq) => makeTaskRecord({ id: `t${seq}`, seq, state: seq === 1 ? "queued" : "succeeded", finishedAt: seq === 1 ? 0 : now }));
    await store.insert(tasks);
    assert.equal(await store.purgeFinished(now - 60_000), 2, "within retention, but over the cap");
    assert.deepEqual((await store.list({})).tasks.map((t) => t.id), ["t5", "t4", "t1"]);
  });
});

describe("MemoryTaskStore with the task table's cold tasks", () => {
  it("holds a cold task by ref only, reads it from the table, and takes the thawed record back", async (t) => {
    const store = new MemoryTaskStore();
    const heap = IndexedHeap.create({ capacity: 64 });
    t.after(() => heap.close());
    const table = new TaskTable(fifo, heap, new FakeClock(1_000), undefined, store, { control: { hotQueueDepth: 0 } });
    const account = new Tenants(parseConfig({}), new FakeClock(1_000), { tokens: [] }).account("acme");
    const recs = [1, 2, 3, 4].map((i) => table.tally.newRecord(spec("t", { payload: Uint8Array.of(i), idempotencyKey: i === 4 ? "k" : "" }), "acme", "c1", randomUUID()));
    await store.insert(recs);
    const copies = recs.map((r) => ({ ...r }));
    for (const rec of recs) {
      const live = table.track(rec, account);
      table.enqueue(live);
      table.compact(live);
    }
    // Three went cold (the fourth has an idempotency key); their records are no longer held.
    assert.deepEqual({ ...(await store.get(recs[0]!.id))! }, copies[0], "read back from the table, field for field");
    assert.notEqual(await store.get(recs[0]!.id), recs[0]);
    assert.equal(await store.get(recs[3]!.id), recs[3], "a hot task's record is the table's own");
    assert.equal((await store.counts()).queued, 4);
    const page = await store.list({ pageSize: 3 });
    assert.deepEqual(page.tasks.map((r) => r.seq), [4, 3, 2]);
    assert.deepEqual((await store.list({ pageSize: 3, pageToken: page.nextPageToken })).tasks.map((r) => r.seq), [1]);
    assert.deepEqual((await store.list({ states: ["queued"], type: "t" })).tasks.map((r) => r.seq), [4, 3, 2, 1]);
    const filtered = await store.list({ tenant: "acme", clientId: "c1", pageSize: 2 });
    assert.deepEqual([filtered.tasks.map((r) => r.seq), filtered.totalSize, filtered.nextPageToken], [[4, 3], 4, "3"], "a filter matches cold tasks on their fields");
    assert.deepEqual({ ...filtered.tasks[1]! }, copies[2], "and the page holds their whole records");
    assert.equal((await store.list({ clientId: "other" })).totalSize, 0);
    assert.equal((await store.list({ states: ["running"] })).totalSize, 0, "a cold task is queued");
    assert.deepEqual((await store.loadUnfinished()).map((r) => r.seq), [1, 2, 3, 4]);

    // Popped: thawed into a new record, which the store keeps by reference again.
    const popped = table.popQueued()!;
    assert.equal(popped.rec.id, recs[0]!.id);
    assert.equal(await store.get(popped.rec.id), popped.rec);
    popped.rec.state = "succeeded";
    popped.rec.finishedAt = 1_000;
    assert.equal((await store.list({ states: ["succeeded"] })).tasks[0], popped.rec, "its changes are the store's: no update needed");
    assert.equal(await store.purgeFinished(2_000), 1, "the finished one is purged, the cold ones stay");
    assert.deepEqual((await store.list({})).tasks.map((r) => r.seq), [4, 3, 2]);
  });
});
