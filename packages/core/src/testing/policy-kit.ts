/**
 * The checks of the policy conformance kit, one method each (see ./policy.ts for what each asks);
 * the calls into the policy and the samples they run on are in ./policy-probe.ts.
 */
import { createRequire } from "node:module";
import {
  contractProblem,
  isPolicyDefinition,
  type PolicyOutcome,
  type PolicyTask,
  type PolicyWorker,
} from "../policy.js";
import { CORE_VERSION } from "../version.js";
import { isReadonlySet } from "../policy-views.js";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker } from "./policy-fixtures.js";

import {
  BASE_TIME,
  PolicyProbe,
  SAMPLE_TENANTS,
  builtInFits,
  check,
  describeTask,
  describeWorker,
  fail,
  nameOf,
  sampleTasks,
  sampleWorkers,
  show,
  withWallClock,
} from "./policy-probe.js";

interface SemverSubset {
  validRange(range: string): string | null;
  satisfies(version: string, range: string, options?: { includePrerelease?: boolean }): boolean;
}

export { BASE_TIME, SAMPLE_TENANTS, builtInFits, check, describeTask, fail, nameOf };

/** The checks, one method each; the calls into the policy they make are PolicyProbe's. */
export class Kit extends PolicyProbe {

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
    for (const key of ["filter", "score", "onAssigned", "onFinished", "onRequeue", "close"] as const) {
      const value: unknown = policy[key];
      if (value !== undefined && typeof value !== "function") fail(`${key} is ${show(value)}, expected a function or nothing`);
    }
    const late: unknown = policy.lateBinding;
    if (late !== undefined && typeof late !== "boolean") fail(`lateBinding is ${show(late)}, expected true, false or nothing`);
  }

  contract(): void {
    this.definition();
    const problem = contractProblem(this.def);
    if (problem) fail(`${problem}; the loader would refuse it`);
  }

  /** Every option of another kind than its default's is refused, naming the key. */
  optionsSchema(): void {
    this.definition();
    let defaults: unknown;
    try {
      defaults = this.def.parseOptions(undefined);
    } catch (error) {
      fail(`parseOptions(undefined) threw: ${(error as Error)?.message ?? String(error)}`, error);
    }
    if (typeof defaults !== "object" || defaults === null) return;
    for (const [key, value] of Object.entries(defaults)) {
      for (const wrong of wrongValuesFor(value)) this.expectOptionsError({ [key]: wrong }, key);
    }
  }

  score(): void {
    const policy = this.instance();
    if (!policy.score) return;
    for (const task of sampleTasks()) {
      for (const worker of sampleWorkers()) {
        if (builtInFits(task, worker)) this.scoreOf(policy, task, worker);
      }
    }
  }

  /**
   * Every hook is called with deeply read-only views; one that tries to write to them (a field,
   * a label, `taskTypes.delete`) fails with the hook and the view named.
   */
  viewsReadOnly(): void {
    const tasks = sampleTasks();
    const workers = sampleWorkers();
    for (const view of [...tasks, ...workers]) assertDeeplyReadOnly(view);
    const policy = this.instance();
    const before = show([tasks, workers]);
    const guarded = (hook: string, subject: string, fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        if (error instanceof TypeError) {
          fail(`${hook} failed on the read-only view of ${subject} (${error.message}); views are read-only: copy what you need to change`, error);
        }
        fail(`${hook} threw for ${subject}: ${(error as Error)?.message ?? String(error)}`, error);
      }
    };
    for (const task of tasks) {
      guarded("taskKey", describeTask(task), () => policy.taskKey(task));
      if (policy.onRequeue) guarded("onRequeue", describeTask(task), () => policy.onRequeue?.(task));
    }
    for (const worker of workers) guarded("workerKey", describeWorker(worker), () => policy.workerKey(worker));
    for (const task of tasks) {
      for (const worker of workers) {
        if (!builtInFits(task, worker)) continue;
        const pair = `${describeTask(task)} on ${describeWorker(worker)}`;
        if (policy.filter) guarded("filter", pair, () => policy.filter?.(task, worker));
        if (policy.score) guarded("score", pair, () => policy.score?.(task, worker));
      }
    }
    tasks.forEach((task, i) => {
      const worker = workers[i % workers.length]!;
      if (policy.onAssigned) guarded("onAssigned", `${describeTask(task)} on ${describeWorker(worker)}`, () => policy.onAssigned?.(task, worker));
      if (policy.onFinished) guarded("onFinished", describeTask(task), () => policy.onFinished?.(task, OUTCOMES[i % OUTCOMES.length]!));
    });
    if (show([tasks, workers]) !== before) fail("a hook changed a view it was given");
  }

  /**
   * The mean cost of each hook per call stays within the budget: best of several rounds, so a
   * loaded machine's preemptions do not fail a cheap policy, while a slow one fails every round.
   */
  cost(budgetMicros: number): void {
    const policy = this.instance();
    const tasks = sampleTasks("cost");
    const workers = sampleWorkers();
    const fits = tasks.flatMap((task) => workers.filter((w) => builtInFits(task, w)).map((w) => [task, w] as const));
    const hooks: [string, (i: number) => unknown][] = [
      ["taskKey", (i) => policy.taskKey(tasks[i % tasks.length]!)],
      ["workerKey", (i) => policy.workerKey(workers[i % workers.length]!)],
    ];
    if (policy.filter) hooks.push(["filter", (i) => policy.filter?.(...fits[i % fits.length]!)]);
    if (policy.score) hooks.push(["score", (i) => policy.score?.(...fits[i % fits.length]!)]);
    if (policy.onAssigned) hooks.push(["onAssigned", (i) => policy.onAssigned?.(tasks[i % tasks.length]!, workers[i % workers.length]!)]);
    if (policy.onFinished) hooks.push(["onFinished", (i) => policy.onFinished?.(tasks[i % tasks.length]!, OUTCOMES[i % OUTCOMES.length]!)]);
    const calls = 100;
    for (const [hook, call] of hooks) {
      let best = Infinity;
      for (let round = 0; round < 6; round++) {
        const started = process.hrtime.bigint();
        for (let i = 0; i < calls; i++) {
          try {
            call(i);
          } catch {
            // A hook that throws fails its own check; here only its cost counts.
          }
        }
        const micros = Number(process.hrtime.bigint() - started) / 1000 / calls;
        // The first round warms up (JIT); it counts only if it is the only one under budget.
        if (round > 0 || micros <= budgetMicros) best = Math.min(best, micros);
        if (best <= budgetMicros) break;
      }
      if (best > budgetMicros) {
        fail(`${hook} costs ${best.toFixed(1)} µs per call at best over 5 rounds of ${calls} calls, over the budget of ${budgetMicros} µs: the scheduler calls it on every assignment`);
      }
    }
  }

  /**
   * Hook state rebuilt from the restart replay decides as the live state did. The live instance
   * runs rounds of enqueues, assignments in key order and outcomes (some requeued) until nothing
   * is queued; the rebuilt one only hears `onAssigned` for the tasks still on a worker, in seq
   * order, as the scheduler replays them after a restart. Both then key, filter and score the
   * same probe tasks and workers.
   */
  hookReplay(): void {
    const live = this.instance();
    const workers = sampleWorkers();
    const inFlight = new Map<string, PolicyTask>();
    let queue: { task: PolicyTask; key: number }[] = [];
    let seq = 0;
    let time = BASE_TIME;
    let assigned = 0;
    let finished = 0;
    for (let round = 0; round < 4; round++) {
      for (const task of sampleTasks(`replay-${round}`, seq)) {
        const t = makePolicyTask({ ...task, createdAt: time, enqueuedAt: time });
        queue.push({ task: t, key: this.taskKey(live, t) });
      }
      seq += 24;
      while (queue.length) {
        queue.sort((x, y) => x.key - y.key || x.task.seq - y.task.seq);
        const next = queue;
        queue = [];
        for (const { task } of next) {
          const started = makePolicyTask({ ...task, attempt: task.attempt + 1 });
          live.onAssigned?.(started, workers[assigned++ % workers.length]!);
          inFlight.set(started.id, started);
        }
        let i = 0;
        for (const [id, task] of [...inFlight]) {
          if (i++ % 3 === 0) continue;
          const outcome = OUTCOMES[finished++ % OUTCOMES.length]!;
          live.onFinished?.(task, outcome);
          inFlight.delete(id);
          time += 7;
          if (outcome === "requeued" && round < 3 && task.attempt < 3) {
            const again = makePolicyTask({ ...task, attempt: task.attempt + 1, enqueuedAt: time });
            queue.push({ task: again, key: this.taskKey(live, again) });
          }
        }
      }
      time += 1000;
    }
    const rebuilt = this.instance();
    const replayed = [...inFlight.values()].sort((a, b) => a.seq - b.seq);
    for (const task of replayed) rebuilt.onAssigned?.(task, makePolicyWorker({ id: `w-of-${task.id}`, slots: 0, taskTypes: new Set(), joinSeq: 0 }));
    const rule =
      `after a restart (onAssigned replayed for the ${replayed.length} task(s) still on workers, in seq order) the policy decides differently; ` +
      `hook state must depend only on the tasks the scheduler holds, not on finished tasks, the order of events or the clock`;
    for (const probe of sampleTasks("probe", seq)) {
      const t = makePolicyTask({ ...probe, createdAt: time, enqueuedAt: time });
      const a = this.taskKey(live, t);
      const b = this.taskKey(rebuilt, t);
      if (!Object.is(a, b)) fail(`${rule}: taskKey gave ${a} live and ${b} rebuilt for ${describeTask(t)}`);
      for (const worker of workers) {
        if (!builtInFits(t, worker)) continue;
        const fa = show(this.filterResult(live, t, worker));
        const fb = show(this.filterResult(rebuilt, t, worker));
        if (fa !== fb) fail(`${rule}: filter said ${fa} live and ${fb} rebuilt for ${describeTask(t)} on ${describeWorker(worker)}`);
        const sa = this.scoreOf(live, t, worker);
        const sb = this.scoreOf(rebuilt, t, worker);
        if (!Object.is(sa, sb)) fail(`${rule}: score gave ${sa} live and ${sb} rebuilt for ${describeTask(t)} on ${describeWorker(worker)}`);
      }
    }
    for (const worker of workers) {
      const a = this.workerKey(live, worker);
      const b = this.workerKey(rebuilt, worker);
      if (!Object.is(a, b)) fail(`${rule}: workerKey gave ${a} live and ${b} rebuilt for ${describeWorker(worker)}`);
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

}

const OUTCOMES: readonly PolicyOutcome[] = ["succeeded", "requeued", "failed", "cancelled"];

/** Values of other kinds than an option's default: what a `typeof` check lets through is first. */
function wrongValuesFor(value: unknown): unknown[] {
  if (Array.isArray(value)) return [{}, null, "x"];
  if (value === null) return [];
  switch (typeof value) {
    case "object":
      return [[], null, "x"];
    case "number":
      return ["1", null];
    case "string":
      return [1, null];
    case "boolean":
      return ["true", null];
    default:
      return [];
  }
}

/** Fails unless the view, its maps and its sets are read-only (frozen; sets without mutators). */
function assertDeeplyReadOnly(view: PolicyTask | PolicyWorker): void {
  const what = "taskTypes" in view ? describeWorker(view) : describeTask(view);
  if (!Object.isFrozen(view)) fail(`the kit's view ${what} is not frozen`);
  for (const [key, value] of Object.entries(view)) {
    if (value instanceof Set || value instanceof Map) fail(`${what}.${key} is a live ${value.constructor.name}; it must be a read-only copy`);
    if (typeof value === "object" && value !== null && !isReadonlySet(value) && !Object.isFrozen(value)) fail(`${what}.${key} is not frozen`);
  }
}
