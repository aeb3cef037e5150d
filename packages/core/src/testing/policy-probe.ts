/**
 * What the conformance kit's checks stand on: the helpers that call a policy and fail with a
 * readable message when it throws or answers out of contract, and the sample tasks and workers.
 */
import { Reason, TaskflowError } from "../errors.js";
import {
  MAX_SCORE,
  type FilterResult,
  type PolicyContext,
  type PolicyDefinition,
  type PolicyTask,
  type PolicyWorker,
  type SchedulingPolicy,
} from "../policy.js";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker } from "./policy-fixtures.js";
import type { PolicyConformanceCheck, PolicyConformanceCheckId, PolicyConformanceOptions } from "./policy.js";

export function check(id: PolicyConformanceCheckId, name: string, run: () => void): PolicyConformanceCheck {
  return { id, name, run };
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
  return `task ${show({ id: t.id, type: t.type, tenant: t.tenant, priority: t.priority, seq: t.seq, attempt: t.attempt, enqueuedAt: t.enqueuedAt })}`;
}

export function describeWorker(w: PolicyWorker): string {
  return `worker ${show({ id: w.id, slots: w.slots, running: w.running, lastAssignedSeq: w.lastAssignedSeq, joinSeq: w.joinSeq })}`;
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

/** Tenants of the sample tasks and of the simulation. */
export const SAMPLE_TENANTS = ["default", "acme", "globex"] as const;

/** Tasks an ordinary cluster sees: two types, three tenants, several priorities and attempts, some needing a label. */
export function sampleTasks(idPrefix = "sample", seqBase = 0): PolicyTask[] {
  const tasks: PolicyTask[] = [];
  const priorities = [-5, 0, 0, 1, 3, 10];
  for (let i = 0; i < 24; i++) {
    const createdAt = BASE_TIME + i * 750;
    tasks.push(
      makePolicyTask({
        id: `${idPrefix}-${i}`,
        type: i % 3 === 0 ? "b" : "a",
        priority: priorities[i % priorities.length] ?? 0,
        seq: seqBase + i + 1,
        tenant: SAMPLE_TENANTS[i % SAMPLE_TENANTS.length] ?? "default",
        clientId: i % 2 ? "client-1" : "",
        metadata: i % 4 === 1 ? { team: "blue", cost: "3" } : {},
        deadline: i % 3 === 2 ? createdAt + 60_000 : 0,
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

/** Calls into the policy under test, each call checked against the contract. */
export abstract class PolicyProbe {
  protected readonly def: PolicyDefinition;
  constructor(
    protected readonly raw: unknown,
    protected readonly opts: PolicyConformanceOptions,
  ) {
    this.def = raw as PolicyDefinition;
  }

  /** The definition check, which every instance runs first. */
  abstract definition(): void;

  scoreOf(policy: SchedulingPolicy, task: PolicyTask, worker: PolicyWorker): number | undefined {
    if (!policy.score) return undefined;
    let value: unknown;
    try {
      value = policy.score(task, worker);
    } catch (error) {
      fail(`score threw for ${describeTask(task)} on ${describeWorker(worker)}: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_SCORE) {
      fail(`score returned ${show(value)} for ${describeTask(task)} on ${describeWorker(worker)}, expected a number from 0 to ${MAX_SCORE}`);
    }
    return value;
  }

  instance(context: PolicyContext = createPolicyTestContext()): SchedulingPolicy {
    this.definition();
    let options: unknown;
    try {
      options = this.def.parseOptions(this.opts.options);
    } catch (error) {
      fail(`parseOptions(${show(this.opts.options)}) threw: ${(error as Error)?.message ?? String(error)}`, error);
    }
    let policy: SchedulingPolicy;
    try {
      policy = this.def.create(options, context);
    } catch (error) {
      fail(`create() threw: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (typeof policy !== "object" || policy === null) fail(`create() returned ${show(policy)}, expected a policy object`);
    if (typeof policy.taskKey !== "function") fail("the policy has no taskKey method");
    if (typeof policy.workerKey !== "function") fail("the policy has no workerKey method");
    return policy;
  }

  taskKey(policy: SchedulingPolicy, task: PolicyTask): number {
    let key: unknown;
    try {
      key = policy.taskKey(task);
    } catch (error) {
      fail(`taskKey threw for ${describeTask(task)}: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (typeof key !== "number" || !Number.isFinite(key)) fail(`taskKey returned ${show(key)} for ${describeTask(task)}, expected a finite number`);
    return key;
  }

  workerKey(policy: SchedulingPolicy, worker: PolicyWorker): number {
    let key: unknown;
    try {
      key = policy.workerKey(worker);
    } catch (error) {
      fail(`workerKey threw for ${describeWorker(worker)}: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (typeof key !== "number" || !Number.isFinite(key)) fail(`workerKey returned ${show(key)} for ${describeWorker(worker)}, expected a finite number`);
    return key;
  }

  filterResult(policy: SchedulingPolicy, task: PolicyTask, worker: PolicyWorker): FilterResult {
    if (!policy.filter) return { fits: true };
    let result: unknown;
    try {
      result = policy.filter(task, worker);
    } catch (error) {
      fail(
        `filter threw for ${describeTask(task)} on ${describeWorker(worker)}: ${(error as Error)?.message ?? String(error)}; ` +
          `return doesNotFit(reason) instead`,
        error,
      );
    }
    const r = result as { fits?: unknown; reason?: unknown } | null;
    if (typeof r !== "object" || r === null || typeof r.fits !== "boolean") {
      fail(`filter returned ${show(result)} for ${describeTask(task)} on ${describeWorker(worker)}, expected FITS or doesNotFit(reason)`);
    }
    if (r.fits === false && (typeof r.reason !== "string" || r.reason.trim() === "")) {
      fail(`filter said a task does not fit without a reason (${show(result)}); users read the reason in \`get\``);
    }
    return r as FilterResult;
  }

  requeuePriority(policy: SchedulingPolicy, task: PolicyTask): number | undefined {
    if (!policy.onRequeue) return undefined;
    let decision: unknown;
    try {
      decision = policy.onRequeue(task);
    } catch (error) {
      fail(`onRequeue threw for ${describeTask(task)}: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (decision === undefined) return undefined;
    const d = decision as { priority?: unknown } | null;
    if (typeof d !== "object" || d === null) fail(`onRequeue returned ${show(decision)}, expected undefined or { priority }`);
    if (d.priority === undefined) return undefined;
    if (typeof d.priority !== "number" || !Number.isFinite(d.priority)) {
      fail(`onRequeue returned priority ${show(d.priority)} for ${describeTask(task)}, expected a finite number`);
    }
    return d.priority;
  }

  expectOptionsError(raw: unknown, mustMention?: string): void {
    let parsed: unknown;
    try {
      parsed = this.def.parseOptions(raw);
    } catch (error) {
      if (!TaskflowError.is(error) || error.reason !== Reason.POLICY_OPTIONS) {
        fail(
          `parseOptions(${show(raw)}) threw ${show((error as Error)?.message ?? error)} without reason ${Reason.POLICY_OPTIONS}; ` +
            `throw a TaskflowError with that reason (definePolicy does)`,
          error,
        );
      }
      if (mustMention !== undefined && !error.message.includes(mustMention)) {
        fail(`the error for an unknown option does not name the key ${show(mustMention)}: ${show(error.message)}`);
      }
      return;
    }
    fail(`parseOptions(${show(raw)}) accepted it (returned ${show(parsed)}); it must be rejected with ${Reason.POLICY_OPTIONS}`);
  }
}
