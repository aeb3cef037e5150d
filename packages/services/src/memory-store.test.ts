import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeTaskRecord, scheduleStoreConformance, storeConformance } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";

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
