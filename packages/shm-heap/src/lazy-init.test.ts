/**
 * A fresh heap touches no per-slot memory: slots at or above the header's high-water mark are
 * implicitly free. These tests pin the cost (time, resident memory), that handles naming slots
 * above the mark are refused, and that a repair after a lock owner died keeps both sides of the
 * mark right.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { after, describe, it } from "node:test";
import { HeapFullError, IndexedHeap } from "./index.js";
import { H, MAX_CAPACITY, makeViews } from "./layout.js";
import { SLOT_SPAN } from "./ordering.js";

const names: string[] = [];
function freshName(tag: string): string {
  const name = `/tf-test-lazy-${tag}-${process.pid}-${names.length}`;
  names.push(name);
  return name;
}
after(() => {
  for (const name of names) {
    const file = `/dev/shm${name}`;
    if (existsSync(file)) unlinkSync(file);
  }
});

/** This process's resident set in bytes, from /proc/self/status. */
function rssBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  assert.ok(m, "no VmRSS in /proc/self/status");
  return Number(m[1]) * 1024;
}

const MB = 1024 * 1024;

describe("IndexedHeap lazy slot initialisation", () => {
  for (const backing of ["sab", "shm"] as const) {
    it(`creates a 2^24-slot heap (backing ${backing}) in well under 100 ms without making it resident`, (t) => {
      const rss0 = rssBytes();
      const t0 = performance.now();
      const heap = IndexedHeap.create(
        backing === "sab" ? { capacity: MAX_CAPACITY } : { capacity: MAX_CAPACITY, backing, name: freshName("big") },
      );
      const ms = performance.now() - t0;
      const grown = rssBytes() - rss0;
      t.diagnostic(`created in ${ms.toFixed(1)} ms, RSS +${(grown / MB).toFixed(1)} MB`);
      try {
        assert.ok(ms < 100, `creating took ${ms.toFixed(1)} ms`);
        assert.ok(grown < 20 * MB, `RSS grew by ${(grown / MB).toFixed(1)} MB`);
        // It works, and using a few slots (and the O(mark) checker) keeps it small.
        const handles = [3, 1, 2].map((k) => heap.push(k, k * 10));
        assert.equal(heap.validate(), null);
        assert.equal(heap.countAhead(handles[0]!), 2);
        assert.deepEqual([heap.pop(), heap.pop(), heap.pop(), heap.pop()], [10, 20, 30, -1]);
        heap.clear();
        assert.equal(heap.validate(), null);
        assert.ok(rssBytes() - rss0 < 20 * MB, "using a few slots made the heap resident");
      } finally {
        heap.close();
      }
    });
  }

  it("refuses forged and stale handles on slots at or above the mark, even over garbage memory", () => {
    const heap = IndexedHeap.create({ capacity: 1000 });
    const live = [heap.push(5, 1), heap.push(6, 2), heap.push(7, 3)]; // slots 0..2, mark 3
    const v = makeViews((heap.shared as { buffer: SharedArrayBuffer }).buffer, 1000);
    assert.equal(v.header[H.HIGH], 3);
    // Memory above the mark that looks like a live generation-1 record at the root (what a
    // region that once held data could contain): still not a record.
    v.gen[500] = 1;
    v.pos[500] = 0;
    const forged = [1 * SLOT_SPAN + 3, 1 * SLOT_SPAN + 500, 1 * SLOT_SPAN + 999, 7 * SLOT_SPAN + 42];
    for (const h of forged) {
      assert.equal(heap.has(h), false, `has(${h})`);
      assert.equal(heap.remove(h), false, `remove(${h})`);
      assert.equal(heap.update(h, 0), false, `update(${h})`);
      assert.equal(heap.idOf(h), -1);
      assert.ok(Number.isNaN(heap.keyOf(h)));
      assert.equal(heap.countAhead(h), -1);
    }
    assert.equal(heap.size, 3);
    // After clear the mark drops to 0: the old handles are stale, and so is a forged handle
    // with the generation the slot had, while its memory still holds the old record.
    heap.clear();
    assert.equal(v.header[H.HIGH], 0);
    for (const h of live) {
      assert.equal(heap.has(h), false);
      assert.equal(heap.remove(h), false);
      assert.equal(heap.update(h, 1), false);
    }
    v.pos[1] = 0; // a leftover "live" position above the mark
    assert.equal(heap.has(live[1]!), false);
    // Slots are reused from 0 with the next generation: new handles differ from the old ones.
    const again = heap.push(9, 4);
    assert.equal(again % SLOT_SPAN, 0);
    assert.notEqual(again, live[0]);
    assert.equal(heap.idOf(again), 4);
    assert.equal(heap.has(live[0]!), false);
    v.pos[1] = -1;
    assert.equal(heap.validate(), null);
  });

  it("uses every slot: free list first, then the mark, up to capacity", () => {
    const heap = IndexedHeap.create({ capacity: 64 });
    const handles = Array.from({ length: 40 }, (_, i) => heap.push(i, i));
    for (let i = 0; i < 40; i += 2) assert.ok(heap.remove(handles[i]!));
    for (let i = 0; i < 44; i++) heap.push(100 + i, 100 + i); // 20 from the free list, 24 from the mark
    assert.equal(heap.size, 64);
    assert.equal(heap.validate(), null);
    assert.throws(() => heap.push(0, 0), HeapFullError);
    let last = -Infinity;
    for (let n = 0; n < 64; n++) {
      assert.notEqual(heap.pop(), -1);
      assert.ok(heap.lastKey >= last);
      last = heap.lastKey;
    }
    assert.equal(heap.validate(), null);
  });

  it("repairs after a lock holder died mid-push: records below the mark intact, slots above it still free", async () => {
    const capacity = 4096;
    const name = freshName("kill");
    const heap = IndexedHeap.create({ capacity, backing: "shm", name });
    try {
      const handles = Array.from({ length: 100 }, (_, i) => heap.push(1000 - i, i));
      for (let i = 0; i < 100; i += 3) assert.ok(heap.remove(handles[i]!)); // free slots below the mark
      const kept = handles.filter((_, i) => i % 3 !== 0);
      // A child takes the lock, half-does a push that takes slot 100 from the mark (mark
      // raised, fields written, pos not yet committed), then is killed holding the lock.
      const url = new URL("./index.js", import.meta.url).href;
      const code = `const m = await import(${JSON.stringify(url)});
        const heap = m.IndexedHeap.attach({ backing: "shm", name: ${JSON.stringify(name)} });
        heap.lock();
        const v = heap.views, h = v.header, s = h[${H.HIGH}];
        v.pos[s] = -1; h[${H.HIGH}] = s + 1; v.key[s] = -5; v.id[s] = 999; v.gen[s] = 1;
        process.stdout.write("held\\n");
        setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout.once("data", () => resolve());
          child.once("exit", (c) => reject(new Error(`child exited ${c} before holding the lock`)));
        });
        assert.ok(heap.lockOwner() === child.pid, "the child does not hold the lock");
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      const repairs = heap.repairs;
      assert.equal(heap.validate(), null); // takes the lock: repairs
      assert.equal(heap.repairs, repairs + 1);
      assert.equal(heap.size, kept.length);
      for (const h of kept) assert.ok(heap.has(h));
      // The half-pushed record is not there; its slot is free again, as is everything above.
      assert.equal(heap.peek(), 98); // key 902: i = 99 was removed
      for (let i = kept.length; i < capacity; i++) heap.push(i, 10_000 + i);
      assert.equal(heap.size, capacity);
      assert.equal(heap.validate(), null);
      assert.throws(() => heap.push(0, 0), HeapFullError);
      const seen = new Set<number>();
      for (let id = heap.pop(); id !== -1; id = heap.pop()) seen.add(id);
      assert.equal(seen.size, capacity);
      assert.ok(!seen.has(999));
      for (let i = 0; i < 100; i++) assert.equal(seen.has(i), i % 3 !== 0);
    } finally {
      heap.close();
    }
  });
});
