import { GrpcCode, HeapAttachError, HeapFullError } from "./errors.js";
import {
  FLAG_NO_LOCK,
  H,
  H_SEQ_F64,
  LAYOUT_VERSION,
  MAGIC,
  MAX_CAPACITY,
  SLOT_BYTES,
  SLOT_COUNT,
  SLOT_PID_OFFSET,
  SLOTS_OFFSET,
  STATE_READY,
  makeViews,
  regionBytes,
  type Views,
} from "./layout.js";
import { loadShmBinding, type ShmBinding, type ShmMapping } from "./native.js";

/** Options of {@link IndexedHeap.create}. */
export interface HeapOptions {
  /** Most records the heap holds (1 … 16,777,215). */
  capacity: number;
  /**
   * Where the heap lives.
   * - `"sab"`: a `SharedArrayBuffer`, shared with worker threads through {@link IndexedHeap.shared}.
   * - `"shm"`: a named POSIX shared memory segment, shared with other processes (and threads) by name.
   * @defaultValue `"sab"`
   */
  backing?: "sab" | "shm";
  /**
   * Segment name for backing `"shm"` (required there), e.g. `"/taskflow-tasks"`; a leading `/`
   * is added when missing. The first process to create the name initialises the segment; the
   * others attach to it (their capacity must match).
   */
  name?: string;
}

/**
 * What another thread or process needs to attach to a heap; structured-cloneable, so it can
 * travel through `postMessage` or `workerData`.
 */
export type SharedHeapRef =
  | { readonly backing: "sab"; readonly buffer: SharedArrayBuffer }
  | { readonly backing: "shm"; readonly name: string };

/**
 * A record handle: encodes slot and generation so a handle to a popped or removed record is
 * recognised as stale even after its slot is reused.
 */
export type Handle = number;

/** @internal Options only tests use. */
export interface InternalHeapOptions {
  /** Skip the lock entirely (stored in the header, so attachers skip it too). */
  unlocked?: boolean;
  /** How long an attacher waits for a creator to finish initialising, ms. @defaultValue 2000 */
  initTimeoutMs?: number;
}

// Handles are gen * SLOT_SPAN + slot: exact doubles up to 2^53 since gen < 2^29.
const SLOT_SPAN = 16777216;
const GEN_LIMIT = 0x20000000;
// Lock attempts before sleeping, each after a pause that doubles from BACKOFF_MIN to BACKOFF_MAX
// spinPause steps (~1.5 ns each here): about 45 us in all. A waiter that hammered the lock word
// (the previous scheme: 100 tight loads) pulled the header line away from the owner on every
// probe, and won the lock right after each unlock, so two cores took turns op by op and every
// op missed on all the lines the other had written (~65 ns per line on the 2-core VM). Pausing
// without touching shared memory lets the owner run a burst of ops on hot lines.
// Measured (three runs of 7-9 alternating rounds): 2 processes +15-50 % ops/s, 2 threads +20-55 %,
// 4 threads within noise; the smaller contender's share sometimes drops (0.43 to 0.28 in one
// run). See ADR 0003, "Cross-process throughput".
const SPIN = 20;
const BACKOFF_MIN = 32;
const BACKOFF_MAX = 2048;
/** Sink for spinPause's result, so the optimiser cannot drop the loop. */
let pauseSink = 0;
/** Busy-waits `n` dependent integer steps, touching no shared memory (Node 20 has no Atomics.pause). */
function spinPause(n: number): void {
  let x = pauseSink;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 31) + i) | 0;
  pauseSink = x;
}
// Lock modes; sab and shm share the fast path, so they are the two lowest values.
const LOCK_SAB = 0;
const LOCK_SHM = 1;
const LOCK_NONE = 2;
const LOCK_CLOSED = 3;
/**
 * How long a waiter sleeps on the lock word of an shm heap before it asks the kernel (through
 * the owner's liveness slot) whether the owner still lives: the recovery time after a kill.
 */
const LIVENESS_CHECK_MS = 10;
/** Lock word: owner (liveness slot + 1) in the low byte, and this bit while someone may sleep. */
const LOCK_OWNER_MASK = 0xff;
const LOCK_WAITERS = 0x40000000;
const DEFAULT_INIT_TIMEOUT_MS = 2000;

// Atomics.waitAsync is in Node 20 (V8 11) but only in TypeScript's ES2024 lib, which the
// workspace does not target.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { value: Promise<string> | string };
}).waitAsync;

/**
 * An indexed binary min-heap of fixed-size records in shared memory: smallest key first,
 * equal keys in push order. Every operation takes the heap's lock, so any number of threads
 * (backing `"sab"`) or processes (backing `"shm"`) may use one heap at once.
 */
export class IndexedHeap {
  /** Structured-cloneable description another thread or process passes to {@link IndexedHeap.attach}. */
  readonly shared: SharedHeapRef;
  /** Most records the heap holds. */
  readonly capacity: number;
  /** Key of the record the last successful `pop` returned. */
  lastKey = NaN;
  /** Handle of the record the last successful `pop` returned (now stale). */
  lastHandle: Handle = -1;
  /** Field `a` of the record the last successful `pop` returned. */
  lastA = 0;
  /** Field `b` of the record the last successful `pop` returned. */
  lastB = 0;

  private readonly h: Int32Array;
  private readonly hf: Float64Array;
  private readonly key: Float64Array;
  private readonly seq: Float64Array;
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  private readonly next: Int32Array;
  private readonly gen: Int32Array;
  private readonly ids: Int32Array;
  private readonly fa: Int32Array;
  private readonly fb: Int32Array;
  private lockMode: number;
  /** Value this heap object writes into the lock word: its liveness slot + 1 (1 for "sab"). */
  private readonly me: number;
  /** Liveness slot this thread holds in an shm segment, -1 for "sab". */
  private readonly slot: number;
  private readonly native: ShmBinding | null;
  private readonly mapping: ShmMapping | null;
  private readonly creator: boolean;

  private constructor(
    shared: SharedHeapRef,
    capacity: number,
    views: Views,
    native: ShmBinding | null,
    mapping: ShmMapping | null,
    creator: boolean,
  ) {
    this.shared = shared;
    this.capacity = capacity;
    this.h = views.header;
    this.hf = views.headerF64;
    this.key = views.key;
    this.seq = views.seq;
    this.heap = views.heap;
    this.pos = views.pos;
    this.next = views.next;
    this.gen = views.gen;
    this.ids = views.id;
    this.fa = views.a;
    this.fb = views.b;
    this.native = native;
    this.mapping = mapping;
    this.creator = creator;
    const unlocked = (Atomics.load(this.h, H.FLAGS) & FLAG_NO_LOCK) !== 0;
    this.lockMode = unlocked ? LOCK_NONE : native === null ? LOCK_SAB : LOCK_SHM;
    this.slot = native === null ? -1 : claimSlot(native, mapping!, shared);
    this.me = this.slot + 1 || 1;
    if (native !== null) {
      openShmHeaps.add(this);
      // The previous holder of our slot died holding the heap lock: the lock is ours now.
      if ((Atomics.load(this.h, H.LOCK) & LOCK_OWNER_MASK) === this.me) {
        this.repairAfterOwnerDied();
        this.unlock();
      }
    }
  }

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
    const slot = h[H.FREE]!;
    h[H.FREE] = this.next[slot]!;
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
    this.siftUp(n, slot, key, s);
    const wake = h[H.SLEEPERS]! > 0;
    if (wake) Atomics.add(h, H.EVENT, 1);
    this.unlock();
    if (wake) this.wakeOne();
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
    const slot = this.slotOf(handle);
    if (slot < 0) return false;
    this.lock();
    // Read the position once: the test-only unlocked mode must not turn a racing -1 into an endless sift.
    const i = this.pos[slot]!;
    if (i < 0 || this.gen[slot]! !== (handle - slot) / SLOT_SPAN) {
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
    const slot = this.slotOf(handle);
    if (slot < 0) return false;
    this.lock();
    const i = this.pos[slot]!;
    if (i < 0 || this.gen[slot]! !== (handle - slot) / SLOT_SPAN) {
      this.unlock();
      return false;
    }
    const old = this.key[slot]!;
    this.key[slot] = newKey;
    if (newKey < old) this.siftUp(i, slot, newKey, this.seq[slot]!);
    else if (newKey > old) this.siftDown(i, slot, newKey, this.seq[slot]!);
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
    const slot = this.slotOf(handle);
    if (slot < 0) return -1;
    this.lock();
    try {
      if (!this.liveLocked(handle, slot)) return -1;
      const key = this.key[slot]!;
      const seq = this.seq[slot]!;
      const n = this.h[H.SIZE]!;
      let count = 0;
      const stack = [0];
      while (stack.length > 0 && count < limit) {
        const i = stack.pop()!;
        if (i >= n) continue;
        const s = this.heap[i]!;
        const k = this.key[s]!;
        if (k < key || (k === key && this.seq[s]! < seq)) {
          count++;
          stack.push(2 * i + 1, 2 * i + 2);
        }
      }
      return count;
    } finally {
      this.unlock();
    }
  }

  has(handle: Handle): boolean {
    const slot = this.slotOf(handle);
    if (slot < 0) return false;
    this.lock();
    const live = this.liveLocked(handle, slot);
    this.unlock();
    return live;
  }

  /** The record's id, or -1 if the handle is stale. */
  idOf(handle: Handle): number {
    const slot = this.slotOf(handle);
    if (slot < 0) return -1;
    this.lock();
    const id = this.liveLocked(handle, slot) ? this.ids[slot]! : -1;
    this.unlock();
    return id;
  }

  /** The record's key, or NaN if the handle is stale. */
  keyOf(handle: Handle): number {
    const slot = this.slotOf(handle);
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
      this.waitEvent(ev, left);
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
        await this.waitEventAsync(ev, left);
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
    const cap = this.capacity;
    for (let s = 0; s < cap; s++) Atomics.store(this.pos, s, -1);
    for (let s = 0; s < cap; s++) this.next[s] = s + 1 < cap ? s + 1 : -1;
    this.h[H.FREE] = 0;
    this.h[H.SIZE] = 0;
    this.unlock();
  }

  /**
   * Detaches this object from the heap; later calls throw. For backing `"shm"` it gives back
   * its liveness slot, and the creator also unlinks the segment name (processes attached keep
   * their mapping). The mapping itself stays until the process exits: the kernel walks robust
   * mutex lists by address when a thread dies, so unmapping them is unsafe. Creators that are
   * still open when the process exits normally unlink their names then. No-op for `"sab"`.
   */
  close(): void {
    if (this.lockMode === LOCK_CLOSED || this.native === null || this.mapping === null || this.shared.backing !== "shm") return;
    this.lockMode = LOCK_CLOSED;
    openShmHeaps.delete(this);
    this.native.releaseSlot(this.mapping.index, this.slot);
    if (this.creator) this.native.unlink(this.shared.name);
  }

  /** @internal Times a dead lock owner's heap was repaired (shm). */
  get repairs(): number {
    return Atomics.load(this.h, H.REPAIRS);
  }

  /**
   * @internal Pid of the process whose thread holds the lock now, 0 when free or for backing
   * "sab". Tests use it to kill a process while it holds the lock.
   */
  lockOwner(): number {
    const owner = Atomics.load(this.h, H.LOCK) & LOCK_OWNER_MASK;
    if (this.mapping === null || owner === 0) return 0;
    return Atomics.load(this.h, (SLOTS_OFFSET + (owner - 1) * SLOT_BYTES + SLOT_PID_OFFSET) / 4);
  }

  /**
   * @internal Checks every heap invariant; returns a description of the first broken one, or
   * null. For tests and diagnostics.
   */
  validate(): string | null {
    this.lock();
    try {
      return validateViews(this.viewsForRepair(), this.capacity);
    } finally {
      this.unlock();
    }
  }

  // ---- internals -------------------------------------------------------------------------

  private lock(): void {
    const mode = this.lockMode;
    if (mode <= LOCK_SHM) {
      // Uncontended: one compare-and-swap, no native call, for both backings.
      if (Atomics.compareExchange(this.h, H.LOCK, 0, this.me) !== 0) this.lockContended();
    } else if (mode === LOCK_CLOSED) {
      throw new HeapAttachError(GrpcCode.FAILED_PRECONDITION, "heap is closed", { reason: "TASKFLOW_ERR_HEAP_CLOSED" });
    }
  }

  private unlock(): void {
    // One atomic: the WAITERS bit travels in the lock word, so no separate sleeper count is
    // read (each Atomics call costs ~10-30 ns) and none goes stale when a sleeper is killed.
    if (this.lockMode <= LOCK_SHM && (Atomics.exchange(this.h, H.LOCK, 0) & LOCK_WAITERS) !== 0) this.wakeLockSleeper();
  }

  private lockContended(): void {
    const h = this.h;
    const me = this.me;
    let pause = BACKOFF_MIN;
    for (let i = 0; i < SPIN; i++) {
      spinPause(pause);
      if (Atomics.load(h, H.LOCK) === 0 && Atomics.compareExchange(h, H.LOCK, 0, me) === 0) return;
      if (pause < BACKOFF_MAX) pause <<= 1;
    }
    // Drepper-style: a sleeper sets WAITERS so the unlocker wakes someone; a thread that has
    // slept takes the lock with WAITERS set, since others may still sleep. Unlocking clears
    // the bit, so it does not stick; wakeLockSleeper keeps one wake in flight at a time.
    for (;;) {
      let w = Atomics.load(h, H.LOCK);
      if ((w & LOCK_OWNER_MASK) === 0) {
        if (Atomics.compareExchange(h, H.LOCK, w, me | LOCK_WAITERS) === w) return;
        continue;
      }
      if ((w & LOCK_WAITERS) === 0) {
        const marked = w | LOCK_WAITERS;
        if (Atomics.compareExchange(h, H.LOCK, w, marked) !== w) continue;
        w = marked;
      }
      let timedOut = false;
      if (this.native === null) Atomics.wait(h, H.LOCK, w);
      else timedOut = this.native.wait(this.mapping!.index, H.LOCK * 4, w, LIVENESS_CHECK_MS) === 1;
      Atomics.store(h, H.LOCK_WAKING, 0);
      for (let i = 0; i < SPIN; i++) {
        if (Atomics.load(h, H.LOCK) === 0 && Atomics.compareExchange(h, H.LOCK, 0, me | LOCK_WAITERS) === 0) return;
      }
      if (timedOut && this.takeOverFromDeadOwner()) return;
    }
  }

  /**
   * The lock has been held for a while: if its owner's thread or process died (the kernel
   * marked its robust liveness mutex), take the lock over and repair the heap. Pid checks
   * would be fooled by pid reuse and namespaces; the kernel's robust-futex list is not.
   */
  private takeOverFromDeadOwner(): boolean {
    const h = this.h;
    const w = Atomics.load(h, H.LOCK);
    const owner = w & LOCK_OWNER_MASK;
    if (owner === 0 || owner === this.me) return false;
    const index = this.mapping!.index;
    if (this.native!.probeSlot(index, owner - 1) === 0) return false;
    try {
      // Retry while only the WAITERS bit changes under us: the dead owner is still named.
      for (let cur = w; (cur & LOCK_OWNER_MASK) === owner; cur = Atomics.load(h, H.LOCK)) {
        if (Atomics.compareExchange(h, H.LOCK, cur, this.me | LOCK_WAITERS) === cur) {
          this.repairAfterOwnerDied();
          return true;
        }
      }
      return false;
    } finally {
      this.native!.releaseSlot(index, owner - 1);
    }
  }

  /**
   * Wakes one lock sleeper unless one is already on its way: with more threads than cores,
   * a notify per unlock kept waking threads that only went back to sleep, and throughput
   * collapsed (4 threads: 0.5 M ops/s instead of the single-thread figure).
   */
  private wakeLockSleeper(): void {
    const h = this.h;
    if (Atomics.load(h, H.LOCK_WAKING) !== 0 || Atomics.compareExchange(h, H.LOCK_WAKING, 0, 1) !== 0) return;
    // Nobody was asleep yet (a sleeper between counting itself and waiting): it will see the
    // lock free, so clear the flag or later unlocks would never wake anyone.
    const woken = this.native === null ? Atomics.notify(h, H.LOCK, 1) : this.native.wake(this.mapping!.index, H.LOCK * 4, 1);
    if (woken === 0) Atomics.store(h, H.LOCK_WAKING, 0);
  }

  /** We hold the lock its previous owner died holding: rebuild from `pos`. */
  private repairAfterOwnerDied(): void {
    repairViews(this.viewsForRepair(), this.capacity);
    Atomics.add(this.h, H.REPAIRS, 1);
  }

  private viewsForRepair(): Views {
    return {
      header: this.h,
      headerF64: this.hf,
      key: this.key,
      seq: this.seq,
      heap: this.heap,
      pos: this.pos,
      next: this.next,
      gen: this.gen,
      id: this.ids,
      a: this.fa,
      b: this.fb,
    };
  }

  private wakeOne(): void {
    if (this.native === null) Atomics.notify(this.h, H.EVENT, 1);
    else this.native.wake(this.mapping!.index, H.EVENT * 4, 1);
  }

  private waitEvent(ev: number, ms: number): void {
    if (this.native === null) Atomics.wait(this.h, H.EVENT, ev, ms);
    else this.native.wait(this.mapping!.index, H.EVENT * 4, ev, ms);
  }

  private waitEventAsync(ev: number, ms: number): Promise<unknown> {
    if (this.native === null) {
      const r = waitAsync(this.h, H.EVENT, ev, ms);
      if (typeof r.value === "string") return Promise.resolve(r.value);
      // Node does not count a pending Atomics.waitAsync as work: without a referenced timer
      // the process may exit (or a test runner give up) while we wait.
      const wait = r.value;
      return new Promise((resolve) => {
        // setTimeout turns delays beyond 2^31-1 ms into 1 ms; the outer loop waits again anyway.
        const timer = setTimeout(resolve, Math.min(ms + 1, 0x7fffffff));
        void wait.then((v) => {
          clearTimeout(timer);
          resolve(v);
        });
      });
    }
    return this.native.waitAsync(this.mapping!.index, H.EVENT * 4, ev, ms);
  }

  private popLocked(): number {
    const h = this.h;
    const n = h[H.SIZE]!;
    if (n <= 0) return -1;
    const slot = this.heap[0]!;
    const id = this.ids[slot]!;
    this.lastKey = this.key[slot]!;
    this.lastA = this.fa[slot]!;
    this.lastB = this.fb[slot]!;
    this.lastHandle = this.gen[slot]! * SLOT_SPAN + slot;
    this.removeAt(0, slot);
    return id;
  }

  /** Takes `slot` out from heap position `i`; the slot's `pos` is cleared last (the commit point). */
  private removeAt(i: number, slot: number): void {
    const h = this.h;
    const last = h[H.SIZE]! - 1;
    h[H.SIZE] = last;
    if (i !== last) {
      const moved = this.heap[last]!;
      const k = this.key[moved]!;
      const s = this.seq[moved]!;
      const ks = this.key[slot]!;
      if (k < ks || (k === ks && s < this.seq[slot]!)) this.siftUp(i, moved, k, s);
      else this.holeDown(i, moved, k, s, last);
    }
    this.pos[slot] = -1; // the commit point, written last (see push)
    this.next[slot] = h[H.FREE]!;
    h[H.FREE] = slot;
  }

  /**
   * Floyd's bottom-up sift for a record that belongs at or below `i`: walk the hole down to a
   * leaf along the smaller children (one comparison per level), then sift the record up from
   * there. The last record of a heap nearly always belongs near the bottom, so this does about
   * half the comparisons of a plain sift-down on pop.
   */
  private holeDown(i: number, slot: number, k: number, s: number, n: number): void {
    const heap = this.heap;
    const key = this.key;
    const seq = this.seq;
    const pos = this.pos;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let cs = heap[c]!;
      const r = c + 1;
      if (r < n) {
        const rs = heap[r]!;
        const rk = key[rs]!;
        const ck = key[cs]!;
        if (rk < ck || (rk === ck && seq[rs]! < seq[cs]!)) {
          c = r;
          cs = rs;
        }
      }
      heap[i] = cs;
      pos[cs] = i;
      i = c;
    }
    this.siftUp(i, slot, k, s);
  }

  private siftUp(i: number, slot: number, k: number, s: number): void {
    const heap = this.heap;
    const key = this.key;
    const pos = this.pos;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = heap[p]!;
      const pk = key[ps]!;
      if (pk < k || (pk === k && this.seq[ps]! < s)) break;
      heap[i] = ps;
      pos[ps] = i;
      i = p;
    }
    heap[i] = slot;
    pos[slot] = i;
  }

  private siftDown(i: number, slot: number, k: number, s: number, n = this.h[H.SIZE]!): void {
    const heap = this.heap;
    const key = this.key;
    const seq = this.seq;
    const pos = this.pos;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let cs = heap[c]!;
      let ck = key[cs]!;
      const r = c + 1;
      if (r < n) {
        const rs = heap[r]!;
        const rk = key[rs]!;
        if (rk < ck || (rk === ck && seq[rs]! < seq[cs]!)) {
          c = r;
          cs = rs;
          ck = rk;
        }
      }
      if (k < ck || (k === ck && s < seq[cs]!)) break;
      heap[i] = cs;
      pos[cs] = i;
      i = c;
    }
    heap[i] = slot;
    pos[slot] = i;
  }

  /** Slot of a well-formed handle, or -1 (also for values no handle can have). */
  private slotOf(handle: Handle): number {
    if (!(handle >= SLOT_SPAN) || handle !== Math.floor(handle)) return -1;
    const slot = handle % SLOT_SPAN;
    return slot < this.capacity ? slot : -1;
  }

  private liveLocked(handle: Handle, slot: number): boolean {
    return this.pos[slot]! >= 0 && this.gen[slot]! === (handle - slot) / SLOT_SPAN;
  }
}

/** shm heaps of this thread still open, closed on normal exit so their names do not linger. */
const openShmHeaps = new Set<IndexedHeap>();
let exitHookInstalled = false;

function claimSlot(native: ShmBinding, mapping: ShmMapping, shared: SharedHeapRef): number {
  const slot = native.claimSlot(mapping.index);
  if (slot < 0) {
    throw new HeapAttachError(
      GrpcCode.RESOURCE_EXHAUSTED,
      `segment ${shared.backing === "shm" ? shared.name : ""} already has ${SLOT_COUNT} attached threads; close some heaps first`,
      { reason: "TASKFLOW_ERR_HEAP_ATTACH" },
    );
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const heap of [...openShmHeaps]) heap.close();
    });
  }
  return slot;
}

function normaliseName(name: string | undefined): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new HeapAttachError(GrpcCode.INVALID_ARGUMENT, 'backing "shm" needs a segment name', { reason: "TASKFLOW_ERR_HEAP_OPTIONS" });
  }
  const n = name.startsWith("/") ? name : `/${name}`;
  if (n.length > 250 || n.indexOf("/", 1) !== -1) {
    throw new HeapAttachError(GrpcCode.INVALID_ARGUMENT, `invalid shm segment name "${name}": at most 250 characters, no "/" after the first`, {
      reason: "TASKFLOW_ERR_HEAP_OPTIONS",
    });
  }
  return n;
}

function initRegion(v: Views, capacity: number, unlocked: boolean): void {
  const h = v.header;
  h[H.MAGIC] = MAGIC;
  h[H.VERSION] = LAYOUT_VERSION;
  h[H.CAPACITY] = capacity;
  h[H.LOCK] = 0;
  h[H.SIZE] = 0;
  h[H.FREE] = 0;
  h[H.EVENT] = 0;
  h[H.SLEEPERS] = 0;
  h[H.FLAGS] = unlocked ? FLAG_NO_LOCK : 0;
  h[H.CREATOR_PID] = process.pid;
  h[H.REPAIRS] = 0;
  v.headerF64[H_SEQ_F64] = 0;
  for (let s = 0; s < capacity; s++) {
    v.pos[s] = -1;
    v.next[s] = s + 1 < capacity ? s + 1 : -1;
    v.gen[s] = 0;
  }
}

function checkHeader(header: Int32Array, what: string): void {
  const magic = Atomics.load(header, H.MAGIC);
  if (magic !== MAGIC) {
    throw new HeapAttachError(
      GrpcCode.FAILED_PRECONDITION,
      `${what} is not a Taskflow heap (magic 0x${(magic >>> 0).toString(16)}, expected 0x${MAGIC.toString(16)})`,
    );
  }
  const version = Atomics.load(header, H.VERSION);
  if (version !== LAYOUT_VERSION) {
    throw new HeapAttachError(
      GrpcCode.FAILED_PRECONDITION,
      `${what} has heap layout version ${version}; this @taskflow/shm-heap reads version ${LAYOUT_VERSION} (restart every process on one version)`,
      { reason: "TASKFLOW_ERR_HEAP_VERSION" },
    );
  }
}

/** Waits, bounded, for the creator to mark the segment ready: a dead creator must not hang us. */
function waitReady(native: ShmBinding, mapping: ShmMapping, header: Int32Array, name: string, timeoutMs: number): void {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const state = Atomics.load(header, H.STATE);
    if (state === STATE_READY) return;
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new HeapAttachError(
        GrpcCode.UNAVAILABLE,
        `segment ${name} was never initialised (state ${state} after ${timeoutMs} ms): its creator probably died; unlink it and create it again`,
        { reason: "TASKFLOW_ERR_HEAP_NOT_READY" },
      );
    }
    native.wait(mapping.index, H.STATE * 4, state, Math.min(left, 50));
  }
}

function checkRegion(native: ShmBinding, mapping: ShmMapping, name: string, capacity: number, timeoutMs: number): void {
  const header = new Int32Array(mapping.buffer, 0, 16);
  waitReady(native, mapping, header, name, timeoutMs);
  checkHeader(header, `segment ${name}`);
  const theirs = header[H.CAPACITY]!;
  if (theirs !== capacity) {
    throw new HeapAttachError(
      GrpcCode.FAILED_PRECONDITION,
      `segment ${name} already exists with capacity ${theirs}, not ${capacity}`,
      { reason: "TASKFLOW_ERR_HEAP_CAPACITY" },
    );
  }
  if (regionBytes(capacity) > mapping.buffer.byteLength) {
    throw new HeapAttachError(
      GrpcCode.FAILED_PRECONDITION,
      `segment ${name} is too small: ${mapping.buffer.byteLength} bytes, capacity ${capacity} needs ${regionBytes(capacity)}`,
    );
  }
}

/**
 * Rebuilds the heap after its lock owner died mid-operation. `pos >= 0` marks a live record
 * (push sets it after writing the record, pop/remove clear it last), so live records are exactly
 * the ones whose operation committed; heap order, size and free list are derived from them.
 */
export function repairViews(v: Views, capacity: number): void {
  let n = 0;
  let free = -1;
  let maxSeq = -1;
  for (let s = capacity - 1; s >= 0; s--) {
    if (v.pos[s]! >= 0) {
      v.heap[n++] = s;
      if (v.seq[s]! > maxSeq) maxSeq = v.seq[s]!;
    } else {
      v.next[s] = free;
      free = s;
    }
  }
  const less = (x: number, y: number): boolean => v.key[x]! < v.key[y]! || (v.key[x]! === v.key[y]! && v.seq[x]! < v.seq[y]!);
  for (let i = 0; i < n; i++) v.pos[v.heap[i]!] = i;
  for (let start = (n >> 1) - 1; start >= 0; start--) {
    let i = start;
    const slot = v.heap[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && less(v.heap[c + 1]!, v.heap[c]!)) c++;
      if (!less(v.heap[c]!, slot)) break;
      v.heap[i] = v.heap[c]!;
      v.pos[v.heap[i]!] = i;
      i = c;
    }
    v.heap[i] = slot;
    v.pos[slot] = i;
  }
  v.header[H.SIZE] = n;
  v.header[H.FREE] = free;
  if (v.headerF64[H_SEQ_F64]! <= maxSeq) v.headerF64[H_SEQ_F64] = maxSeq + 1;
}

/** Checks heap order, the pos/heap bijection and the free list. */
export function validateViews(v: Views, capacity: number): string | null {
  const n = v.header[H.SIZE]!;
  if (n < 0 || n > capacity) return `size ${n} out of range`;
  for (let i = 0; i < n; i++) {
    const s = v.heap[i]!;
    if (s < 0 || s >= capacity) return `heap[${i}] = ${s} is not a slot`;
    if (v.pos[s] !== i) return `pos[${s}] = ${v.pos[s]} but heap[${i}] = ${s}`;
    if (i > 0) {
      const p = v.heap[(i - 1) >> 1]!;
      if (v.key[p]! > v.key[s]! || (v.key[p] === v.key[s] && v.seq[p]! > v.seq[s]!)) return `heap order broken at ${i}`;
    }
  }
  let live = 0;
  for (let s = 0; s < capacity; s++) if (v.pos[s]! >= 0) live++;
  if (live !== n) return `${live} slots live but size ${n}`;
  let free = 0;
  for (let s = v.header[H.FREE]!; s !== -1; s = v.next[s]!) {
    if (s < 0 || s >= capacity) return `free list holds ${s}`;
    if (v.pos[s]! >= 0) return `free list holds live slot ${s}`;
    if (++free > capacity) return "free list loops";
  }
  if (free !== capacity - n) return `free list has ${free} slots, expected ${capacity - n}`;
  return null;
}
