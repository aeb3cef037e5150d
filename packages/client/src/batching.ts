/**
 * How queued submits and held results are cut into messages that stay under the control node's
 * receive limit, which refuses a bigger message whole.
 */
import type { FastSpec } from "@taskflow/proto/fast";
import type { HeldResult } from "./worker-options.js";

/**
 * Bytes of specs one batch carries at most (one spec alone may carry more): under the control
 * node's receive limit (`control.maxReceiveMessageBytes`, 8 MiB by default and never below the
 * largest payload plus 64 KiB), which refuses a bigger message whole.
 */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** How many of the queued specs go in the next batch: at most `max`, and at most `MAX_BATCH_BYTES`. */
export function batchCount(specs: readonly FastSpec[], max: number): number {
  let bytes = 0;
  let n = 0;
  while (n < specs.length && n < max) {
    const s = specs[n]!;
    bytes += s.payload.byteLength + s.type.length + s.idempotencyKey.length + 32;
    for (const key in s.requiredLabels) bytes += key.length + s.requiredLabels[key]!.length + 8;
    if (n > 0 && bytes > MAX_BATCH_BYTES) break;
    n++;
  }
  return n;
}

/** Bytes of results one heartbeat carries at most, under any control node's receive limit (8 MiB by default). */
const MAX_HEARTBEAT_BYTES = 4 * 1024 * 1024;

/** `results` in groups of at most `MAX_HEARTBEAT_BYTES`; one group, maybe empty, when they fit. */
export function chunkResults(results: HeldResult[]): HeldResult[][] {
  const chunks: HeldResult[][] = [[]];
  let bytes = 0;
  for (const r of results) {
    const size = r.result.byteLength + r.error.length + r.taskId.length + 16;
    if (bytes > 0 && bytes + size > MAX_HEARTBEAT_BYTES) {
      chunks.push([]);
      bytes = 0;
    }
    chunks[chunks.length - 1]!.push(r);
    bytes += size;
  }
  return chunks;
}
