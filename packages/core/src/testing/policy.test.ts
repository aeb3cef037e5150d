import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, Reason, TaskflowError } from "../errors.js";
import { FITS, definePolicy, doesNotFit, type PolicyDefinition, type SchedulingPolicy } from "../policy.js";
import {
  assertPolicyConformance,
  checkPolicyConformance,
  createPolicyTestContext,
  makePolicyTask,
  makePolicyWorker,
  policyConformanceChecks,
  runPolicyConformance,
  type PolicyConformanceCheckId,
} from "./policy.js";

/**
 * A small, correct policy: FIFO tasks, least busy worker, and hook state (the tasks each tenant
 * has on workers) that its score reads. The kit must pass it.
 */
const sane = definePolicy({
  name: "sane",
  coreVersions: "^0.1.0",
  defaults: { boost: 1 },
  create: (options) => {
    const onWorkers = new Map<string, Set<string>>();
    const held = (tenant: string) => onWorkers.get(tenant)?.size ?? 0;
    return {
      name: "sane",
      taskKey: (task) => task.seq,
      workerKey: (worker) => worker.running / worker.slots,
      filter: (task, worker) => (task.expectedDurationMs > 1e9 && worker.slots < 2 ? doesNotFit("too long for a small worker") : FITS),
      score: (task, worker) => Math.max(0, 50 + (worker.labels["zone"] === "x" ? 10 : 0) - Math.min(40, held(task.tenant))),
      onAssigned: (task) => {
        let ids = onWorkers.get(task.tenant);
        if (!ids) onWorkers.set(task.tenant, (ids = new Set()));
        ids.add(task.id);
      },
      onFinished: (task) => {
        onWorkers.get(task.tenant)?.delete(task.id);
      },
      onRequeue: (task) => ({ priority: task.priority + options.boost }),
    };
  },
});

/** A copy of `sane` with some methods replaced: each broken policy breaks one rule. */
function broken(name: string, override: (context: { now(): number }) => Partial<SchedulingPolicy>, coreVersions = "^0.1.0"): PolicyDefinition {
  return definePolicy({
    name,
    coreVersions,
    defaults: { boost: 1 },
    create: (options, context) => ({ ...sane.create(options, context), name, ...override(context) }),
  });
}

function failedChecks(definition: unknown, options?: unknown): PolicyConformanceCheckId[] {
  return checkPolicyConformance(definition, options === undefined ? {} : { options })
    .filter((r) => !r.ok)
    .map((r) => r.id);
}

function errorOf(definition: unknown, id: PolicyConformanceCheckId): string {
  const result = checkPolicyConformance(definition).find((r) => r.id === id);
  assert.ok(result && !result.ok, `check ${id} should fail`);
  return result.error?.message ?? "";
}

describe("policy conformance kit", () => {
  describe("checkPolicyConformance", () => {
    it("passes a correct policy on every check", () => {
      const results = checkPolicyConformance(sane);
      assert.equal(results.length, 19);
      assert.deepEqual(
        results.filter((r) => !r.ok).map((r) => `${r.id}: ${r.error?.message}`),
        [],
      );
    });

    it("passes a correct policy with non-default options", () => {
      assert.deepEqual(failedChecks(sane, { boost: 3 }), []);
    });

    it("fails something that is not a policy definition on every check", () => {
      const results = checkPolicyConformance({ name: "nope", taskKey: () => 0 });
      assert.ok(results.every((r) => !r.ok));
      assert.match(errorOf({ name: "nope" }, "definition"), /kind is undefined.*coreVersions is not a string.*parseOptions is not a function/);
    });

    it("fails a policy whose core range excludes this core", () => {
      const def = broken("old", () => ({}), "^9.0.0");
      assert.deepEqual(failedChecks(def), ["core-versions"]);
      assert.match(errorOf(def, "core-versions"), /"\^9\.0\.0" does not include this @taskflow\/core 0\.1\.0/);
      assert.deepEqual(failedChecks(broken("garbled", () => ({}), "version one")), ["core-versions"]);
    });

    it("fails a policy whose options parser accepts anything", () => {
      const lenient: PolicyDefinition = { ...sane, parseOptions: (raw) => ({ boost: 1, ...(raw as object) }) };
      assert.deepEqual(failedChecks(lenient), ["unknown-option", "options-type", "options-schema"]);
      assert.match(errorOf(lenient, "unknown-option"), /accepted it/);
    });

    it("fails a policy whose options parser throws a plain Error", () => {
      const plain: PolicyDefinition = {
        ...sane,
        parseOptions: (raw) => {
          if (raw !== undefined && (typeof raw !== "object" || raw === null || Object.keys(raw).length > 0)) throw new Error("bad");
          return { boost: 1 };
        },
      };
      assert.deepEqual(failedChecks(plain), ["unknown-option", "options-type", "options-schema"]);
      assert.match(errorOf(plain, "unknown-option"), /without reason TASKFLOW_ERR_POLICY_OPTIONS/);
    });

    it("fails a policy whose options parser rejects even empty options", () => {
      const strict: PolicyDefinition = {
        ...sane,
        parseOptions: () => {
          throw new TaskflowError(Code.INVALID_ARGUMENT, "no", { reason: Reason.POLICY_OPTIONS });
        },
      };
      assert.ok(failedChecks(strict).includes("default-options"));
    });

    it("fails a policy created under another name", () => {
      const def: PolicyDefinition = { ...sane, create: (o, c) => ({ ...sane.create(o as { boost: number }, c), name: "other" }) };
      assert.deepEqual(failedChecks(def), ["create"]);
    });

    it("fails a policy whose task key is not a finite number", () => {
      const def = broken("nan", () => ({ taskKey: (task) => (task.priority > 5 ? Number.NaN : task.seq) }));
      assert.ok(failedChecks(def).includes("task-keys"));
      assert.match(errorOf(def, "task-keys"), /taskKey returned NaN .*"priority":10/);
    });

    it("fails a policy whose task key changes between calls", () => {
      let calls = 0;
      const def = broken("counter", () => ({ taskKey: () => ++calls }));
      assert.ok(failedChecks(def).includes("task-keys"));
    });

    it("fails a policy that writes to the task it is shown", () => {
      const def = broken("mutating", () => ({
        taskKey: (task) => {
          (task as { priority: number }).priority = 0;
          return task.seq;
        },
      }));
      assert.match(errorOf(def, "task-keys"), /taskKey threw/);
    });

    it("fails a policy whose task key reads the context clock", () => {
      const def = broken("aging-by-clock", (context) => ({ taskKey: (task) => context.now() / 1000 - task.priority }));
      assert.deepEqual(failedChecks(def), ["task-keys-clock"]);
      assert.match(errorOf(def, "task-keys-clock"), /offset of task\.enqueuedAt/);
    });

    it("fails a policy whose task key reads Date.now()", () => {
      const def = broken("wall-clock", () => ({ taskKey: (task) => Date.now() - task.seq }));
      assert.ok(failedChecks(def).includes("task-keys-clock"));
      const dated = broken("new-date", () => ({ taskKey: (task) => new Date().getTime() + task.seq }));
      assert.ok(failedChecks(dated).includes("task-keys-clock"));
    });

    it("fails a policy whose worker key is infinite for a full worker", () => {
      const def = broken("infinite", () => ({ workerKey: (w) => (w.running === w.slots ? Infinity : w.running / w.slots) }));
      assert.deepEqual(failedChecks(def), ["worker-keys-load"]);
    });

    it("fails a policy whose worker key is random", () => {
      const def = broken("random-worker", () => ({ workerKey: () => Math.random() }));
      assert.ok(failedChecks(def).includes("worker-keys"));
    });

    it("fails a policy that prefers the busier worker", () => {
      const def = broken("busiest-first", () => ({ workerKey: (worker) => -worker.running }));
      assert.deepEqual(failedChecks(def), ["worker-keys-load"]);
      assert.match(errorOf(def, "worker-keys-load"), /would prefer the busier worker/);
    });

    it("fails a policy whose filter throws", () => {
      const def = broken("throwing-filter", () => ({
        filter: (task) => {
          if (task.requiredLabels["zone"]) throw new Error("labels are not my job");
          return FITS;
        },
      }));
      assert.ok(failedChecks(def).includes("filter"));
      assert.match(errorOf(def, "filter"), /filter threw .*labels are not my job.*return doesNotFit/);
    });

    it("fails a policy whose filter says no without a reason or returns a boolean", () => {
      const silent = broken("silent-filter", () => ({ filter: (task) => (task.type === "b" ? { fits: false, reason: "" } : FITS) }));
      assert.ok(failedChecks(silent).includes("filter"));
      const boolean = broken("boolean-filter", () => ({ filter: () => true as unknown as typeof FITS }));
      assert.ok(failedChecks(boolean).includes("filter"));
    });

    it("fails a policy whose requeue priority is not a finite number", () => {
      const infinite = broken("infinite-boost", () => ({ onRequeue: () => ({ priority: Infinity }) }));
      assert.ok(failedChecks(infinite).includes("requeue"));
      const text = broken("text-boost", () => ({ onRequeue: () => "high" as never }));
      assert.ok(failedChecks(text).includes("requeue"));
    });

    it("fails a policy written for a contract version this core does not load", () => {
      const future: PolicyDefinition = { ...sane, contract: 3 };
      assert.deepEqual(failedChecks(future), ["contract"]);
      assert.match(errorOf(future, "contract"), /policy "sane" is written for policy contract version 3, but this @taskflow\/core loads versions 1 and 2/);
      assert.deepEqual(failedChecks({ ...sane, contract: undefined }), [], "no version is version 1, which still loads");
    });

    it("fails a policy whose options are checked with typeof, which lets null and arrays pass for an object", () => {
      const typeofOnly: PolicyDefinition = {
        ...sane,
        parseOptions: (raw) => {
          if (raw !== undefined && (typeof raw !== "object" || Array.isArray(raw))) {
            throw new TaskflowError(Code.INVALID_ARGUMENT, "options must be an object", { reason: Reason.POLICY_OPTIONS });
          }
          const out: Record<string, unknown> = { weights: {}, boost: 1 };
          for (const [key, value] of Object.entries((raw ?? {}) as object)) {
            if (!(key in out)) throw new TaskflowError(Code.INVALID_ARGUMENT, `unknown option "${key}"`, { reason: Reason.POLICY_OPTIONS });
            if (typeof value !== typeof out[key]) throw new TaskflowError(Code.INVALID_ARGUMENT, `option "${key}" has the wrong type`, { reason: Reason.POLICY_OPTIONS });
            out[key] = value;
          }
          return out;
        },
      };
      assert.deepEqual(failedChecks(typeofOnly), ["options-schema"]);
      assert.match(errorOf(typeofOnly, "options-schema"), /parseOptions\(\{"weights":\[\]\}\) accepted it/);
    });

    it("passes definePolicy's own checks by example, and a schema's", () => {
      const withObject = definePolicy({ name: "objects", coreVersions: "^0.1.0", defaults: { weights: {} as Record<string, number>, tags: [] as string[], on: true }, create: (o, c) => ({ ...sane.create({ boost: 1 }, c), name: "objects", onRequeue: () => ({ priority: Object.keys(o.weights).length }) }) });
      assert.deepEqual(failedChecks(withObject), []);
    });

    it("fails a policy whose score is out of range", () => {
      const def = broken("over-score", () => ({ score: (task) => (task.tenant === "acme" ? 150 : 50) }));
      assert.ok(failedChecks(def).includes("score"));
      assert.match(errorOf(def, "score"), /score returned 150 .*expected a number from 0 to 100/);
    });

    it("fails a policy that deletes from worker.taskTypes or writes to task.metadata", () => {
      const deleting = broken("deletes-types", () => ({
        workerKey: (worker) => {
          (worker.taskTypes as Set<string>).delete("b");
          return worker.running / worker.slots;
        },
      }));
      assert.ok(failedChecks(deleting).includes("views-readonly"));
      assert.match(errorOf(deleting, "views-readonly"), /workerKey failed on the read-only view of worker .*views are read-only/);
      const tagging = broken("tags-metadata", () => ({
        onAssigned: (task) => {
          (task.metadata as Record<string, string>)["seen"] = "yes";
        },
      }));
      assert.deepEqual(failedChecks(tagging), ["views-readonly", "hook-replay", "simulation"]);
    });

    it("fails a policy that costs 2 ms per call", () => {
      const slow = broken("slow", () => ({
        taskKey: (task) => {
          const until = performance.now() + 2;
          while (performance.now() < until);
          return task.seq;
        },
      }));
      assert.deepEqual(failedChecks(slow), ["cost"]);
      assert.match(errorOf(slow, "cost"), /taskKey costs \d+\.\d µs per call .*over the budget of 20 µs/);
    });

    it("fails a policy whose hook state counts finished tasks, which a restart cannot rebuild", () => {
      const counting = broken("counts-history", () => {
        const done = new Map<string, number>();
        return {
          taskKey: (task) => task.seq + 1000 * (done.get(task.tenant) ?? 0),
          onFinished: (task) => {
            done.set(task.tenant, (done.get(task.tenant) ?? 0) + 1);
          },
        };
      });
      assert.deepEqual(failedChecks(counting), ["hook-replay"]);
      assert.match(errorOf(counting, "hook-replay"), /after a restart .* decides differently.*taskKey gave \d+ live and \d+ rebuilt/);
    });

    it("fails, in the simulation only, a policy that strands tasks no worker's filter ever takes", () => {
      const def = broken("strands-b", () => ({ filter: (task) => (task.type === "b" ? doesNotFit("b tasks are not welcome") : FITS) }));
      assert.deepEqual(failedChecks(def), ["simulation"]);
      assert.match(errorOf(def, "simulation"), /stayed queued with every worker idle/);
    });

    it("fails, in the simulation only, a policy whose keys break after a while", () => {
      let calls = 0;
      const def = broken("decays", () => ({
        workerKey: (worker) => {
          calls++;
          return calls > 300 ? Number.NaN : worker.running / worker.slots;
        },
      }));
      assert.ok(failedChecks(def).includes("simulation"));
    });

    it("fails, in the simulation only, a policy whose close throws", () => {
      const def = broken("bad-close", () => ({
        close: () => {
          throw new Error("already closed");
        },
      }));
      assert.deepEqual(failedChecks(def), ["simulation"]);
    });

    it("gives the same simulation outcome for the same seed", () => {
      const def = broken("strands-b", () => ({ filter: (task) => (task.type === "b" ? doesNotFit("no b") : FITS) }));
      const first = checkPolicyConformance(def, { seed: 7 }).find((r) => r.id === "simulation")?.error?.message;
      const second = checkPolicyConformance(def, { seed: 7 }).find((r) => r.id === "simulation")?.error?.message;
      assert.ok(first);
      assert.equal(first, second);
    });
  });

  describe("runPolicyConformance", () => {
    it("registers one describe with one test per check, and the tests fail for a broken policy", async () => {
      const registered: { suite: string; tests: { name: string; fn: () => Promise<void> }[] }[] = [];
      runPolicyConformance(broken("busiest-first", () => ({ workerKey: (worker) => -worker.running })), {
        test: {
          describe: (name, fn) => {
            registered.push({ suite: name, tests: [] });
            fn();
          },
          it: (name, fn) => registered.at(-1)?.tests.push({ name, fn }),
        },
      });
      assert.equal(registered.length, 1);
      assert.equal(registered[0]?.suite, 'policy conformance: "busiest-first"');
      const tests = registered[0]?.tests ?? [];
      assert.deepEqual(
        tests.map((t) => t.name),
        policyConformanceChecks(sane).map((c) => c.name),
      );
      const failing: typeof tests = [];
      for (const t of tests) {
        await t.fn().catch(() => failing.push(t));
      }
      assert.deepEqual(
        failing.map((t) => t.name),
        ["never prefers a worker for running more tasks"],
      );
    });
  });

  describe("assertPolicyConformance", () => {
    it("returns for a correct policy", () => {
      assertPolicyConformance(sane);
    });

    it("throws an AggregateError naming every failed check", () => {
      const def = broken("two-faults", () => ({
        workerKey: (worker) => -worker.running,
        onRequeue: () => ({ priority: Number.NaN }),
      }));
      assert.throws(
        () => assertPolicyConformance(def),
        (error: unknown) =>
          error instanceof AggregateError &&
          error.errors.length === 3 &&
          /fails 3 conformance check\(s\)/.test(error.message) &&
          /never prefers a worker/.test(error.message) &&
          /finite priority on requeue/.test(error.message) &&
          /simulated cluster: onRequeue returned priority NaN/.test(error.message),
      );
    });
  });

  describe("createPolicyTestContext", () => {
    it("returns the time it was set to and keeps log lines", () => {
      const context = createPolicyTestContext(1000);
      assert.equal(context.now(), 1000);
      context.setNow(2500);
      assert.equal(context.now(), 2500);
      context.logger.warn("slow", { ms: 3 });
      context.logger.debug("quiet");
      assert.deepEqual(context.logs, [
        { level: "warn", message: "slow", fields: { ms: 3 } },
        { level: "debug", message: "quiet" },
      ]);
    });
  });

  describe("makePolicyTask", () => {
    it("fills defaults, applies overrides and freezes the result", () => {
      const task = makePolicyTask({ seq: 9, priority: 2, requiredLabels: { gpu: "yes" } });
      assert.equal(task.id, "t-9");
      assert.equal(task.priority, 2);
      assert.equal(task.enqueuedAt, task.createdAt);
      assert.ok(Object.isFrozen(task) && Object.isFrozen(task.requiredLabels));
      assert.throws(() => {
        (task as { priority: number }).priority = 1;
      }, TypeError);
    });
  });

  describe("makePolicyWorker", () => {
    it("fills defaults, applies overrides and freezes the result", () => {
      const worker = makePolicyWorker({ joinSeq: 3, slots: 8, taskTypes: new Set(["x"]) });
      assert.equal(worker.id, "w-3");
      assert.equal(worker.slots, 8);
      assert.deepEqual([...worker.taskTypes], ["x"]);
      assert.ok(Object.isFrozen(worker) && Object.isFrozen(worker.labels));
    });
  });
});
