/**
 * The heap object: its public operations, each under the heap's lock. The parts live beside it:
 * attached-region.ts (the views, the lock's fast path and the steps operations share), ordering.ts
 * (sifts, handles), lock.ts (the lock's slow path), waiting.ts (sleeping for a record), region.ts
 * (creating, attaching, checking and repairing the shared region).
 */
import { GrpcCode, HeapAttachError, HeapFullError } from "./errors.js";
import { H, H_SEQ_F64, MAX_CAPACITY, STATE_READY, makeViews, regionBytes } from "./layout.js";
import { loadShmBinding } from "./native.js";
import { GEN_LIMIT, SLOT_SPAN, countBefore, siftDown, siftUp, slotOf } from "./ordering.js";
import {
  DEFAULT_INIT_TIMEOUT_MS,
  checkHeader,
  checkRegion,
  initRegion,
  normaliseName,
  waitReady,
} from "./region.js";
import { waitEvent, waitEventAsync, wakeOne } from "./waiting.js";
import type { Handle, HeapOptions, InternalHeapOptions, SharedHeapRef } from "./options.js";
import { AttachedHeapRegion } from "./attached-region.js";

export type { Handle, HeapOptions, InternalHeapOptions, SharedHeapRef } from "./options.js";

/**
 * An indexed binary min-heap of fixed-size records in shared memory: smallest key first,
 * equal keys in push order. Every operation takes the heap's lock, so any number of threads
 * (backing `"sab"`) or processes (backing `"shm"`) may use one heap at once.
 */
export class IndexedHeap extends AttachedHeapRegion {
  /** Structured-cloneable description another thread or process passes to {@link IndexedHeap.attach}. */
  /**
   * Creates a heap. With backing `"shm"` the first caller of a name creates and initialises the
   * segment and later callers attach to it (capacity must match).
   * @throws HeapAttachError on bad options or when the segment cannot be created or attached.
   */
  static create(options: HeapOptions, internal: InternalHeapOptions = {}): IndexedHeap {
    const capacity = options.capacity;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new HeapAttachError(
        GrpcCode.INVALID_ARGUMENT,
        `heap capacity must be an integer in 1..${MAX_CAPACITY}, got ${String(capacity)}`,
        { reason: "TASKFLOW_ERR_HEAP_OPTIONS" },
      );
    }
    const backing = options.backing ?? "sab";
    if (backing === "sab") {
      const buffer = new SharedArrayBuffer(regionBytes(capacity));
      const views = makeViews(buffer, capacity);
      initRegion(views, capacity, internal.unlocked === true);
      Atomics.store(views.header, H.STATE, STATE_READY);
      return new IndexedHeap({ backing: "sab", buffer }, capacity, views, null, null, true);
    }
    if (backing !== "shm") {
      throw new HeapAttachError(GrpcCode.INVALID_ARGUMENT, `unknown heap backing "${String(backing)}"; use "sab" or "shm"`, {
        reason: "TASKFLOW_ERR_HEAP_OPTIONS",
      });
    }
    const name = normaliseName(options.name);
    const native = loadShmBinding();
    const mapping = native.open(name, regionBytes(capacity), true, internal.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS);
    if (mapping.creator) {
      const views = makeViews(mapping.buffer, capacity);
      initRegion(views, capacity, internal.unlocked === true);
      Atomics.store(views.header, H.STATE, STATE_READY);
      native.wake(mapping.index, H.STATE * 4, 0x7fffffff);
      return new IndexedHeap({ backing: "shm", name }, capacity, views, native, mapping, true);
    }
    checkRegion(native, mapping, name, capacity, internal.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS);
    const views = makeViews(mapping.buffer, capacity);
    return new IndexedHeap({ backing: "shm", name }, capacity, views, native, mapping, false);
  }

  /**
   * Attaches to an existing heap from another thread or process.
   * @throws HeapAttachError when there is no such heap, or it has another layout, version or size.
   */
  static attach(shared: SharedHeapRef, internal: InternalHeapOptions = {}): IndexedHeap {
    if (shared.backing === "sab") {
      const buffer = shared.buffer;
      if (!(buffer instanceof SharedArrayBuffer)) {
        throw new HeapAttachError(GrpcCode.INVALID_ARGUMENT, "heap ref has no SharedArrayBuffer");
      }
      if (buffer.byteLength < regionBytes(1)) {
        throw new HeapAttachError(GrpcCode.FAILED_PRECONDITION, `buffer of ${buffer.byteLength} bytes is too small for a heap`);
      }
      const header = new Int32Array(buffer, 0, 16);
      const capacity = header[H.CAPACITY] ?? 0;
      checkHeader(header, `buffer`);
      if (capacity < 1 || regionBytes(capacity) > buffer.byteLength) {
        throw new HeapAttachError(
          GrpcCode.FAILED_PRECONDITION,
          `buffer of ${buffer.byteLength} bytes is too small for the capacity ${capacity} in its header`,
        );
      }
      return new IndexedHeap({ backing: "sab", buffer }, capacity, makeViews(buffer, capacity), null, null, false);
    }
    if (shared.backing === "shm") {
      const name = normaliseName(shared.name);
      const native = loadShmBinding();
      const timeout = internal.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS;
      const mapping = native.open(name, 0, false, timeout);
      const header = new Int32Array(mapping.buffer, 0, 16);
      waitReady(native, mapping, header, name, timeout);
      checkHeader(header, `segment ${name}`);
      const capacity = header[H.CAPACITY] ?? 0;
      if (capacity < 1 || regionBytes(capacity) > mapping.buffer.byteLength) {
        throw new HeapAttachError(
          GrpcCode.FAILED_PRECONDITION,
          `segment ${name} is too small: ${mapping.buffer.byteLength} bytes, capacity ${capacity} needs ${regionBytes(capacity)}`,
        );
      }
      return new IndexedHeap({ backing: "shm", name }, capacity, makeViews(mapping.buffer, capacity), native, mapping, false);
    }
    throw new HeapAttachError(GrpcCode.INVALID_ARGUMENT, `unknown heap backing "${String((shared as { backing: unknown }).backing)}"`);
  }

  /**
   * Removes a segment name (backing `"shm"`), e.g. one a crashed run left behind, so the next
   * `create` starts a fresh heap instead of attaching to the old one. Processes attached keep
   * their mapping. Not part of the heap-object API because it acts on a name, not a heap.
   * @returns false when no segment had the name
   */
  static unlink(name: string): boolean {
    return loadShmBinding().unlink(normaliseName(name));
  }

  /** Records in the heap now. */
  get size(): number {
    this.lock();
    const n = this.h[H.SIZE]!;
    this.unlock();
    return n;
  }

  /**
   * Adds a record. Smallest key pops first; equal keys pop in push order.
   * @param key - priority, any number but NaN
   * @param id - caller's integer, 0 … 2^31-1
   * @param a - extra int32 a policy may use @defaultValue 0
   * @param b - extra int32 a policy may use @defaultValue 0
   * @returns a handle for `remove`/`update`/`has`
   * @throws HeapFullError when the heap holds `capacity` records
   * @throws RangeError on a NaN key or an id out of range
   */
  push(key: number, id: number, a = 0, b = 0): Handle {
    if (key !== key) throw new RangeError("heap key must not be NaN");
    if (!(id >= 0 && id <= 0x7fffffff) || id !== Math.floor(id)) throw new RangeError(`heap id must be an integer in 0..2^31-1, got ${id}`);
    this.lock();
    const h = this.h;
    const n = h[H.SIZE]!;
    if (n >= this.capacity) {
      this.unlock();
      throw new HeapFullError(this.capacity);
    }
    let slot = h[H.FREE]!;
    if (slot >= 0) {
      h[H.FREE] = this.next[slot]!;
    } else {
      // The free list is empty and n < capacity, so the mark is below capacity. Fresh memory
      // reads pos = 0, which a repair would take for a live record: mark the slot free before
      // the mark covers it. Its gen is 0 (fresh) or what it had before a clear, so bumping it
      // below keeps old handles stale.
      slot = h[H.HIGH]!;
      this.pos[slot] = -1;
      h[H.HIGH] = slot + 1;
    }
    let g = this.gen[slot]! + 1;
    if (g >= GEN_LIMIT) g = 1;
    this.gen[slot] = g;
    this.key[slot] = key;
    const s = this.hf[H_SEQ_F64]!;
    this.hf[H_SEQ_F64] = s + 1;
    this.seq[slot] = s;
    this.ids[slot] = id;
    this.fa[slot] = a;
    this.fb[slot] = b;
    this.heap[n] = slot;
    // The commit point a repair trusts: every field above is written before the record is
    // live. Plain stores: the optimising compiler keeps stores in program order and x86 does
    // not reorder them; other threads see them through the lock's atomics. (An Atomics call
    // costs as much as a whole sift step here.)
    this.pos[slot] = n;
    h[H.SIZE] = n + 1;
    siftUp(this.heap, this.key, this.seq, this.pos, n, slot, key, s);
    const wake = h[H.SLEEPERS]! > 0;
    if (wake) Atomics.add(h, H.EVENT, 1);
    this.unlock();
    if (wake) wakeOne(h, this.native, this.mapping);
    return g * SLOT_SPAN + slot;
  }

  /** Removes the smallest record; returns its id, or -1 when empty. `lastKey`/`lastHandle`/`lastA`/`lastB` then describe it. */
  pop(): number {
    this.lock();
    const id = this.popLocked();
    this.unlock();
    return id;
  }

  /** Id of the smallest record without removing it, or -1 when empty. */
  peek(): number {
    this.lock();
    const id = this.h[H.SIZE]! > 0 ? this.ids[this.heap[0]!]! : -1;
    this.unlock();
    return id;
  }

  /** Key of the smallest record, or NaN when empty. */
  peekKey(): number {
    this.lock();
    const k = this.h[H.SIZE]! > 0 ? this.key[this.heap[0]!]! : NaN;
    this.unlock();
    return k;
  }

  /** Removes the record in O(log n); false if the handle is stale. */
  remove(handle: Handle): boolean {
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return false;
    this.lock();
    // Read the position once: the test-only unlocked mode must not turn a racing -1 into an endless sift.
    const i = this.pos[slot]!;
    if (i < 0 || slot >= this.h[H.HIGH]! || this.gen[slot]! !== (handle - slot) / SLOT_SPAN) {
      this.unlock();
      return false;
    }
    this.removeAt(i, slot);
    this.unlock();
    return true;
  }

  /** Gives the record a new key in O(log n), keeping its FIFO sequence; false if the handle is stale. */
  update(handle: Handle, newKey: number): boolean {
    if (newKey !== newKey) throw new RangeError("heap key must not be NaN");
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return false;
    this.lock();
    const i = this.pos[slot]!;
    if (i < 0 || slot >= this.h[H.HIGH]! || this.gen[slot]! !== (handle - slot) / SLOT_SPAN) {
      this.unlock();
      return false;
    }
    const old = this.key[slot]!;
    this.key[slot] = newKey;
    if (newKey < old) siftUp(this.heap, this.key, this.seq, this.pos, i, slot, newKey, this.seq[slot]!);
    else if (newKey > old) siftDown(this.heap, this.key, this.seq, this.pos, i, slot, newKey, this.seq[slot]!, this.h[H.SIZE]!);
    this.unlock();
    return true;
  }

  /** True while the handle names a live record. */
  /**
   * How many records pop before the one `handle` names (a smaller key, or an equal key pushed
   * earlier), counting at most `limit`; -1 for a handle no longer in the heap. Costs
   * O(min(count, limit)) under the lock, not O(size): a record that does not pop before it has no
   * descendant that does, so the walk never leaves the part of the heap ahead of it.
   * @param limit - stop counting here @defaultValue Infinity
   */
  countAhead(handle: Handle, limit = Infinity): number {
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return -1;
    this.lock();
    try {
      if (!this.liveLocked(handle, slot)) return -1;
      return countBefore(this.heap, this.key, this.seq, this.h[H.SIZE]!, this.key[slot]!, this.seq[slot]!, limit);
    } finally {
      this.unlock();
    }
  }

  has(handle: Handle): boolean {
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return false;
    this.lock();
    const live = this.liveLocked(handle, slot);
    this.unlock();
    return live;
  }

  /** The record's id, or -1 if the handle is stale. */
  idOf(handle: Handle): number {
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return -1;
    this.lock();
    const id = this.liveLocked(handle, slot) ? this.ids[slot]! : -1;
    this.unlock();
    return id;
  }

  /** The record's key, or NaN if the handle is stale. */
  keyOf(handle: Handle): number {
    const slot = slotOf(handle, this.capacity);
    if (slot < 0) return NaN;
    this.lock();
    const k = this.liveLocked(handle, slot) ? this.key[slot]! : NaN;
    this.unlock();
    return k;
  }

  /**
   * Visits live records in unspecified order, from a copy taken under the lock (so `fn` may
   * call the heap, and sees one consistent moment).
   */
  forEach(fn: (id: number, key: number, handle: Handle) => void): void {
    this.lock();
    const n = this.h[H.SIZE]!;
    const ids = new Int32Array(n);
    const keys = new Float64Array(n);
    const handles = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const slot = this.heap[i]!;
      ids[i] = this.ids[slot]!;
      keys[i] = this.key[slot]!;
      handles[i] = this.gen[slot]! * SLOT_SPAN + slot;
    }
    this.unlock();
    for (let i = 0; i < n; i++) fn(ids[i]!, keys[i]!, handles[i]!);
  }

  /**
   * Pops, waiting up to `timeoutMs` for a record when empty; -1 on timeout. Blocks the calling
   * thread: for worker threads and worker processes, never the main thread of a server.
   */
  popWait(timeoutMs: number): number {
    // NaN and negatives mean "don't wait" (Atomics.wait would read NaN as forever); Infinity waits forever.
    const deadline = performance.now() + (timeoutMs > 0 ? timeoutMs : 0);
    const h = this.h;
    this.lock();
    for (;;) {
      const id = this.popLocked();
      if (id >= 0) {
        this.unlock();
        return id;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        this.unlock();
        return -1;
      }
      // Read the event word under the lock: a push after our unlock changes it, so the wait
      // below returns at once instead of missing the wake-up.
      h[H.SLEEPERS] = h[H.SLEEPERS]! + 1;
      const ev = Atomics.load(h, H.EVENT);
      this.unlock();
      waitEvent(h, this.native, this.mapping, ev, left);
      this.lock();
      h[H.SLEEPERS] = h[H.SLEEPERS]! - 1;
    }
  }

  /** Pops, waiting up to `timeoutMs` without ever blocking the event loop; resolves -1 on timeout. */
  async popAsync(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + (timeoutMs > 0 ? timeoutMs : 0);
    const h = this.h;
    for (;;) {
      this.lock();
      const id = this.popLocked();
      if (id >= 0) {
        this.unlock();
        return id;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        this.unlock();
        return -1;
      }
      h[H.SLEEPERS] = h[H.SLEEPERS]! + 1;
      const ev = Atomics.load(h, H.EVENT);
      this.unlock();
      try {
        await waitEventAsync(h, this.native, this.mapping, ev, left);
      } finally {
        this.lock();
        h[H.SLEEPERS] = h[H.SLEEPERS]! - 1;
        this.unlock();
      }
    }
  }

  /** Removes every record; their handles become stale. */
  clear(): void {
    this.lock();
    // O(high-water mark), not O(capacity): slots above the mark are already free. Clearing pos
    // first keeps a repair after a death here coherent; dropping the mark to 0 frees the rest.
    // Generations stay, so the old handles stay stale when their slots are used again.
    const high = this.h[H.HIGH]!;
    for (let s = 0; s < high; s++) Atomics.store(this.pos, s, -1);
    this.h[H.FREE] = -1;
    this.h[H.HIGH] = 0;
    this.h[H.SIZE] = 0;
    this.unlock();
  }
}
