/**
 * The heap's lock: one word in the header, taken with a compare-and-swap when free (the fast
 * path, inlined in {@link IndexedHeap}), and here the slow path: spinning with backoff, sleeping
 * on the word, and taking over from an owner that died holding it (shm).
 */
import { H } from "./layout.js";
import type { ShmBinding, ShmMapping } from "./native.js";

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
export const LOCK_SAB = 0;
export const LOCK_SHM = 1;
export const LOCK_NONE = 2;
export const LOCK_CLOSED = 3;
/**
 * How long a waiter sleeps on the lock word of an shm heap before it asks the kernel (through
 * the owner's liveness slot) whether the owner still lives: the recovery time after a kill.
 */
const LIVENESS_CHECK_MS = 10;
/** Lock word: owner (liveness slot + 1) in the low byte, and this bit while someone may sleep. */
export const LOCK_OWNER_MASK = 0xff;
export const LOCK_WAITERS = 0x40000000;

/**
 * The lock word was taken: spin with backoff, then sleep on it until it is ours. `repair` runs
 * when we took it over from an owner that died holding it.
 */
export function lockContended(h: Int32Array, me: number, native: ShmBinding | null, mapping: ShmMapping | null, repair: () => void): void {
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
    if (native === null) Atomics.wait(h, H.LOCK, w);
    else timedOut = native.wait(mapping!.index, H.LOCK * 4, w, LIVENESS_CHECK_MS) === 1;
    Atomics.store(h, H.LOCK_WAKING, 0);
    for (let i = 0; i < SPIN; i++) {
      if (Atomics.load(h, H.LOCK) === 0 && Atomics.compareExchange(h, H.LOCK, 0, me | LOCK_WAITERS) === 0) return;
    }
    if (timedOut && takeOverFromDeadOwner(h, me, native!, mapping!, repair)) return;
  }
}

/**
 * The lock has been held for a while: if its owner's thread or process died (the kernel
 * marked its robust liveness mutex), take the lock over and repair the heap. Pid checks
 * would be fooled by pid reuse and namespaces; the kernel's robust-futex list is not.
 */
function takeOverFromDeadOwner(h: Int32Array, me: number, native: ShmBinding, mapping: ShmMapping, repair: () => void): boolean {
  const w = Atomics.load(h, H.LOCK);
  const owner = w & LOCK_OWNER_MASK;
  if (owner === 0 || owner === me) return false;
  const index = mapping.index;
  if (native.probeSlot(index, owner - 1) === 0) return false;
  try {
    // Retry while only the WAITERS bit changes under us: the dead owner is still named.
    for (let cur = w; (cur & LOCK_OWNER_MASK) === owner; cur = Atomics.load(h, H.LOCK)) {
      if (Atomics.compareExchange(h, H.LOCK, cur, me | LOCK_WAITERS) === cur) {
        repair();
        return true;
      }
    }
    return false;
  } finally {
    native.releaseSlot(index, owner - 1);
  }
}

/**
 * Wakes one lock sleeper unless one is already on its way: with more threads than cores,
 * a notify per unlock kept waking threads that only went back to sleep, and throughput
 * collapsed (4 threads: 0.5 M ops/s instead of the single-thread figure).
 */
export function wakeLockSleeper(h: Int32Array, native: ShmBinding | null, mapping: ShmMapping | null): void {
  if (Atomics.load(h, H.LOCK_WAKING) !== 0 || Atomics.compareExchange(h, H.LOCK_WAKING, 0, 1) !== 0) return;
  // Nobody was asleep yet (a sleeper between counting itself and waiting): it will see the
  // lock free, so clear the flag or later unlocks would never wake anyone.
  const woken = native === null ? Atomics.notify(h, H.LOCK, 1) : native.wake(mapping!.index, H.LOCK * 4, 1);
  if (woken === 0) Atomics.store(h, H.LOCK_WAKING, 0);
}
