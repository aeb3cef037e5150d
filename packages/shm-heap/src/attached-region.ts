/**
 * The shared region a heap object is attached to: its typed views, its lock (the fast path here,
 * the slow path in lock.ts) and the steps every operation shares. {@link IndexedHeap} adds the
 * operations; this class holds what they stand on, so each stays readable.
 */
import { GrpcCode, HeapAttachError } from "./errors.js";
import { H, SLOT_BYTES, SLOT_PID_OFFSET, SLOTS_OFFSET, FLAG_NO_LOCK, type Views } from "./layout.js";
import type { ShmBinding, ShmMapping } from "./native.js";
import { LOCK_CLOSED, LOCK_NONE, LOCK_OWNER_MASK, LOCK_SAB, LOCK_SHM, LOCK_WAITERS, lockContended, wakeLockSleeper } from "./lock.js";
import { SLOT_SPAN, holeDown, siftUp } from "./ordering.js";
import { claimSlot, forgetShmHeap, repairViews, validateViews } from "./region.js";
import type { Handle, SharedHeapRef } from "./options.js";

/** A heap object attached to its region: the views, the lock, and the steps operations share. */
export abstract class AttachedHeapRegion {
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

  protected readonly views: Views;
  protected readonly h: Int32Array;
  protected readonly hf: Float64Array;
  protected readonly key: Float64Array;
  protected readonly seq: Float64Array;
  protected readonly heap: Int32Array;
  protected readonly pos: Int32Array;
  protected readonly next: Int32Array;
  protected readonly gen: Int32Array;
  protected readonly ids: Int32Array;
  protected readonly fa: Int32Array;
  protected readonly fb: Int32Array;
  protected lockMode: number;
  /** Value this heap object writes into the lock word: its liveness slot + 1 (1 for "sab"). */
  protected readonly me: number;
  /** Liveness slot this thread holds in an shm segment, -1 for "sab". */
  protected readonly slot: number;
  protected readonly native: ShmBinding | null;
  protected readonly mapping: ShmMapping | null;
  protected readonly creator: boolean;

  protected constructor(
    shared: SharedHeapRef,
    capacity: number,
    views: Views,
    native: ShmBinding | null,
    mapping: ShmMapping | null,
    creator: boolean,
  ) {
    this.shared = shared;
    this.capacity = capacity;
    this.views = views;
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
    this.slot = native === null ? -1 : claimSlot(native, mapping!, shared, this);
    this.me = this.slot + 1 || 1;
    if (native !== null) {
      // The previous holder of our slot died holding the heap lock: the lock is ours now.
      if ((Atomics.load(this.h, H.LOCK) & LOCK_OWNER_MASK) === this.me) {
        this.repairAfterOwnerDied();
        this.unlock();
      }
    }
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
    forgetShmHeap(this);
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
      return validateViews(this.views, this.capacity);
    } finally {
      this.unlock();
    }
  }

  // ---- internals -------------------------------------------------------------------------

  protected lock(): void {
    const mode = this.lockMode;
    if (mode <= LOCK_SHM) {
      // Uncontended: one compare-and-swap, no native call, for both backings.
      if (Atomics.compareExchange(this.h, H.LOCK, 0, this.me) !== 0) this.lockContended();
    } else if (mode === LOCK_CLOSED) {
      throw new HeapAttachError(GrpcCode.FAILED_PRECONDITION, "heap is closed", { reason: "TASKFLOW_ERR_HEAP_CLOSED" });
    }
  }

  protected unlock(): void {
    // One atomic: the WAITERS bit travels in the lock word, so no separate sleeper count is
    // read (each Atomics call costs ~10-30 ns) and none goes stale when a sleeper is killed.
    if (this.lockMode <= LOCK_SHM && (Atomics.exchange(this.h, H.LOCK, 0) & LOCK_WAITERS) !== 0) wakeLockSleeper(this.h, this.native, this.mapping);
  }

  private lockContended(): void {
    lockContended(this.h, this.me, this.native, this.mapping, () => this.repairAfterOwnerDied());
  }

  /** We hold the lock its previous owner died holding: rebuild from `pos`. */
  private repairAfterOwnerDied(): void {
    repairViews(this.views, this.capacity);
    Atomics.add(this.h, H.REPAIRS, 1);
  }

  protected popLocked(): number {
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
  protected removeAt(i: number, slot: number): void {
    const h = this.h;
    const last = h[H.SIZE]! - 1;
    h[H.SIZE] = last;
    if (i !== last) {
      const moved = this.heap[last]!;
      const k = this.key[moved]!;
      const s = this.seq[moved]!;
      const ks = this.key[slot]!;
      if (k < ks || (k === ks && s < this.seq[slot]!)) siftUp(this.heap, this.key, this.seq, this.pos, i, moved, k, s);
      else holeDown(this.heap, this.key, this.seq, this.pos, i, moved, k, s, last);
    }
    this.pos[slot] = -1; // the commit point, written last (see push)
    this.next[slot] = h[H.FREE]!;
    h[H.FREE] = slot;
  }

  protected liveLocked(handle: Handle, slot: number): boolean {
    // Above the mark a slot's words are fresh zeros (or left over from before a clear): never live.
    return slot < this.h[H.HIGH]! && this.pos[slot]! >= 0 && this.gen[slot]! === (handle - slot) / SLOT_SPAN;
  }
}
