// The same key as @taskflow/policy-least-loaded's, kept here so this package depends on core alone.
import type { PolicyWorker } from "@taskflow/core";

/**
 * The highest load the key tells apart. A worker can hold more tasks than its slots (prefetched
 * ones, `worker.prefetch`), so load goes past 1; loads above MAX_LOAD count as MAX_LOAD and go
 * round robin among themselves.
 */
export const MAX_LOAD = 8;
/**
 * How finely load is told apart: loads closer than MAX_LOAD / LOAD_LEVELS (about 4e-6) count as a
 * tie and go to the least recently assigned worker. Distinct loads of workers with up to ~500
 * slots are always told apart.
 */
export const LOAD_LEVELS = 2 ** 21 - 1;
const SEQ_BITS = 41;
const SEQ_MAX = 2 ** SEQ_BITS - 1;
const SEQ_HIGH = 2 ** 32;
const scratch = new DataView(new ArrayBuffer(8));

/**
 * One float64 that orders by (load, lastAssignedSeq): the bit pattern of a non-negative double
 * orders like the double itself, so the key is built from bits — 21 for the load level above 41
 * for the assignment counter (2^41 assignments, 8 months at 100k/s; past that, ties fall back to
 * the heap's insertion order). Adding a scaled counter to the load instead would run out of
 * precision once the counter grows. The largest key is below 2.0, always finite.
 */
export function leastLoadedWorkerKey(worker: PolicyWorker): number {
  const load = worker.slots > 0 && Number.isFinite(worker.running) ? worker.running / worker.slots : MAX_LOAD;
  const level = Math.round((Math.min(Math.max(load, 0), MAX_LOAD) / MAX_LOAD) * LOAD_LEVELS);
  const seq = Number.isFinite(worker.lastAssignedSeq) ? Math.min(Math.max(Math.floor(worker.lastAssignedSeq), 0), SEQ_MAX) : 0;
  scratch.setUint32(0, level * 2 ** (SEQ_BITS - 32) + Math.floor(seq / SEQ_HIGH));
  scratch.setUint32(4, seq >>> 0);
  return scratch.getFloat64(0);
}

/** The load (0 … MAX_LOAD, in steps of MAX_LOAD / LOAD_LEVELS) and assignment counter a key was built from, for logs and tests. */
export function decodeLeastLoadedKey(key: number): { load: number; lastAssignedSeq: number } {
  scratch.setFloat64(0, key);
  const high = scratch.getUint32(0);
  const low = scratch.getUint32(4);
  const level = Math.floor(high / 2 ** (SEQ_BITS - 32));
  const seqHigh = high % 2 ** (SEQ_BITS - 32);
  return { load: (level / LOAD_LEVELS) * MAX_LOAD, lastAssignedSeq: seqHigh * SEQ_HIGH + low };
}
