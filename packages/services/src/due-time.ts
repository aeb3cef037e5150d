/** When a delayed task is due, and how its wait reads in `get` and `list`. */
import type { TaskSpec } from "@taskflow/core";

/** The epoch ms a submitted spec may enter the queue at; 0 when it is not delayed (or its time has passed). */
export function dueTime(spec: TaskSpec, now: number): number {
  if (spec.delayMs) return now + spec.delayMs;
  return spec.runAt && spec.runAt > now ? spec.runAt : 0;
}

/** The stored waiting reason of a delayed task; `get` adds how long is left. */
export function delayedUntil(due: number, now?: number): string {
  const at = `delayed until ${new Date(due).toISOString()}`;
  return now === undefined ? at : `${at} (in ${humanDuration(due - now)})`;
}

/** "4m 12s", "3d 2h", "250ms": the two largest units, for people. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]];
  const parts: string[] = [];
  let left = Math.floor(ms / 1000) * 1000;
  for (const [name, size] of units) {
    if (left >= size || parts.length) {
      const n = Math.floor(left / size);
      left -= n * size;
      if (n || parts.length) parts.push(`${n}${name}`);
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}
