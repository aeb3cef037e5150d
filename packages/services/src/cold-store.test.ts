/** The off-heap building blocks: the payload arena, the intern pool, UUID packing, the ID index. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { ByteArena, IdIndex, InternPool, packUuid, unpackUuid } from "./cold-store.js";

describe("ByteArena", () => {
  describe("alloc", () => {
    it("copies bytes in and reads them back as a copy", () => {
      const arena = new ByteArena(16);
      const at = arena.alloc(Uint8Array.of(1, 2, 3));
      const back = arena.read(at, 3);
      assert.deepEqual([...back], [1, 2, 3]);
      back[0] = 9;
      assert.deepEqual([...arena.read(at, 3)], [1, 2, 3], "the read is a copy");
    });

    it("grows past its initial size and keeps what it held", () => {
      const arena = new ByteArena(16);
      const offsets = Array.from({ length: 100 }, (_, i) => arena.alloc(new Uint8Array(20).fill(i)));
      assert.ok(arena.reserved >= 100 * 24);
      offsets.forEach((at, i) => assert.deepEqual([...arena.read(at, 20)], new Array(20).fill(i)));
    });

    it("reuses a freed slot of the same size class before growing", () => {
      const arena = new ByteArena(64);
      const a = arena.alloc(new Uint8Array(16).fill(1));
      arena.alloc(new Uint8Array(16).fill(2));
      const top = arena.used;
      arena.release(a, 16);
      const c = arena.alloc(new Uint8Array(13).fill(3)); // 13 rounds up to the same 16-byte class
      assert.equal(c, a);
      assert.equal(arena.used, top, "no new space taken");
      assert.notEqual(arena.alloc(new Uint8Array(16)), a, "the slot is not handed out twice");
    });

    it("refuses (-1) to grow past its maximum, and takes empty payloads without space", () => {
      const arena = new ByteArena(8, 32);
      assert.equal(arena.alloc(new Uint8Array(0)), 0);
      assert.ok(arena.alloc(new Uint8Array(24)) >= 0);
      assert.equal(arena.alloc(new Uint8Array(16)), -1);
    });
  });
});

describe("InternPool", () => {
  it("stores a value once per key, counts holders, and frees the ref after the last release", () => {
    const pool = new InternPool<string>();
    const a = pool.intern("echo", "echo");
    assert.equal(pool.intern("echo", "echo"), a);
    const b = pool.intern("other", "other");
    assert.equal(pool.size, 2);
    pool.release(a);
    assert.equal(pool.value(a), "echo", "one holder left");
    pool.release(a);
    assert.equal(pool.size, 1);
    assert.equal(pool.intern("third", "third"), a, "the freed ref is reused");
    assert.equal(pool.value(b), "other");
    assert.equal(pool.keyOf(a), "third");
  });
});

describe("packUuid / unpackUuid", () => {
  it("round-trips lowercase canonical UUIDs through 16 bytes", () => {
    const out = new Uint8Array(32);
    for (let i = 0; i < 100; i++) {
      const id = randomUUID();
      assert.equal(packUuid(id, out, 16), true);
      assert.equal(unpackUuid(out, 16), id);
    }
  });

  it("refuses anything that would not read back the same", () => {
    const out = new Uint8Array(16);
    for (const id of ["a", "ABCDEF01-2345-4678-9abc-def012345678", "abcdef01x2345-4678-9abc-def012345678", "abcdef01-2345-4678-9abc-def01234567g", `${randomUUID()}0`]) {
      assert.equal(packUuid(id, out, 0), false, id);
    }
  });
});

describe("IdIndex", () => {
  function indexOf(ids: string[], initialSlots = 16) {
    const bytes = new Uint8Array(ids.length * 16);
    ids.forEach((id, i) => assert.ok(packUuid(id, bytes, i * 16)));
    return { index: new IdIndex(bytes, initialSlots), bytes };
  }
  const probe = (id: string) => {
    const b = new Uint8Array(16);
    packUuid(id, b, 0);
    return b;
  };

  it("finds every id after growing from 16 slots, and -1 for an unknown ID", () => {
    const ids = Array.from({ length: 5000 }, () => randomUUID());
    const { index } = indexOf(ids);
    ids.forEach((_, i) => index.add(i));
    assert.equal(index.size, 5000);
    assert.ok(index.slotCount >= 10_000, `grew to ${index.slotCount} slots`);
    ids.forEach((id, i) => assert.equal(index.find(probe(id), 0), i));
    assert.equal(index.find(probe(randomUUID()), 0), -1);
  });

  it("keeps colliding IDs findable through removals (backward shift, no tombstones)", () => {
    // Same first and last 4 bytes: every ID hashes to the same home slot.
    const ids = Array.from({ length: 40 }, (_, i) => `aaaaaaaa-${i.toString(16).padStart(4, "0")}-4000-8000-0000bbbbbbbb`);
    const { index } = indexOf(ids, 128);
    ids.forEach((_, i) => index.add(i));
    for (let i = 0; i < 40; i += 3) index.remove(i);
    ids.forEach((id, i) => assert.equal(index.find(probe(id), 0), i % 3 === 0 ? -1 : i, id));
    for (let i = 0; i < 40; i += 3) index.add(i);
    ids.forEach((id, i) => assert.equal(index.find(probe(id), 0), i));
    assert.equal(index.size, 40);
  });

  it("stays exact under random adds and removes, checked against a Map", () => {
    const n = 2000;
    const ids = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? `12345678-0000-4000-8000-${i.toString(16).padStart(12, "0")}` : randomUUID()));
    const { index } = indexOf(ids);
    const present = new Set<number>();
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    for (let step = 0; step < 20_000; step++) {
      const i = rand();
      if (present.has(i)) {
        index.remove(i);
        present.delete(i);
      } else {
        index.add(i);
        present.add(i);
      }
    }
    assert.equal(index.size, present.size);
    ids.forEach((id, i) => assert.equal(index.find(probe(id), 0), present.has(i) ? i : -1));
  });
});
