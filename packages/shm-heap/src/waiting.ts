/**
 * Waiting for a record: the heap's event word, which every push that finds a sleeper bumps, and
 * sleeping on it (blocking, for worker threads and processes, or as a promise).
 */
import { H } from "./layout.js";
import type { ShmBinding, ShmMapping } from "./native.js";

// Atomics.waitAsync is in Node 20 (V8 11) but only in TypeScript's ES2024 lib, which the
// workspace does not target.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { value: Promise<string> | string };
}).waitAsync;

/** Wakes one thread sleeping in `waitEvent`/`waitEventAsync`. */
export function wakeOne(h: Int32Array, native: ShmBinding | null, mapping: ShmMapping | null): void {
  if (native === null) Atomics.notify(h, H.EVENT, 1);
  else native.wake(mapping!.index, H.EVENT * 4, 1);
}

/** Blocks until the event word moves on from `ev`, at most `ms`. */
export function waitEvent(h: Int32Array, native: ShmBinding | null, mapping: ShmMapping | null, ev: number, ms: number): void {
  if (native === null) Atomics.wait(h, H.EVENT, ev, ms);
  else native.wait(mapping!.index, H.EVENT * 4, ev, ms);
}

/** Resolves once the event word moves on from `ev`, at most after `ms`; never blocks the event loop. */
export function waitEventAsync(h: Int32Array, native: ShmBinding | null, mapping: ShmMapping | null, ev: number, ms: number): Promise<unknown> {
  if (native === null) {
    const r = waitAsync(h, H.EVENT, ev, ms);
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
  return native.waitAsync(mapping!.index, H.EVENT * 4, ev, ms);
}
