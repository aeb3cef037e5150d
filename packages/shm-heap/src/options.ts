/** The heap's options and the handles it gives out. */

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
