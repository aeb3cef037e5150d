/**
 * The heap's order: smallest key first, equal keys in push order (`seq`). Sifts over the
 * shared arrays (`heap`: position → slot, `pos`: slot → position), and the handles that name a
 * record's slot and generation. Callers hold the heap's lock.
 */

// Handles are gen * SLOT_SPAN + slot: exact doubles up to 2^53 since gen < 2^29.
export const SLOT_SPAN = 16777216;
export const GEN_LIMIT = 0x20000000;

/** Slot of a well-formed handle, or -1 (also for values no handle can have). */
export function slotOf(handle: number, capacity: number): number {
  if (!(handle >= SLOT_SPAN) || handle !== Math.floor(handle)) return -1;
  const slot = handle % SLOT_SPAN;
  return slot < capacity ? slot : -1;
}

/** Moves record `slot` (key `k`, sequence `s`) up from position `i` to where it belongs. */
export function siftUp(heap: Int32Array, key: Float64Array, seq: Float64Array, pos: Int32Array, i: number, slot: number, k: number, s: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    const ps = heap[p]!;
    const pk = key[ps]!;
    if (pk < k || (pk === k && seq[ps]! < s)) break;
    heap[i] = ps;
    pos[ps] = i;
    i = p;
  }
  heap[i] = slot;
  pos[slot] = i;
}

/** Moves record `slot` down from position `i` in a heap of `n` records. */
export function siftDown(heap: Int32Array, key: Float64Array, seq: Float64Array, pos: Int32Array, i: number, slot: number, k: number, s: number, n: number): void {
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

/**
 * Floyd's bottom-up sift for a record that belongs at or below `i`: walk the hole down to a
 * leaf along the smaller children (one comparison per level), then sift the record up from
 * there. The last record of a heap nearly always belongs near the bottom, so this does about
 * half the comparisons of a plain sift-down on pop.
 */
export function holeDown(heap: Int32Array, key: Float64Array, seq: Float64Array, pos: Int32Array, i: number, slot: number, k: number, s: number, n: number): void {
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
  siftUp(heap, key, seq, pos, i, slot, k, s);
}

/**
 * How many of the `n` records pop before one with key `k` and sequence `s`, counting at most
 * `limit`. A record that does not pop before it has no descendant that does, so the walk never
 * leaves the part of the heap ahead of it: O(min(count, limit)).
 */
export function countBefore(heap: Int32Array, key: Float64Array, seq: Float64Array, n: number, k: number, s: number, limit: number): number {
  let count = 0;
  const stack = [0];
  while (stack.length > 0 && count < limit) {
    const i = stack.pop()!;
    if (i >= n) continue;
    const slot = heap[i]!;
    const ks = key[slot]!;
    if (ks < k || (ks === k && seq[slot]! < s)) {
      count++;
      stack.push(2 * i + 1, 2 * i + 2);
    }
  }
  return count;
}
