/**
 * Example task handlers, used by the default config: `echo`, `sleep`, `fail`, `cpu` and `noop`.
 * A handlers module exports an object mapping task types to functions (default export, or a
 * named export `handlers`).
 */
import type { HandlerMap } from "@taskflow/client";

export const handlers: HandlerMap = {
  /** Returns its payload. */
  echo: (payload: unknown) => payload,
  /** Does nothing; for benchmarks. */
  noop: () => undefined,
  /** Waits `ms` milliseconds (default 1000), or until cancelled; returns `{ slept: ms }`. */
  sleep: (payload: { ms?: number } | undefined, { signal }) => {
    const ms = Number(payload?.ms ?? 1000);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve({ slept: ms }), ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(signal.reason);
      });
    });
  },
  /** Always throws, with `message` from the payload if given. */
  fail: (payload: { message?: string } | undefined) => {
    throw new Error(payload?.message ?? "this task always fails");
  },
  /** Spins the CPU for `ms` milliseconds (default 100); returns how many loop turns it made. */
  cpu: (payload: { ms?: number } | undefined, { signal }) => {
    const until = Date.now() + Number(payload?.ms ?? 100);
    let turns = 0;
    while (Date.now() < until && !signal.aborted) turns++;
    return { turns };
  },
};

export default handlers;
