/**
 * What policy tests share: a test context with a settable clock, plausible tasks and workers,
 * the sample cluster the conformance kit uses, and the kit's small helpers.
 */
import type { PolicyContext, PolicyLogger, PolicyTask, PolicyWorker } from "../policy.js";

/** A PolicyContext for tests: a clock you set and a logger that keeps what it is given. */
export interface PolicyTestContext extends PolicyContext {
  /** Sets what `now()` returns, epoch milliseconds. */
  setNow(ms: number): void;
  readonly logs: { level: "debug" | "info" | "warn"; message: string; fields?: Record<string, unknown> }[];
}

export function createPolicyTestContext(startMs = Date.UTC(2026, 0, 1)): PolicyTestContext {
  let now = startMs;
  const logs: PolicyTestContext["logs"] = [];
  const record =
    (level: "debug" | "info" | "warn") =>
    (message: string, fields?: Record<string, unknown>): void => {
      logs.push(fields === undefined ? { level, message } : { level, message, fields });
    };
  const logger: PolicyLogger = { debug: record("debug"), info: record("info"), warn: record("warn") };
  return { now: () => now, setNow: (ms) => (now = ms), logger, logs };
}

/** A frozen task with plausible values; override what a test is about. */
export function makePolicyTask(overrides: Partial<PolicyTask> = {}): PolicyTask {
  const base: PolicyTask = {
    id: `t-${overrides.seq ?? 1}`,
    type: "default",
    priority: 0,
    seq: 1,
    attempt: 1,
    createdAt: Date.UTC(2026, 0, 1),
    enqueuedAt: overrides.createdAt ?? Date.UTC(2026, 0, 1),
    requiredLabels: {},
    expectedDurationMs: 0,
  };
  return Object.freeze({
    ...base,
    ...overrides,
    requiredLabels: Object.freeze({ ...(overrides.requiredLabels ?? base.requiredLabels) }),
  });
}

/** A frozen worker with plausible values; override what a test is about. */
export function makePolicyWorker(overrides: Partial<PolicyWorker> = {}): PolicyWorker {
  const base: PolicyWorker = {
    id: `w-${overrides.joinSeq ?? 1}`,
    host: "localhost",
    slots: 4,
    running: 0,
    labels: {},
    taskTypes: new Set(["default"]),
    lastAssignedSeq: 0,
    joinSeq: 1,
  };
  return Object.freeze({
    ...base,
    ...overrides,
    labels: Object.freeze({ ...(overrides.labels ?? base.labels) }),
    taskTypes: new Set(overrides.taskTypes ?? base.taskTypes),
  });
}


export function nameOf(definition: unknown): string {
  const name = (definition as { name?: unknown } | null)?.name;
  return typeof name === "string" && name ? `"${name}"` : "(unnamed)";
}

class ConformanceError extends Error {
  override readonly name = "ConformanceError";
}

export function fail(message: string, cause?: unknown): never {
  throw new ConformanceError(message, cause === undefined ? undefined : { cause });
}

export function show(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "function") return "a function";
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v instanceof Set ? [...v] : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

export function describeTask(t: PolicyTask): string {
  return `task ${show({ id: t.id, type: t.type, priority: t.priority, seq: t.seq, attempt: t.attempt, enqueuedAt: t.enqueuedAt })}`;
}

export function describeWorker(w: PolicyWorker): string {
  return `worker ${show({ id: w.id, slots: w.slots, running: w.running, lastAssignedSeq: w.lastAssignedSeq, joinSeq: w.joinSeq })}`;
}

export interface SemverSubset {
  validRange(range: string): string | null;
  satisfies(version: string, range: string, options?: { includePrerelease?: boolean }): boolean;
}


/** Runs `fn` with `Date.now()` and argument-less `new Date()` pinned to `ms`. */
export function withWallClock<T>(ms: number, fn: () => T): T {
  const RealDate = globalThis.Date;
  class PinnedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(ms);
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return ms;
    }
  }
  globalThis.Date = PinnedDate as DateConstructor;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

export const BASE_TIME = Date.UTC(2026, 0, 1);

/** Tasks an ordinary cluster sees: two types, several priorities and attempts, some needing a label. */
export function sampleTasks(): PolicyTask[] {
  const tasks: PolicyTask[] = [];
  const priorities = [-5, 0, 0, 1, 3, 10];
  for (let i = 0; i < 24; i++) {
    const createdAt = BASE_TIME + i * 750;
    tasks.push(
      makePolicyTask({
        id: `sample-${i}`,
        type: i % 3 === 0 ? "b" : "a",
        priority: priorities[i % priorities.length] ?? 0,
        seq: i + 1,
        attempt: 1 + (i % 4 === 3 ? 2 : 0),
        createdAt,
        enqueuedAt: createdAt + (i % 4 === 3 ? 5_000 : 0),
        requiredLabels: i % 5 === 0 ? { zone: "x" } : {},
        expectedDurationMs: [0, 5, 120, 60_000][i % 4] ?? 0,
      }),
    );
  }
  return tasks;
}

/** Workers an ordinary cluster has: different slot counts, loads, labels and assignment histories. */
export function sampleWorkers(): PolicyWorker[] {
  const workers: PolicyWorker[] = [];
  const slots = [1, 2, 4, 16];
  for (let i = 0; i < 8; i++) {
    const s = slots[i % slots.length] ?? 1;
    workers.push(
      makePolicyWorker({
        id: `sample-w${i}`,
        host: `host-${i % 2}`,
        slots: s,
        running: i % 3 === 0 ? 0 : Math.min(s - 1, i % s),
        labels: i % 2 === 0 ? { zone: "x" } : { zone: "y" },
        taskTypes: new Set(i % 4 === 3 ? ["b"] : ["a", "b"]),
        lastAssignedSeq: i < 2 ? 0 : 100 + i * 7,
        joinSeq: i + 1,
      }),
    );
  }
  return workers;
}

/** The scheduler's own checks before a policy's filter: type, labels, a free slot. */
export function builtInFits(task: PolicyTask, worker: PolicyWorker): boolean {
  if (!worker.taskTypes.has(task.type)) return false;
  if (worker.running >= worker.slots) return false;
  return Object.entries(task.requiredLabels).every(([k, v]) => worker.labels[k] === v);
}
