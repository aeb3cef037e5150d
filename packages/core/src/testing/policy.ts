/**
 * The policy conformance kit: checks every scheduling policy package — built-in or third-party —
 * runs in its own tests, so a policy that would break the scheduler fails in its author's CI
 * instead of in a cluster.
 *
 * Each check asks only what every sane policy must do for the scheduler to work; a policy's own
 * behaviour (which task goes first, which worker wins) is for its own tests. The checks:
 *
 * 1. **definition** – the default export is a policy definition (`kind`, `name`, `coreVersions`,
 *    `parseOptions`, `create`), as made by `definePolicy`.
 * 2. **core versions** – `coreVersions` is a valid semver range that includes this core's version,
 *    otherwise the loader refuses the policy.
 * 3. **default options** – `parseOptions(undefined)` and `parseOptions({})` succeed: config may
 *    leave the options out.
 * 4. **unknown option** – an unknown key is rejected with a TaskflowError whose reason is
 *    `TASKFLOW_ERR_POLICY_OPTIONS` and whose message names the key: a typo in config must not
 *    pass silently.
 * 5. **options type** – options that are not an object (a number, a string, an array) are
 *    rejected the same way.
 * 6. **create** – `create` returns a policy with the definition's name and the two required
 *    methods, and the optional ones are functions when present.
 * 7. **task keys** – `taskKey` returns a finite number, the same for the same task, also from a
 *    second instance (a new leader recomputes keys after a failover).
 * 8. **no clock in task keys** – `taskKey` does not depend on the current time: the key is
 *    computed once when the task enters the queue and never again, so a key that reads the clock
 *    would freeze an arbitrary moment. Checked with two contexts whose `now()` differ and with
 *    `Date.now()` / `new Date()` mocked to different instants.
 * 9. **worker keys** – `workerKey` returns a finite number, the same for the same worker state,
 *    also from a second instance.
 * 10. **load monotonic** – for the same worker, one more running task never gives a smaller key:
 *    the scheduler must not prefer a worker *because* it is busier. (Equal keys are fine; FIFO's
 *    round robin ignores load.)
 * 11. **filter** – when present, `filter` returns a FilterResult (`{ fits: true }` or
 *    `{ fits: false, reason }` with a non-empty reason, which users read in `get`) and never
 *    throws, for every task and worker that passed the built-in type, label and free-slot checks.
 * 12. **requeue** – when present, `onRequeue` returns `undefined` or `{ priority? }` with a finite
 *    priority, and does not throw.
 * 13. **simulation** – a small in-memory cluster (tasks of two types, some needing a label,
 *    workers of different slot counts, completions, a lost worker whose tasks are requeued) run
 *    through the policy the way the scheduler uses it: every task is assigned and completed
 *    exactly once, no worker ever runs more tasks than its slots, and every key stays finite.
 *
 * Inputs are frozen throughout, so a policy that writes to a task or worker fails in strict mode.
 */
import { createRequire } from "node:module";
import { describe as nodeDescribe, it as nodeIt } from "node:test";
import { Reason, TaskflowError } from "../errors.js";
import {
  isPolicyDefinition,
  type FilterResult,
  type PolicyContext,
  type PolicyDefinition,
  type PolicyTask,
  type PolicyWorker,
  type SchedulingPolicy,
} from "../policy.js";
import { CORE_VERSION } from "../version.js";
import type { ConformanceTestApi } from "./store.js";
import {
  BASE_TIME,
  builtInFits,
  createPolicyTestContext,
  makePolicyWorker,
  describeTask,
  describeWorker,
  fail,
  nameOf,
  sampleTasks,
  sampleWorkers,
  show,
  withWallClock,
  type SemverSubset,
} from "./policy-support.js";
import { Simulation, type SimulationKit } from "./policy-simulation.js";

export { createPolicyTestContext, makePolicyTask, makePolicyWorker, type PolicyTestContext } from "./policy-support.js";

/** The checks, in the order they run; see the module comment for what each one asks. */
export type PolicyConformanceCheckId =
  | "definition"
  | "core-versions"
  | "default-options"
  | "unknown-option"
  | "options-type"
  | "create"
  | "task-keys"
  | "task-keys-clock"
  | "worker-keys"
  | "worker-keys-load"
  | "filter"
  | "requeue"
  | "simulation";

/** One named check of the kit. `run` throws (an AssertionError or Error) when the policy fails it. */
export interface PolicyConformanceCheck {
  readonly id: PolicyConformanceCheckId;
  readonly name: string;
  run(): void;
}

/** The outcome of one check from {@link checkPolicyConformance}. */
export interface PolicyConformanceResult {
  readonly id: PolicyConformanceCheckId;
  readonly name: string;
  readonly ok: boolean;
  /** Why it failed; absent when it passed. */
  readonly error?: Error;
}

export interface PolicyConformanceOptions {
  /**
   * Raw options (as written in `scheduler.policyOptions`) for the policy instances the checks
   * create; run the kit once per interesting option set.
   * @defaultValue `undefined` (the policy's defaults)
   */
  options?: unknown;
  /**
   * The test functions {@link runPolicyConformance} registers the checks with (the same shape as
   * the store kit's).
   * @defaultValue `describe` and `it` from `node:test`
   */
  test?: ConformanceTestApi;
  /**
   * Seed of the simulation's pseudo-random choices; a failing run is repeatable with the same seed.
   * @defaultValue 1
   */
  seed?: number;
  /**
   * How many tasks the simulation submits.
   * @defaultValue 200
   */
  simulatedTasks?: number;
}

/**
 * The kit's checks for one policy definition, in order, for any test runner.
 * @param definition the policy package's default export (typed `unknown`: checking it is check 1).
 */
export function policyConformanceChecks(
  definition: unknown,
  options: PolicyConformanceOptions = {},
): PolicyConformanceCheck[] {
  const kit = new Kit(definition, options);
  return [
    check("definition", "is a policy definition made with definePolicy", () => kit.definition()),
    check("core-versions", "supports this version of @taskflow/core", () => kit.coreVersions()),
    check("default-options", "parses missing or empty options into defaults", () => kit.defaultOptions()),
    check("unknown-option", "rejects an unknown option key with TASKFLOW_ERR_POLICY_OPTIONS", () => kit.unknownOption()),
    check("options-type", "rejects options that are not an object", () => kit.optionsType()),
    check("create", "creates a policy with the definition's name and methods", () => kit.create()),
    check("task-keys", "gives every task a finite key, the same for the same task", () => kit.taskKeys()),
    check("task-keys-clock", "computes task keys without reading the clock", () => kit.taskKeysIgnoreClock()),
    check("worker-keys", "gives every worker a finite key, the same for the same state", () => kit.workerKeys()),
    check("worker-keys-load", "never prefers a worker for running more tasks", () => kit.workerKeysMonotonic()),
    check("filter", "filters with a FilterResult and never throws", () => kit.filter()),
    check("requeue", "returns nothing or a finite priority on requeue", () => kit.requeue()),
    check("simulation", "assigns every task exactly once within slots in a simulated cluster", () => kit.simulate()),
  ];
}

/**
 * Registers the kit's checks as tests: one `describe` named after the policy with one `it` per
 * check. Call it at the top level of a test file.
 *
 * @example
 * ```ts
 * import { runPolicyConformance } from "@taskflow/core/testing";
 * import policy from "./index.js";
 * runPolicyConformance(policy);
 * runPolicyConformance(policy, { options: { agingRate: 0 } });
 * ```
 */
export function runPolicyConformance(definition: unknown, options: PolicyConformanceOptions = {}): void {
  const { describe, it } = options.test ?? { describe: nodeDescribe, it: nodeIt };
  const title = `policy conformance: ${nameOf(definition)}${options.options === undefined ? "" : ` ${JSON.stringify(options.options)}`}`;
  describe(title, () => {
    for (const c of policyConformanceChecks(definition, options)) it(c.name, async () => c.run());
  });
}

/** Runs every check and reports each outcome, without a test runner. */
export function checkPolicyConformance(
  definition: unknown,
  options: PolicyConformanceOptions = {},
): PolicyConformanceResult[] {
  return policyConformanceChecks(definition, options).map((c) => {
    try {
      c.run();
      return { id: c.id, name: c.name, ok: true };
    } catch (error) {
      return { id: c.id, name: c.name, ok: false, error: error instanceof Error ? error : new Error(String(error)) };
    }
  });
}

/** Runs every check and throws an AggregateError listing the failed ones, for a single test. */
export function assertPolicyConformance(definition: unknown, options: PolicyConformanceOptions = {}): void {
  const failed = checkPolicyConformance(definition, options).filter((r) => !r.ok);
  if (failed.length === 0) return;
  const lines = failed.map((r) => `  - ${r.name}: ${r.error?.message ?? "failed"}`);
  throw new AggregateError(
    failed.map((r) => r.error),
    `policy ${nameOf(definition)} fails ${failed.length} conformance check(s):\n${lines.join("\n")}`,
  );
}

function check(id: PolicyConformanceCheckId, name: string, run: () => void): PolicyConformanceCheck {
  return { id, name, run };
}

class Kit implements SimulationKit {
  private readonly def: PolicyDefinition;
  constructor(
    private readonly raw: unknown,
    private readonly opts: PolicyConformanceOptions,
  ) {
    this.def = raw as PolicyDefinition;
  }

  definition(): void {
    if (isPolicyDefinition(this.raw)) {
      if (!this.raw.name.trim()) fail("the definition's name is empty");
      return;
    }
    const v = this.raw as Record<string, unknown> | null;
    if (typeof v !== "object" || v === null) fail(`expected a policy definition object, got ${show(v)}`);
    const problems: string[] = [];
    if (v.kind !== "taskflow.policy") problems.push(`kind is ${show(v.kind)}, expected "taskflow.policy"`);
    for (const key of ["name", "coreVersions"]) if (typeof v[key] !== "string") problems.push(`${key} is not a string`);
    for (const key of ["parseOptions", "create"]) if (typeof v[key] !== "function") problems.push(`${key} is not a function`);
    fail(`not a policy definition (make it with definePolicy from @taskflow/core): ${problems.join("; ")}`);
  }

  coreVersions(): void {
    this.definition();
    const semver = createRequire(import.meta.url)("semver") as SemverSubset;
    const range = this.def.coreVersions;
    if (semver.validRange(range) === null) fail(`coreVersions ${show(range)} is not a valid semver range`);
    if (!semver.satisfies(CORE_VERSION, range, { includePrerelease: true })) {
      fail(`coreVersions ${show(range)} does not include this @taskflow/core ${CORE_VERSION}; the loader would refuse it`);
    }
  }

  defaultOptions(): void {
    this.definition();
    for (const raw of [undefined, {}]) {
      let parsed: unknown;
      try {
        parsed = this.def.parseOptions(raw);
      } catch (error) {
        fail(`parseOptions(${show(raw)}) threw: ${(error as Error)?.message ?? String(error)}`, error);
      }
      if (typeof parsed !== "object" || parsed === null) {
        fail(`parseOptions(${show(raw)}) returned ${show(parsed)}, expected an options object`);
      }
    }
  }

  unknownOption(): void {
    this.definition();
    const key = "surelyNotAnOptionOfThisPolicy";
    this.expectOptionsError({ [key]: 1 }, key);
  }

  optionsType(): void {
    this.definition();
    for (const raw of [42, "fast", [1, 2]]) this.expectOptionsError(raw);
  }

  create(): void {
    const policy = this.instance();
    if (policy.name !== this.def.name) fail(`the policy is named ${show(policy.name)}, its definition ${show(this.def.name)}`);
    for (const key of ["filter", "onRequeue", "close"] as const) {
      const value: unknown = policy[key];
      if (value !== undefined && typeof value !== "function") fail(`${key} is ${show(value)}, expected a function or nothing`);
    }
  }

  taskKeys(): void {
    const a = this.instance();
    const b = this.instance();
    for (const task of sampleTasks()) {
      const k1 = this.taskKey(a, task);
      const k2 = this.taskKey(a, task);
      const k3 = this.taskKey(b, task);
      if (!Object.is(k1, k2)) fail(`taskKey gave ${k1} then ${k2} for the same ${describeTask(task)}`);
      if (!Object.is(k1, k3)) fail(`taskKey gave ${k1} on one instance and ${k3} on another for the same ${describeTask(task)}`);
    }
  }

  taskKeysIgnoreClock(): void {
    const early = createPolicyTestContext(BASE_TIME);
    const late = createPolicyTestContext(BASE_TIME + 86_400_000 * 365);
    const a = this.instance(early);
    const b = this.instance(late);
    for (const task of sampleTasks()) {
      const k1 = withWallClock(BASE_TIME, () => this.taskKey(a, task));
      early.setNow(BASE_TIME + 3_600_000);
      const k2 = withWallClock(BASE_TIME + 3_600_000, () => this.taskKey(a, task));
      const k3 = withWallClock(BASE_TIME + 86_400_000 * 365, () => this.taskKey(b, task));
      early.setNow(BASE_TIME);
      if (!Object.is(k1, k2) || !Object.is(k1, k3)) {
        fail(
          `taskKey changed with the clock for the same ${describeTask(task)}: ${k1} at ${BASE_TIME}, ${k2} an hour later, ` +
            `${k3} a year later. A task key is computed once on enqueue; express time as an offset of task.enqueuedAt`,
        );
      }
    }
  }

  workerKeys(): void {
    const a = this.instance();
    const b = this.instance();
    for (const worker of sampleWorkers()) {
      const k1 = this.workerKey(a, worker);
      const k2 = this.workerKey(a, worker);
      const k3 = this.workerKey(b, worker);
      if (!Object.is(k1, k2)) fail(`workerKey gave ${k1} then ${k2} for the same ${describeWorker(worker)}`);
      if (!Object.is(k1, k3)) fail(`workerKey gave ${k1} on one instance and ${k3} on another for the same ${describeWorker(worker)}`);
    }
  }

  workerKeysMonotonic(): void {
    const policy = this.instance();
    for (const base of sampleWorkers()) {
      let previous = -Infinity;
      for (let running = 0; running <= base.slots; running++) {
        const worker = makePolicyWorker({ ...base, running });
        const key = this.workerKey(policy, worker);
        if (key < previous) {
          fail(
            `workerKey fell from ${previous} to ${key} when running rose to ${running} on ${describeWorker(worker)}: ` +
              `the scheduler would prefer the busier worker`,
          );
        }
        previous = key;
      }
    }
  }

  filter(): void {
    const policy = this.instance();
    if (!policy.filter) return;
    for (const task of sampleTasks()) {
      for (const worker of sampleWorkers()) {
        if (!builtInFits(task, worker)) continue;
        this.filterResult(policy, task, worker);
      }
    }
  }

  requeue(): void {
    const policy = this.instance();
    if (!policy.onRequeue) return;
    for (const task of sampleTasks()) this.requeuePriority(policy, task);
  }

  simulate(): void {
    new Simulation(this, this.opts.seed ?? 1, this.opts.simulatedTasks ?? 200).run();
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
