import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { HeapAttachError, HeapFullError, IndexedHeap, MAX_HEAP_CAPACITY, type Handle } from "./index.js";
import { GEN_LIMIT, SLOT_SPAN, slotOf } from "./ordering.js";

/** Deterministic PRNG so a failing fuzz run can be replayed from its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

interface ModelRecord {
  key: number;
  seq: number;
  id: number;
  a: number;
  b: number;
  handle: Handle;
}

/** The trivial model: an unordered list, min found by linear scan on (key, push order). */
class Model {
  records: ModelRecord[] = [];
  private seq = 0;
  push(key: number, id: number, a: number, b: number, handle: Handle): void {
    this.records.push({ key, seq: this.seq++, id, a, b, handle });
  }
  minIndex(): number {
    let best = -1;
    for (let i = 0; i < this.records.length; i++) {
      const r = this.records[i]!;
      const m = best < 0 ? undefined : this.records[best]!;
      if (m === undefined || r.key < m.key || (r.key === m.key && r.seq < m.seq)) best = i;
    }
    return best;
  }
  find(handle: Handle): number {
    return this.records.findIndex((r) => r.handle === handle);
  }
}

function runFuzz(heap: IndexedHeap, seed: number, steps: number): void {
  const rand = rng(seed);
  const model = new Model();
  const dead: Handle[] = [];
  const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(rand() * xs.length)];
  for (let step = 0; step < steps; step++) {
    const op = rand();
    const ctx = `seed ${seed} step ${step}`;
    if (op < 0.36) {
      // Few distinct keys so FIFO tie-breaks are exercised constantly.
      const key = Math.floor(rand() * 8) - 2 + (rand() < 0.1 ? 0.5 : 0);
      const id = Math.floor(rand() * 0x7fffffff);
      const a = (rand() * 0x100000000) | 0;
      const b = (rand() * 0x100000000) | 0;
      if (model.records.length === heap.capacity) {
        assert.throws(() => heap.push(key, id, a, b), HeapFullError, ctx);
      } else {
        const handle = heap.push(key, id, a, b);
        assert.equal(model.find(handle), -1, `${ctx}: fresh handle collides`);
        model.push(key, id, a, b, handle);
      }
    } else if (op < 0.58) {
      const i = model.minIndex();
      const id = heap.pop();
      if (i < 0) {
        assert.equal(id, -1, ctx);
      } else {
        const r = model.records.splice(i, 1)[0]!;
        assert.equal(id, r.id, ctx);
        assert.equal(heap.lastKey, r.key, ctx);
        assert.equal(heap.lastA, r.a, ctx);
        assert.equal(heap.lastB, r.b, ctx);
        assert.equal(heap.lastHandle, r.handle, ctx);
        dead.push(r.handle);
      }
    } else if (op < 0.68) {
      const live = rand() < 0.7;
      const r = live ? pick(model.records) : undefined;
      const handle = r?.handle ?? pick(dead) ?? 12345;
      const ok = heap.remove(handle);
      assert.equal(ok, r !== undefined, ctx);
      if (r !== undefined) {
        model.records.splice(model.find(handle), 1);
        dead.push(handle);
      }
    } else if (op < 0.8) {
      const r = rand() < 0.8 ? pick(model.records) : undefined;
      const handle = r?.handle ?? pick(dead) ?? 777;
      const key = Math.floor(rand() * 8) - 2;
      assert.equal(heap.update(handle, key), r !== undefined, ctx);
      if (r !== undefined) r.key = key;
    } else if (op < 0.9) {
      const r = rand() < 0.6 ? pick(model.records) : undefined;
      const handle = r?.handle ?? pick(dead) ?? -1;
      assert.equal(heap.has(handle), r !== undefined, ctx);
      assert.equal(heap.idOf(handle), r?.id ?? -1, ctx);
      assert.deepEqual(heap.keyOf(handle), r?.key ?? NaN, ctx);
      const ahead = r ? model.records.filter((o) => o.key < r.key || (o.key === r.key && o.seq < r.seq)).length : -1;
      assert.equal(heap.countAhead(handle), ahead, ctx);
      const limit = Math.floor(rand() * 4);
      assert.equal(heap.countAhead(handle, limit), r ? Math.min(ahead, limit) : -1, ctx);
    } else if (op < 0.97) {
      const i = model.minIndex();
      assert.equal(heap.peek(), i < 0 ? -1 : model.records[i]!.id, ctx);
      assert.deepEqual(heap.peekKey(), i < 0 ? NaN : model.records[i]!.key, ctx);
      assert.equal(heap.size, model.records.length, ctx);
    } else if (op < 0.995) {
      const seen: Array<[number, number, Handle]> = [];
      heap.forEach((id, key, handle) => seen.push([id, key, handle]));
      const expected = model.records.map((r): [number, number, Handle] => [r.id, r.key, r.handle]);
      const order = (x: [number, number, Handle], y: [number, number, Handle]): number => x[2] - y[2];
      assert.deepEqual(seen.sort(order), expected.sort(order), ctx);
      assert.equal(heap.validate(), null, ctx);
    } else {
      heap.clear();
      for (const r of model.records) dead.push(r.handle);
      model.records = [];
    }
    if (dead.length > 64) dead.splice(0, 32);
  }
  assert.equal(heap.validate(), null);
  assert.equal(heap.size, model.records.length);
}

describe("IndexedHeap", () => {
  describe("against a reference model", () => {
    for (const [capacity, seed] of [
      [1, 1],
      [7, 2],
      [64, 3],
      [300, 4],
    ] as const) {
      it(`agrees on every operation (capacity ${capacity}, seed ${seed})`, () => {
        runFuzz(IndexedHeap.create({ capacity }), seed, 30_000);
      });
    }
    it("agrees on every operation with backing shm (capacity 100, seed 5)", () => {
      const heap = IndexedHeap.create({ capacity: 100, backing: "shm", name: `/tf-test-fuzz-${process.pid}` });
      try {
        runFuzz(heap, 5, 30_000);
      } finally {
        heap.close();
      }
    });
  });

  describe("push", () => {
    it("pops equal keys in push order, also after updates", () => {
      const heap = IndexedHeap.create({ capacity: 10 });
      const h0 = heap.push(5, 0);
      heap.push(5, 1);
      heap.push(5, 2);
      heap.push(1, 3);
      assert.ok(heap.update(h0, 9));
      assert.ok(heap.update(h0, 5));
      assert.deepEqual([heap.pop(), heap.pop(), heap.pop(), heap.pop(), heap.pop()], [3, 0, 1, 2, -1]);
    });

    it("throws HeapFullError with RESOURCE_EXHAUSTED when full, and accepts again after a pop", () => {
      const heap = IndexedHeap.create({ capacity: 3 });
      for (let i = 0; i < 3; i++) heap.push(i, i);
      assert.throws(
        () => heap.push(0, 9),
        (e: unknown) => e instanceof HeapFullError && e.code === 8 && e.reason === "TASKFLOW_ERR_HEAP_FULL" && e instanceof Error,
      );
      assert.equal(heap.size, 3);
      assert.equal(heap.validate(), null);
      assert.equal(heap.pop(), 0);
      heap.push(-1, 42);
      assert.equal(heap.peek(), 42);
    });

    it("rejects NaN keys and ids out of range", () => {
      const heap = IndexedHeap.create({ capacity: 3 });
      assert.throws(() => heap.push(NaN, 1), RangeError);
      assert.throws(() => heap.push(1, -1), RangeError);
      assert.throws(() => heap.push(1, 2 ** 31), RangeError);
      assert.throws(() => heap.push(1, 1.5), RangeError);
      assert.equal(heap.size, 0);
    });
  });

  describe("handles", () => {
    it("are stale after pop, remove and clear, also once the slot is reused", () => {
      const heap = IndexedHeap.create({ capacity: 1 });
      const h1 = heap.push(1, 10, 3, 4);
      assert.equal(heap.pop(), 10);
      assert.equal(heap.lastHandle, h1);
      assert.deepEqual([heap.lastKey, heap.lastA, heap.lastB], [1, 3, 4]);
      const h2 = heap.push(2, 20); // same slot, next generation
      assert.notEqual(h1, h2);
      for (const stale of [h1]) {
        assert.equal(heap.has(stale), false);
        assert.equal(heap.remove(stale), false);
        assert.equal(heap.update(stale, 0), false);
        assert.equal(heap.idOf(stale), -1);
        assert.ok(Number.isNaN(heap.keyOf(stale)));
      }
      assert.equal(heap.idOf(h2), 20);
      assert.ok(heap.remove(h2));
      assert.equal(heap.remove(h2), false);
      const h3 = heap.push(3, 30);
      heap.clear();
      assert.equal(heap.has(h3), false);
      assert.equal(heap.size, 0);
      assert.equal(heap.pop(), -1);
      assert.ok(Number.isNaN(heap.peekKey()));
    });

    it("treats values no handle can have as stale", () => {
      const heap = IndexedHeap.create({ capacity: 4 });
      heap.push(1, 1);
      for (const bogus of [-1, 0, 3, 1.5, NaN, Infinity, 2 ** 60]) {
        assert.equal(heap.has(bogus), false);
        assert.equal(heap.remove(bogus), false);
      }
      assert.equal(heap.size, 1);
    });
  });

  describe("create and attach", () => {
    it("rejects bad capacities", () => {
      for (const capacity of [0, -1, 1.5, 2 ** 24 + 1, NaN]) {
        assert.throws(
          () => IndexedHeap.create({ capacity }),
          (e: unknown) => e instanceof HeapAttachError && e.message.includes(`1..${2 ** 24}`),
        );
      }
    });

    it("allows 2^24 records: every slot of the largest heap has handles, up to the last generation", () => {
      // A heap of 2^24 records is 738 MB; the handle arithmetic is what bounds it, checked here.
      assert.equal(MAX_HEAP_CAPACITY, 2 ** 24);
      const last = MAX_HEAP_CAPACITY - 1;
      for (const gen of [1, GEN_LIMIT - 1]) {
        const handle = gen * SLOT_SPAN + last;
        assert.ok(Number.isSafeInteger(handle));
        assert.equal(slotOf(handle, MAX_HEAP_CAPACITY), last);
        assert.equal((handle - last) / SLOT_SPAN, gen);
      }
    });

    it("refuses a buffer that is not a heap and says why", () => {
      const buffer = new SharedArrayBuffer(8192);
      assert.throws(
        () => IndexedHeap.attach({ backing: "sab", buffer }),
        (e: unknown) => e instanceof HeapAttachError && /not a Taskflow heap/.test(e.message),
      );
      assert.throws(
        () => IndexedHeap.attach({ backing: "sab", buffer: new SharedArrayBuffer(8) }),
        (e: unknown) => e instanceof HeapAttachError && /too small/.test(e.message),
      );
    });

    it("refuses another layout version", () => {
      const heap = IndexedHeap.create({ capacity: 4 });
      const ref = heap.shared;
      assert.equal(ref.backing, "sab");
      if (ref.backing !== "sab") return;
      new Int32Array(ref.buffer)[1] = 99;
      assert.throws(
        () => IndexedHeap.attach(ref),
        (e: unknown) => e instanceof HeapAttachError && e.reason === "TASKFLOW_ERR_HEAP_VERSION" && /version 99/.test(e.message),
      );
    });

    it("shares one heap with a worker thread", async () => {
      const heap = IndexedHeap.create({ capacity: 8 });
      heap.push(2, 200);
      const worker = new Worker(
        `const { workerData, parentPort } = require("node:worker_threads");
         import(workerData.url).then(({ IndexedHeap }) => {
           const heap = IndexedHeap.attach(workerData.shared);
           const first = heap.pop();
           heap.push(1, 100);
           parentPort.postMessage({ first, size: heap.size });
         });`,
        { eval: true, workerData: { url: new URL("./index.js", import.meta.url).href, shared: heap.shared } },
      );
      const msg = await new Promise((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      await worker.terminate();
      assert.deepEqual(msg, { first: 200, size: 1 });
      assert.equal(heap.pop(), 100);
    });
  });

  describe("popWait", () => {
    it("returns -1 after the timeout on an empty heap", () => {
      const heap = IndexedHeap.create({ capacity: 2 });
      const t0 = performance.now();
      assert.equal(heap.popWait(30), -1);
      assert.ok(performance.now() - t0 >= 25);
    });

    it("treats NaN and negative timeouts as no wait", () => {
      const heap = IndexedHeap.create({ capacity: 2 });
      const t0 = performance.now();
      assert.equal(heap.popWait(NaN), -1);
      assert.equal(heap.popWait(-5), -1);
      assert.ok(performance.now() - t0 < 1000);
    });

    it("returns at once when a record is there", () => {
      const heap = IndexedHeap.create({ capacity: 2 });
      heap.push(1, 5);
      assert.equal(heap.popWait(10_000), 5);
    });
  });

  describe("popAsync", () => {
    it("resolves when another thread pushes, without blocking the event loop", async () => {
      const heap = IndexedHeap.create({ capacity: 2 });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const popped = heap.popAsync(5_000);
      const worker = new Worker(
        `const { workerData } = require("node:worker_threads");
         import(workerData.url).then(({ IndexedHeap }) => {
           setTimeout(() => IndexedHeap.attach(workerData.shared).push(3, 33), 60);
         });`,
        { eval: true, workerData: { url: new URL("./index.js", import.meta.url).href, shared: heap.shared } },
      );
      try {
        assert.equal(await popped, 33);
        assert.ok(ticks >= 3, `event loop ran ${ticks} timer ticks while waiting`);
      } finally {
        clearInterval(timer);
        await worker.terminate();
      }
    });

    it("resolves -1 on timeout", async () => {
      const heap = IndexedHeap.create({ capacity: 2 });
      assert.equal(await heap.popAsync(20), -1);
      heap.push(0, 1);
      assert.equal(await heap.popAsync(20), 1);
    });
  });
});
