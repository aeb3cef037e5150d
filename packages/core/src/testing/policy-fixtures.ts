/** Fixtures for policy tests: a context with a settable clock, and frozen tasks and workers. */
import { DEFAULT_TENANT } from "../model.js";
import type { PolicyContext, PolicyLogger, PolicyTask, PolicyWorker } from "../policy.js";
import { frozenRecord, readonlySet } from "../policy-views.js";

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

/** A deeply frozen task with plausible values (tenant "default"); override what a test is about. */
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
    tenant: DEFAULT_TENANT,
    clientId: "",
    metadata: {},
    deadline: 0,
  };
  return Object.freeze({
    ...base,
    ...overrides,
    requiredLabels: frozenRecord({ ...(overrides.requiredLabels ?? base.requiredLabels) }),
    metadata: frozenRecord({ ...(overrides.metadata ?? base.metadata) }),
  });
}

/** A deeply frozen worker with plausible values (`taskTypes` a read-only set); override what a test is about. */
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
    labels: frozenRecord({ ...(overrides.labels ?? base.labels) }),
    taskTypes: readonlySet(overrides.taskTypes ?? base.taskTypes),
  });
}
