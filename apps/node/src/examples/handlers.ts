/**
 * Example task handlers, used by the default config: `echo`, `sleep`, `fail`, `cpu` and `noop`.
 * A handlers module exports an object mapping task types to functions (default export, or a
 * named export `handlers`).
 *
 * Each checks its payload and fails the task with a message naming the field when it is wrong:
 * a payload in any language's client can be anything, and a silent default (`"ms": "abc"`
 * sleeping 0 ms) hides the mistake.
 */
import { Code, TaskflowError } from "@taskflow/core";
import type { HandlerMap } from "@taskflow/client";

/** The longest `ms` the examples take: what a Node timer holds. */
const MAX_MS = 2 ** 31 - 1;

export const handlers: HandlerMap = {
  /** Returns its payload. */
  echo: (payload: unknown) => payload,
  /** Does nothing; for benchmarks. */
  noop: () => undefined,
  /** Waits `ms` milliseconds (default 1000), or until cancelled; returns `{ slept: ms }`. */
  sleep: (payload: unknown, { signal }) => {
    const ms = msOf("sleep", payload, 1000);
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve({ slept: ms });
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  },
  /** Always throws, with `message` from the payload if given. */
  fail: (payload: unknown) => {
    const message = fieldOf("fail", payload, "message");
    if (message !== undefined && typeof message !== "string") throw badInput("fail", `payload.message must be a string, got ${shown(message)}`);
    throw new Error(message ?? "this task always fails");
  },
  /** Spins the CPU for `ms` milliseconds (default 100); returns how many loop turns it made. */
  cpu: (payload: unknown, { signal }) => {
    const until = Date.now() + msOf("cpu", payload, 100);
    let turns = 0;
    while (Date.now() < until && !signal.aborted) turns++;
    return { turns };
  },
};

/** `payload.ms`: absent means `fallback`; otherwise a whole number of ms a timer can hold. */
function msOf(handler: string, payload: unknown, fallback: number): number {
  const ms = fieldOf(handler, payload, "ms");
  if (ms === undefined) return fallback;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0 || ms > MAX_MS) {
    throw badInput(handler, `payload.ms must be a whole number of milliseconds from 0 to ${MAX_MS}, got ${shown(ms)}`);
  }
  return ms;
}

/** A field of an object payload; no payload (or null) has no fields. */
function fieldOf(handler: string, payload: unknown, field: string): unknown {
  if (payload === undefined || payload === null) return undefined;
  if (typeof payload !== "object" || Array.isArray(payload)) {
    throw badInput(handler, `the payload must be a JSON object such as {"${field}": …} or empty, got ${shown(payload)}`);
  }
  return (payload as Record<string, unknown>)[field] ?? undefined;
}

function badInput(handler: string, message: string): TaskflowError {
  return new TaskflowError(Code.INVALID_ARGUMENT, `${handler}: ${message}`);
}

function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value; // nested too deep to print
  }
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

export default handlers;
