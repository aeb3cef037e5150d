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
 * 13. **contract** – the definition's contract version (absent = 1) is one this core loads.
 * 14. **options schema** – every option refuses a value of another kind than its default's,
 *    naming the key: an object option refuses an array and `null`, a number option a string…
 *    (a `typeof` check lets `null` and arrays through as objects).
 * 15. **score** – when present, `score` returns a finite number from 0 to 100 and never throws.
 * 16. **read-only views** – every view the kit hands out is deeply read-only (frozen, maps
 *    frozen, `taskTypes` a set without mutators), and no hook fails trying to write to one: a
 *    policy that writes to what it is shown would otherwise change the node.
 * 17. **cost** – every hook costs at most `costBudgetMicros` per call on average (best of several
 *    rounds): the scheduler calls them on every assignment.
 * 18. **hook replay** – hook state rebuilt the way a restart rebuilds it (`onAssigned` replayed
 *    for the tasks still on workers, in seq order) keys, filters and scores like the live state.
 * 19. **simulation** – a small in-memory cluster (tasks of two types and three tenants, some
 *    needing a label, workers of different slot counts, completions, a lost worker whose tasks
 *    are requeued) run through the policy the way the scheduler uses it, hooks included: every
 *    task is assigned and completed exactly once, no worker ever runs more tasks than its slots,
 *    and every key stays finite.
 *
 * Inputs are deeply read-only throughout: a policy that writes to a task or worker fails.
 */
import { describe as nodeDescribe, it as nodeIt } from "node:test";
import type { ConformanceTestApi } from "./store.js";
import { Kit, check, nameOf } from "./policy-kit.js";
import { Simulation } from "./policy-simulation.js";

export { createPolicyTestContext, makePolicyTask, makePolicyWorker, type PolicyTestContext } from "./policy-fixtures.js";

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
  | "contract"
  | "options-schema"
  | "score"
  | "views-readonly"
  | "cost"
  | "hook-replay"
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
  /**
   * Most microseconds a hook may cost per call on average (the `cost` check). Generous for CI
   * under load: simple hooks cost well under 1 µs.
   * @defaultValue 20
   */
  costBudgetMicros?: number;
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
    check("contract", "declares a policy contract version this core loads", () => kit.contract()),
    check("options-schema", "refuses an option of another kind than its default, naming it", () => kit.optionsSchema()),
    check("score", "scores from 0 to 100 and never throws", () => kit.score()),
    check("views-readonly", "is given deeply read-only views and never writes to them", () => kit.viewsReadOnly()),
    check("cost", `costs at most ${options.costBudgetMicros ?? 20} µs per hook call`, () => kit.cost(options.costBudgetMicros ?? 20)),
    check("hook-replay", "decides the same with hook state rebuilt from a restart's replay", () => kit.hookReplay()),
    check("simulation", "assigns every task exactly once within slots in a simulated cluster", () =>
      new Simulation(kit, options.seed ?? 1, options.simulatedTasks ?? 200).run(),
    ),
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
