/**
 * The building blocks of the off-heap task table (docs/adr/0030-off-heap-queued-tasks.md): a
 * byte arena for payloads, a ref-counted pool for the few distinct strings and label sets tasks
 * share, and an open-addressing index from a task's 16-byte ID to its heap id. Each keeps its
 * data in typed arrays, so ten million entries are a handful of objects for the garbage
 * collector, not ten million.
 */

/** Payload bytes are kept in size classes of this many bytes; a freed slot is reused by its class. */
const ARENA_CLASS_BYTES = 8;

/**
 * A growable byte arena with freed space reused: slots are rounded up to a multiple of 8 bytes
 * and a freed slot goes on its size's free list, which the next allocation of that size takes.
 * Offsets are below 2^32 (the arena refuses to grow past `maxBytes`).
 */
export class ByteArena {
  private bytes: Uint8Array;
  private top = 0;
  /** Free slot offsets per size class (index = rounded size / 8). */
  private readonly free: number[][] = [];

  constructor(
    initialBytes = 1 << 16,
    private readonly maxBytes = 2 ** 32 - 1,
  ) {
    this.bytes = new Uint8Array(initialBytes);
  }

  /** Bytes handed out or on free lists (the arena's high-water mark). */
  get used(): number {
    return this.top;
  }

  /** Bytes reserved by the backing array. */
  get reserved(): number {
    return this.bytes.byteLength;
  }

  /** Copies `data` in; returns its offset, or -1 when the arena cannot grow that far. */
  alloc(data: Uint8Array): number {
    const len = data.byteLength;
    if (len === 0) return 0;
    const cls = slotClass(len);
    const reuse = this.free[cls]?.pop();
    let offset: number;
    if (reuse !== undefined) offset = reuse;
    else {
      const size = cls * ARENA_CLASS_BYTES;
      if (this.top + size > this.maxBytes) return -1;
      if (this.top + size > this.bytes.byteLength && !this.grow(this.top + size)) return -1;
      offset = this.top;
      this.top += size;
    }
    this.bytes.set(data, offset);
    return offset;
  }

  /** A copy of the `len` bytes at `offset`. */
  read(offset: number, len: number): Uint8Array {
    return this.bytes.slice(offset, offset + len);
  }

  /** The slot at `offset` (allocated for `len` bytes) is free for reuse. */
  release(offset: number, len: number): void {
    if (len === 0) return;
    (this.free[slotClass(len)] ??= []).push(offset);
  }

  /** False when the memory for a bigger array cannot be had: the caller keeps its task a full object. */
  private grow(atLeast: number): boolean {
    let size = this.bytes.byteLength * 2;
    while (size < atLeast) size *= 2;
    let next: Uint8Array;
    try {
      next = new Uint8Array(Math.min(size, this.maxBytes));
    } catch {
      return false;
    }
    next.set(this.bytes.subarray(0, this.top));
    this.bytes = next;
    return true;
  }
}

function slotClass(len: number): number {
  return Math.ceil(len / ARENA_CLASS_BYTES);
}

/**
 * Values shared by many tasks (a type, a tenant, a client ID, a label set), each stored once
 * under a small integer ref and counted: the last release frees the ref for reuse.
 */
export class InternPool<T> {
  private readonly refs = new Map<string, number>();
  private readonly values: (T | undefined)[] = [];
  private readonly keys: string[] = [];
  private readonly counts: number[] = [];
  private readonly freeRefs: number[] = [];

  /** Distinct values held now. */
  get size(): number {
    return this.refs.size;
  }

  /** The ref of the value under `key` (stored as `value` if new), counted once more. */
  intern(key: string, value: T): number {
    let ref = this.refs.get(key);
    if (ref === undefined) {
      ref = this.freeRefs.length ? this.freeRefs.pop()! : this.values.length;
      this.refs.set(key, ref);
      this.values[ref] = value;
      this.keys[ref] = key;
      this.counts[ref] = 0;
    }
    this.counts[ref]!++;
    return ref;
  }

  value(ref: number): T {
    return this.values[ref]!;
  }

  /** The key `ref` was interned under. */
  keyOf(ref: number): string {
    return this.keys[ref]!;
  }

  /** One holder of `ref` let go of it. */
  release(ref: number): void {
    if (--this.counts[ref]! > 0) return;
    this.refs.delete(this.keys[ref]!);
    this.values[ref] = undefined;
    this.freeRefs.push(ref);
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
/** Text offsets of the 16 bytes of a canonical UUID (8-4-4-4-12 hex digits with dashes between). */
const BYTE_AT_CHAR = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * Writes the UUID `id` (lowercase canonical text, as `randomUUID()` and the request-ID deriver
 * make) as 16 bytes at `out[at]`; false, writing nothing useful, for any other ID.
 */
export function packUuid(id: string, out: Uint8Array, at: number): boolean {
  if (id.length !== 36 || id.charCodeAt(8) !== 0x2d || id.charCodeAt(13) !== 0x2d || id.charCodeAt(18) !== 0x2d || id.charCodeAt(23) !== 0x2d) return false;
  for (let b = 0; b < 16; b++) {
    const c = BYTE_AT_CHAR[b]!;
    const hi = hexValue(id.charCodeAt(c));
    const lo = hexValue(id.charCodeAt(c + 1));
    if (hi < 0 || lo < 0) return false;
    out[at + b] = (hi << 4) | lo;
  }
  return true;
}

/** The canonical text of the UUID at `bytes[at]`, built in one go (the scheduler thaws one per assignment). */
export function unpackUuid(bytes: Uint8Array, at: number): string {
  const h = HEX;
  return (
    h[bytes[at]!]! + h[bytes[at + 1]!]! + h[bytes[at + 2]!]! + h[bytes[at + 3]!]! + "-" +
    h[bytes[at + 4]!]! + h[bytes[at + 5]!]! + "-" + h[bytes[at + 6]!]! + h[bytes[at + 7]!]! + "-" +
    h[bytes[at + 8]!]! + h[bytes[at + 9]!]! + "-" + h[bytes[at + 10]!]! + h[bytes[at + 11]!]! +
    h[bytes[at + 12]!]! + h[bytes[at + 13]!]! + h[bytes[at + 14]!]! + h[bytes[at + 15]!]!
  );
}

/** 0-15 for a lowercase hex digit, else -1 (uppercase would not give the same text back). */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * An open-addressing hash index (linear probing, backward-shift deletion, no tombstones) from a
 * 16-byte ID to a small integer id, the IDs kept by the caller in `ids` (16 bytes per id). Slots
 * hold id + 1 (0 = empty); the table doubles when more than half full.
 */
export class IdIndex {
  private slots: Int32Array;
  private mask: number;
  private count = 0;

  constructor(
    private readonly ids: Uint8Array,
    initialSlots = 1024,
  ) {
    let n = 16;
    while (n < initialSlots) n *= 2;
    this.slots = new Int32Array(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Slots allocated (for tests and the ADR's arithmetic). */
  get slotCount(): number {
    return this.slots.length;
  }

  /** Indexes `idx`, whose ID is already written at `ids[idx * 16]`. */
  add(idx: number): void {
    if ((this.count + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    let s = this.home(this.ids, idx * 16);
    while (this.slots[s] !== 0) s = (s + 1) & this.mask;
    this.slots[s] = idx + 1;
    this.count++;
  }

  /** The id whose ID is the 16 bytes at `key[at]`, or -1. */
  find(key: Uint8Array, at: number): number {
    for (let s = this.home(key, at); ; s = (s + 1) & this.mask) {
      const v = this.slots[s]!;
      if (v === 0) return -1;
      if (this.equal(v - 1, key, at)) return v - 1;
    }
  }

  /** Removes `idx` (which must be indexed). */
  remove(idx: number): void {
    let s = this.home(this.ids, idx * 16);
    while (this.slots[s] !== idx + 1) s = (s + 1) & this.mask;
    // Backward shift: pull later entries of the probe run into the hole, so lookups never stop early.
    let hole = s;
    for (let j = (s + 1) & this.mask; this.slots[j] !== 0; j = (j + 1) & this.mask) {
      const home = this.home(this.ids, (this.slots[j]! - 1) * 16);
      // Movable when its home is not in the cyclic range (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      this.slots[hole] = this.slots[j]!;
      hole = j;
    }
    this.slots[hole] = 0;
    this.count--;
  }

  private equal(idx: number, key: Uint8Array, at: number): boolean {
    const ids = this.ids;
    const base = idx * 16;
    for (let i = 0; i < 16; i++) if (ids[base + i] !== key[at + i]) return false;
    return true;
  }

  /**
   * Mixes the first and last 4 bytes: random for v4 UUIDs, while request-derived IDs share
   * their first 12 bytes and count up in the last 4.
   */
  private home(bytes: Uint8Array, at: number): number {
    const a = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
    const b = bytes[at + 12]! | (bytes[at + 13]! << 8) | (bytes[at + 14]! << 16) | (bytes[at + 15]! << 24);
    let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 13;
    return h & this.mask;
  }

  private rehash(size: number): void {
    const old = this.slots;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    for (const v of old) {
      if (v === 0) continue;
      let s = this.home(this.ids, (v - 1) * 16);
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = v;
    }
  }
}
