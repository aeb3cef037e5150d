/**
 * The byte layout shared by every backing. One region: a 256-byte header, then struct-of-arrays
 * record fields (Float64 first so they stay 8-byte aligned). Struct-of-arrays keeps each sift
 * step to a couple of cache lines and lets plain typed-array access run at JIT speed.
 *
 * Bump {@link LAYOUT_VERSION} whenever anything here changes: attach refuses other versions.
 */

/** "TFHP" in ASCII, little-endian: marks a region as a Taskflow heap. */
export const MAGIC = 0x50484654;
/** Version of this layout; attach refuses any other. */
export const LAYOUT_VERSION = 3;
/** Bytes of the header proper. */
const HEADER_WORDS_BYTES = 256;
/**
 * Liveness slots (backing "shm"): one robust process-shared pthread mutex per attached thread,
 * held while the thread is attached; the kernel marks it when its owner dies. 64 bytes each:
 * the mutex, then the owner's pid at byte 48 (diagnostics). The native addon owns the mutexes.
 */
export const SLOTS_OFFSET = HEADER_WORDS_BYTES;
export const SLOT_COUNT = 64;
export const SLOT_BYTES = 64;
export const SLOT_PID_OFFSET = 48;
/** Bytes before the record arrays. */
export const HEADER_BYTES = SLOTS_OFFSET + SLOT_COUNT * SLOT_BYTES;
/**
 * Most records a heap holds: 2^24. A handle is `gen × 2^24 + slot`, so slots 0..2^24 − 1 fit
 * (the old ceiling, 0xffffff, was one short of what the handles allow).
 */
export const MAX_CAPACITY = 0x1000000;

/** Int32 indexes into the header. */
export const H = {
  MAGIC: 0,
  VERSION: 1,
  CAPACITY: 2,
  /** 0 blank, 1 being initialised, 2 ready. Attachers wait (bounded) for 2. */
  STATE: 3,
  /**
   * Mutex word: 0 free, else the owner's liveness slot + 1 in the low byte (always 1 for
   * backing "sab"), plus bit 30 while someone may sleep on it.
   */
  LOCK: 4,
  SIZE: 5,
  /** First slot of the free list (slots below HIGH given back), -1 when none. */
  FREE: 6,
  /** Condition-variable style event word: bumped by a push that finds sleepers. */
  EVENT: 7,
  /** Poppers asleep on EVENT (kept under the lock so pushes wake only when needed). */
  SLEEPERS: 8,
  /** Bit flags, see {@link FLAG_NO_LOCK}. */
  FLAGS: 9,
  /** Pid of the creator, for diagnostics. */
  CREATOR_PID: 10,
  /** Times a dead lock owner's heap was repaired. */
  REPAIRS: 11,
  /** 1 while a thread woken from LOCK has not run yet: unlockers then skip the notify. */
  LOCK_WAKING: 12,
  /**
   * High-water mark: slots at or above it were never used (or were dropped by `clear`) and are
   * implicitly free, so a fresh heap touches no per-slot memory (a 2^24-slot region stays
   * unresident until used). Allocation takes the free list first, else slot HIGH, which it
   * initialises before raising the mark. Every per-slot loop stops here.
   */
  HIGH: 13,
} as const;

/** Float64 index of the FIFO sequence counter in the header (byte 64). */
export const H_SEQ_F64 = 8;
export const STATE_READY = 2;
/** Test-only: skip locking so a stress test can show it catches races. */
export const FLAG_NO_LOCK = 1;

/** Bytes needed for a heap of `capacity` records. */
export function regionBytes(capacity: number): number {
  return HEADER_BYTES + capacity * (8 + 8) + capacity * 4 * 7;
}

/** Typed-array views over one region. */
export interface Views {
  header: Int32Array;
  headerF64: Float64Array;
  key: Float64Array;
  seq: Float64Array;
  /** heap position → slot */
  heap: Int32Array;
  /**
   * slot → heap position, -1 when free (below the high-water mark; above it, meaningless). The
   * source of truth for repair: set last by push, cleared last by pop/remove.
   */
  pos: Int32Array;
  /** free-list link */
  next: Int32Array;
  /** generation of the slot, bumped when the slot is allocated (0 in fresh memory, so never a handle's) */
  gen: Int32Array;
  id: Int32Array;
  a: Int32Array;
  b: Int32Array;
}

/** Views over `buffer` (a SharedArrayBuffer, or an ArrayBuffer over a shared mapping). */
export function makeViews(buffer: ArrayBufferLike, capacity: number): Views {
  let off = HEADER_BYTES;
  const f64 = (): Float64Array => {
    const v = new Float64Array(buffer, off, capacity);
    off += capacity * 8;
    return v;
  };
  const i32 = (): Int32Array => {
    const v = new Int32Array(buffer, off, capacity);
    off += capacity * 4;
    return v;
  };
  const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  const headerF64 = new Float64Array(buffer, 0, HEADER_WORDS_BYTES / 8);
  const key = f64();
  const seq = f64();
  return { header, headerF64, key, seq, heap: i32(), pos: i32(), next: i32(), gen: i32(), id: i32(), a: i32(), b: i32() };
}
