/**
 * The heap's backing region: creating, checking and attaching the shared memory (a
 * `SharedArrayBuffer` or a named POSIX segment), the liveness slots of an shm segment, and
 * rebuilding or checking the heap's arrays in place (after a lock owner died, for tests).
 */
import { GrpcCode, HeapAttachError } from "./errors.js";
import { FLAG_NO_LOCK, H, H_SEQ_F64, LAYOUT_VERSION, MAGIC, SLOT_COUNT, STATE_READY, regionBytes, type Views } from "./layout.js";
import type { ShmBinding, ShmMapping } from "./native.js";
import type { SharedHeapRef } from "./options.js";

export const DEFAULT_INIT_TIMEOUT_MS = 2000;

/** shm heaps of this thread still open, closed on normal exit so their names do not linger. */
const openShmHeaps = new Set<{ close(): void }>();
let exitHookInstalled = false;

/** A closed heap no longer needs closing on exit. */
export function forgetShmHeap(heap: { close(): void }): void {
  openShmHeaps.delete(heap);
}

/** Claims a liveness slot for a heap object of this thread; `heap` is closed on normal exit. */
export function claimSlot(native: ShmBinding, mapping: ShmMapping, shared: SharedHeapRef, heap: { close(): void }): number {
  const slot = native.claimSlot(mapping.index);
  if (slot < 0) {
    throw new HeapAttachError(
      GrpcCode.RESOURCE_EXHAUSTED,
      `segment ${shared.backing === "shm" ? shared.name : ""} already has ${SLOT_COUNT} attached threads; close some heaps first`,
      { reason: "TASKFLOW_ERR_HEAP_ATTACH" },
    );
  }
  openShmHeaps.add(heap);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const heap of [...openShmHeaps]) heap.close();
    });
  }
  return slot;
}

export function normaliseName(name: string | undefined): string {
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

/** Writes the header of a fresh (zero-filled) region; the record arrays stay untouched. */
export function initRegion(v: Views, capacity: number, unlocked: boolean): void {
  const h = v.header;
  h[H.MAGIC] = MAGIC;
  h[H.VERSION] = LAYOUT_VERSION;
  h[H.CAPACITY] = capacity;
  h[H.LOCK] = 0;
  h[H.SIZE] = 0;
  h[H.FREE] = -1;
  h[H.HIGH] = 0;
  h[H.EVENT] = 0;
  h[H.SLEEPERS] = 0;
  h[H.FLAGS] = unlocked ? FLAG_NO_LOCK : 0;
  h[H.CREATOR_PID] = process.pid;
  h[H.REPAIRS] = 0;
  v.headerF64[H_SEQ_F64] = 0;
  // No per-slot writes: every slot is above the high-water mark (0), so free without being
  // touched. Writing them made a 2^24-slot heap ~400 MB resident and took ~0.8 s (ADR 0030).
}

export function checkHeader(header: Int32Array, what: string): void {
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
export function waitReady(native: ShmBinding, mapping: ShmMapping, header: Int32Array, name: string, timeoutMs: number): void {
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

export function checkRegion(native: ShmBinding, mapping: ShmMapping, name: string, capacity: number, timeoutMs: number): void {
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
 * O(high-water mark), not O(capacity).
 */
export function repairViews(v: Views, capacity: number): void {
  let n = 0;
  let free = -1;
  let maxSeq = -1;
  // Slots at or above the mark were never live (push writes pos = -1 before raising it), and
  // reading them would fault in every page of a big, mostly unused region.
  const high = highWater(v, capacity);
  v.header[H.HIGH] = high;
  for (let s = high - 1; s >= 0; s--) {
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

/** Checks heap order, the pos/heap bijection, the free list and the high-water mark; O(mark). */
export function validateViews(v: Views, capacity: number): string | null {
  const n = v.header[H.SIZE]!;
  const high = v.header[H.HIGH]!;
  if (high < 0 || high > capacity) return `high-water mark ${high} out of range`;
  if (n < 0 || n > high) return `size ${n} out of range (high-water mark ${high})`;
  for (let i = 0; i < n; i++) {
    const s = v.heap[i]!;
    if (s < 0 || s >= high) return `heap[${i}] = ${s} is not a used slot (high-water mark ${high})`;
    if (v.pos[s] !== i) return `pos[${s}] = ${v.pos[s]} but heap[${i}] = ${s}`;
    if (i > 0) {
      const p = v.heap[(i - 1) >> 1]!;
      if (v.key[p]! > v.key[s]! || (v.key[p] === v.key[s] && v.seq[p]! > v.seq[s]!)) return `heap order broken at ${i}`;
    }
  }
  let live = 0;
  for (let s = 0; s < high; s++) if (v.pos[s]! >= 0) live++;
  if (live !== n) return `${live} slots live but size ${n}`;
  let free = 0;
  for (let s = v.header[H.FREE]!; s !== -1; s = v.next[s]!) {
    if (s < 0 || s >= high) return `free list holds ${s} (high-water mark ${high})`;
    if (v.pos[s]! >= 0) return `free list holds live slot ${s}`;
    if (++free > high) return "free list loops";
  }
  if (free !== high - n) return `free list has ${free} slots, expected ${high - n} (the ${capacity - high} above the mark are implicit)`;
  return null;
}

/**
 * The header's high-water mark, clamped to 0..capacity: a repair must not trust a word a dying
 * writer or a corrupt region could have left out of range.
 */
function highWater(v: Views, capacity: number): number {
  const high = v.header[H.HIGH]!;
  return high < 0 ? 0 : high > capacity ? capacity : high;
}
