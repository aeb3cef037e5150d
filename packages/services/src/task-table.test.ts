/** The task table with a real shm heap: indexes, the queue in policy order, parking, counts. */
import "reflect-metadata";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { parseConfig } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { IndexedHeap } from "@taskflow/shm-heap";
import { randomUUID } from "node:crypto";
import { RecordingLogger, fifo as policy, spec } from "./control-plane.test.fixture.js";
import { TaskTable } from "./task-table.js";
import { Tenants, type TenantAccount } from "./tenants.js";

/** `control.hotQueueDepth: 0`: every plain queued task goes cold at once. */
const PACK_ALL = { control: { hotQueueDepth: 0 } };

describe("TaskTable", () => {
  let heap: IndexedHeap;
  let table: TaskTable;
  let tenants: Tenants;
  let acme: TenantAccount;
  beforeEach(() => {
    heap = IndexedHeap.create({ capacity: 8 });
    const clock = new FakeClock(1_000);
    table = new TaskTable(policy, heap, clock);
    tenants = new Tenants(parseConfig({}), clock, { tokens: [] });
    acme = tenants.account("acme");
  });
  afterEach(() => heap.close());

  function add(id: string, key = "", account = acme) {
    const live = table.track(table.tally.newRecord(spec("t", { idempotencyKey: key }), account.name, "c1", id), account);
    table.enqueue(live);
    return live;
  }

  describe("newRecord", () => {
    it("numbers records in sequence after the restored maximum, queued, stamped with the clock", () => {
      table.tally.restore(41, { queued: 0, assigned: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 });
      const rec = table.tally.newRecord(spec("t"), "acme", "c1", "a");
      assert.deepEqual([rec.seq, rec.state, rec.createdAt, rec.tenant, rec.clientId], [42, "queued", 1_000, "acme", "c1"]);
    });
  });

  describe("popQueued", () => {
    it("pops in policy (fifo) order, null when empty, and skips tasks no longer queued", () => {
      const a = add("a");
      add("b");
      a.rec.state = "cancelled";
      assert.equal(table.popQueued(), undefined, "a stale heap entry is skipped");
      assert.equal(table.popQueued()?.rec.id, "b");
      assert.equal(table.popQueued(), null);
    });
  });

  describe("park and unpark", () => {
    it("keeps a parked task out of the heap with its reason, and puts it back at its old key", () => {
      add("a");
      add("b");
      const a = table.popQueued()!;
      table.park(a, "no worker serves it");
      assert.equal(a.parked, true);
      assert.equal(a.rec.waitingReason, "no worker serves it");
      assert.equal(table.inHeap, 1);
      table.unpark(a);
      assert.equal(table.popQueued()?.rec.id, "a", "back ahead of b: same key, earlier sequence");
    });
  });

  describe("countAhead", () => {
    it("counts the tasks that pop first, -1 for a task not in the heap", () => {
      add("a");
      add("b");
      const c = add("c");
      assert.equal(table.countAhead(c, 100), 2);
      assert.equal(table.countAhead(c, 1), 1, "stops at the limit");
      const a = table.popQueued()!;
      assert.equal(table.countAhead(a, 100), -1);
    });
  });

  describe("track and untrack", () => {
    it("indexes by ID and idempotency key, reuses heap ids, and forgets a finished task everywhere", () => {
      const a = add("a", "key-a");
      assert.equal(table.get("a"), a);
      assert.equal(table.byIdempotencyKey("acme", "key-a"), a);
      assert.equal(table.byIdempotencyKey("globex", "key-a"), undefined, "keys are per tenant");
      table.held.add(a, "w1");
      assert.deepEqual(table.held.of("w1"), [a]);
      a.rec.workerId = "w1";
      table.untrack(a);
      assert.equal(table.get("a"), undefined);
      assert.equal(table.byIdempotencyKey("acme", "key-a"), undefined);
      assert.deepEqual(table.held.of("w1"), []);
      assert.equal(table.inHeap, 0, "it left the heap too");
      const b = add("b");
      assert.equal(b.idx, a.idx, "its heap id is reused");
      assert.equal(table.size, 1);
    });

    it("counts each task in its tenant's account while tracked, and keeps equal keys of two tenants apart", () => {
      const globex = tenants.account("globex");
      const a = add("a", "k");
      const b = add("b", "k", globex);
      add("c");
      assert.deepEqual([acme.unfinished, globex.unfinished], [2, 1]);
      assert.equal(table.byIdempotencyKey("acme", "k"), a);
      assert.equal(table.byIdempotencyKey("globex", "k"), b);
      table.untrack(a);
      assert.deepEqual([acme.unfinished, globex.unfinished], [1, 1]);
      assert.equal(table.byIdempotencyKey("globex", "k"), b, "the other tenant's entry stays");
    });
  });

  describe("count", () => {
    it("moves a task between states and counts new ones as queued", () => {
      table.tally.countNew(3);
      table.tally.count("queued", "assigned");
      const counts = table.tally.counts();
      assert.equal(counts.queued, 2);
      assert.equal(counts.assigned, 1);
      counts.queued = 99;
      assert.equal(table.tally.counts().queued, 2, "a copy");
    });
  });

  describe("compact (cold tasks)", () => {
    let cold: TaskTable;
    let coldHeap: IndexedHeap;
    beforeEach(() => {
      coldHeap = IndexedHeap.create({ capacity: 64 });
      // A store that does not keep records by reference (SQLite, Postgres), and no hot queue: plain queued tasks go cold.
      cold = new TaskTable(policy, coldHeap, new FakeClock(5_000), undefined, { keepsRecords: false }, PACK_ALL);
    });
    afterEach(() => coldHeap.close());

    function submit(overrides: Parameters<typeof spec>[1] = {}, tenant = acme) {
      const rec = cold.tally.newRecord(spec("resize", { payload: Uint8Array.of(1, 2, 3), priority: 7, requiredLabels: { gpu: "yes" }, ...overrides }), tenant.name, "c1", randomUUID());
      const live = cold.track(rec, tenant);
      cold.enqueue(live);
      cold.compact(live);
      return { rec: { ...rec }, live };
    }

    it("lets a plain queued task go cold and gives it back whole on get, still queued in the heap", () => {
      const { rec, live } = submit();
      assert.equal(cold.size, 1, "a cold task counts as unfinished");
      assert.equal(acme.unfinished, 1);
      const back = cold.get(rec.id)!;
      assert.notEqual(back, live, "thawed into a new live task");
      assert.deepEqual({ ...back.rec }, rec);
      assert.deepEqual([back.idx, back.handle, back.key, back.enqueuedAt, back.account], [live.idx, live.handle, live.key, live.enqueuedAt, acme]);
      assert.equal(cold.get(rec.id), back, "hot from then on");
      assert.equal(cold.countAhead(back, 10), 0);
      assert.equal(cold.get(randomUUID()), undefined);
    });

    it("pops cold tasks in policy order, thawed, and reuses their heap ids once untracked", () => {
      const ids = [submit(), submit(), submit()].map((s) => s.rec.id);
      const popped = [cold.popQueued()!, cold.popQueued()!, cold.popQueued()!];
      assert.deepEqual(popped.map((l) => l.rec.id), ids, "the fifo policy's order, from the keys kept while cold");
      assert.equal(cold.popQueued(), null);
      for (const live of popped) {
        live.rec.state = "succeeded";
        cold.untrack(live);
      }
      assert.equal(cold.size, 0);
      const again = submit();
      assert.ok(popped.some((l) => l.idx === again.live.idx), "a freed heap id is used again");
      assert.deepEqual({ ...cold.get(again.rec.id)!.rec }, again.rec, "and holds the new task's fields, not the old one's");
    });

    it("keeps tasks hot while the queue is no deeper than control.hotQueueDepth", () => {
      const shallow = new TaskTable(policy, coldHeap, new FakeClock(5_000), undefined, { keepsRecords: false }, { control: { hotQueueDepth: 2 } });
      const queued = [1, 2, 3].map(() => {
        const live = shallow.track(shallow.tally.newRecord(spec("t"), "acme", "c1", randomUUID()), acme);
        shallow.enqueue(live);
        shallow.compact(live);
        return live;
      });
      const same = queued.map((live) => shallow.get(live.rec.id) === live);
      assert.deepEqual(same, [true, true, false], "the third went cold: it was queued behind two");
      assert.equal(shallow.size, 3);
      const popped = [shallow.popQueued()!, shallow.popQueued()!, shallow.popQueued()!];
      assert.deepEqual(popped.map((l) => l.rec.id), queued.map((l) => l.rec.id), "hot and cold pop in one order");
    });

    it("keeps a task with anything unusual hot: idempotency key, metadata, delay, a limit key", () => {
      const keyed = submit({ idempotencyKey: "k1" });
      const tagged = submit({ metadata: { team: "x" } });
      const delayed = submit({ delayMs: 1000 });
      const limited = submit({ concurrencyKey: "db" });
      for (const s of [keyed, tagged, delayed, limited]) assert.equal(cold.get(s.rec.id), s.live, "the same object: never cold");
      // As the wire decoder gives them: "" limit keys are none, so the task is plain.
      const wire = submit({ concurrencyKey: "", rateLimitKey: "" });
      assert.notEqual(cold.get(wire.rec.id), wire.live, "thawed: it was cold");
      assert.equal(cold.byIdempotencyKey("acme", "k1"), keyed.live);
    });

    it("walks cold tasks too in liveTasks, with each tenant's account", () => {
      const globex = tenants.account("globex");
      const a = submit();
      const b = submit({}, globex);
      const seen = [...cold.liveTasks()].map((l) => [l.rec.id, l.account.name]).sort();
      assert.deepEqual(seen, [[a.rec.id, "acme"], [b.rec.id, "globex"]].sort());
      assert.equal(cold.size, 2);
    });

    it("walks only the hot tasks, or thaws only the cold ones a filter matches", () => {
      const a = submit();
      const b = submit({}, tenants.account("globex"));
      const keyed = submit({ idempotencyKey: "k" });
      assert.deepEqual([...cold.liveTasks("hot")], [keyed.live], "the cold ones are not thawed");
      assert.deepEqual([...cold.liveTasks((rec) => rec.tenant === "globex")].map((l) => l.rec.id), [b.rec.id]);
      assert.deepEqual([...cold.liveTasks("hot")].map((l) => l.rec.id).sort(), [keyed.rec.id, b.rec.id].sort(), "the match is hot now, the other one still cold");
      assert.notEqual(cold.get(a.rec.id), a.live);
    });

    it("falls back to objects, with a warning naming the key, when the compact table cannot be reserved", () => {
      const logger = new RecordingLogger();
      // No heap can be this big; it only stands for a capacity whose arrays cannot be allocated.
      const huge = { capacity: 2 ** 40 } as unknown as IndexedHeap;
      const table = new TaskTable(policy, huge, new FakeClock(0), logger, { keepsRecords: false }, PACK_ALL);
      assert.equal(table.size, 0);
      assert.equal(logger.messages().length, 1);
      assert.match(logger.messages()[0]!, /control\.taskHeapCapacity.*stays a JavaScript object/);
    });

    it("stays out of the way when the store keeps records by reference (the memory store)", () => {
      const keeping = new TaskTable(policy, coldHeap, new FakeClock(5_000), undefined, { keepsRecords: true }, PACK_ALL);
      const rec = keeping.tally.newRecord(spec("t"), "acme", "c1", randomUUID());
      const live = keeping.track(rec, acme);
      keeping.enqueue(live);
      keeping.compact(live);
      assert.equal(keeping.get(rec.id), live);
    });
  });
});
