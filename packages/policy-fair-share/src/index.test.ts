import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Reason, TaskflowError, type PolicyTask, type SchedulingPolicy } from "@taskflow/core";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker, runPolicyConformance } from "@taskflow/core/testing";
import fairShare, { FAIR_SHARE_DEFAULTS, fairSharePolicy, type FairShareOptions } from "./index.js";

runPolicyConformance(fairShare);
runPolicyConformance(fairShare, { options: { weights: { acme: 3, globex: 0.5 }, within: "priority" } });
runPolicyConformance(fairShare, { options: { defaultWeight: 7 } });

const T0 = Date.UTC(2026, 3, 1, 12);

function create(options?: Partial<FairShareOptions>): SchedulingPolicy {
  return fairShare.create(fairShare.parseOptions(options), createPolicyTestContext(T0));
}

function isOptionsError(pattern: RegExp) {
  return (e: unknown) => TaskflowError.is(e) && e.reason === Reason.POLICY_OPTIONS && pattern.test(e.message);
}

/**
 * The scheduler in miniature: a queue ordered by (key, seq); `start()` pops the smallest and
 * calls onAssigned, as the scheduler does with one free slot at a time (late binding).
 */
class Queue {
  private seq = 0;
  private readonly waiting: { task: PolicyTask; key: number }[] = [];
  readonly started: PolicyTask[] = [];
  constructor(readonly policy: SchedulingPolicy) {}

  submit(tenant: string, count: number, priority = 0): PolicyTask[] {
    const tasks: PolicyTask[] = [];
    for (let i = 0; i < count; i++) {
      const seq = ++this.seq;
      const task = makePolicyTask({ id: `${tenant}-${seq}`, seq, tenant, priority, createdAt: T0 + seq, enqueuedAt: T0 + seq });
      this.waiting.push({ task, key: this.policy.taskKey(task) });
      tasks.push(task);
    }
    this.waiting.sort((a, b) => a.key - b.key || a.task.seq - b.task.seq);
    return tasks;
  }

  start(n = 1): PolicyTask[] {
    const out: PolicyTask[] = [];
    for (let i = 0; i < n && this.waiting.length; i++) {
      const { task } = this.waiting.shift()!;
      this.policy.onAssigned?.(task, makePolicyWorker());
      this.started.push(task);
      out.push(task);
    }
    return out;
  }

  /** 0-based place of a waiting task in the order. */
  rank(task: PolicyTask): number {
    return this.waiting.findIndex((w) => w.task.id === task.id);
  }

  get size(): number {
    return this.waiting.length;
  }
}

function shares(tasks: readonly PolicyTask[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tasks) out[t.tenant] = (out[t.tenant] ?? 0) + 1 / tasks.length;
  return out;
}

describe("fairSharePolicy", () => {
  it("is the default export, named fair-share, and needs late binding", () => {
    assert.equal(fairShare, fairSharePolicy);
    assert.equal(fairShare.name, "fair-share");
    assert.equal(create().lateBinding, true);
  });

  describe("parseOptions", () => {
    it("applies the defaults", () => {
      assert.deepEqual(fairShare.parseOptions(undefined), { weights: {}, defaultWeight: 1, within: "fifo" });
      assert.deepEqual(fairShare.parseOptions({ within: "priority" }), { ...FAIR_SHARE_DEFAULTS, within: "priority" });
    });

    it("rejects weights that are not an object of positive numbers, naming the tenant", () => {
      assert.throws(() => fairShare.parseOptions({ weights: [] }), isOptionsError(/option "weights" must be an object, got an array/));
      assert.throws(() => fairShare.parseOptions({ weights: null }), isOptionsError(/option "weights" must be an object, got null/));
      assert.throws(() => fairShare.parseOptions({ weights: { acme: 0 } }), isOptionsError(/the weight of tenant "acme" must be a number more than 0 and at most 1000, got 0/));
      assert.throws(() => fairShare.parseOptions({ weights: { acme: "2" } }), isOptionsError(/tenant "acme" .* got "2"/));
    });

    it("rejects a bad default weight, an unknown order and an unknown key", () => {
      assert.throws(() => fairShare.parseOptions({ defaultWeight: -1 }), isOptionsError(/"defaultWeight" must be more than 0/));
      assert.throws(() => fairShare.parseOptions({ within: "lifo" }), isOptionsError(/"within" must be "fifo" or "priority", got "lifo"/));
      assert.throws(() => fairShare.parseOptions({ weight: {} }), isOptionsError(/unknown option "weight" \(known options: weights, defaultWeight, within\)/));
    });
  });

  describe("taskKey", () => {
    it("interleaves two backlogged tenants of equal weight one task each", () => {
      const q = new Queue(create());
      q.submit("a", 6);
      q.submit("b", 3);
      assert.equal(q.start(9).map((t) => t.tenant).join(""), "abababaaa");
    });

    it("keeps submission order within a tenant in fifo mode, and lets priority move a task ahead of its tenant's in priority mode", () => {
      const fifo = new Queue(create());
      fifo.submit("a", 3);
      const [urgent] = fifo.submit("a", 1, 5);
      assert.equal(fifo.rank(urgent!), 3);
      const prio = new Queue(create({ within: "priority" }));
      prio.submit("a", 3);
      const [first] = prio.submit("a", 1, 5);
      assert.equal(prio.rank(first!), 0);
      const later = new Queue(create({ within: "priority" }));
      later.submit("a", 5);
      const [two] = later.submit("a", 1, 2);
      assert.equal(later.rank(two!), 3, "2 levels up passes exactly 2 of its tenant's tasks");
      const [low] = later.submit("a", 1, -1);
      assert.equal(later.rank(low!), 6, "a lower priority falls behind the last one");
    });

    it("gives the same key when asked again for the same enqueue, and a new one for a new enqueue", () => {
      const policy = create();
      const task = makePolicyTask({ id: "x", tenant: "a", enqueuedAt: T0 });
      const key = policy.taskKey(task);
      assert.equal(policy.taskKey(task), key);
      policy.onAssigned?.(task, makePolicyWorker());
      assert.equal(policy.taskKey(makePolicyTask({ id: "y", tenant: "a", seq: 2, enqueuedAt: T0 })), 0, "nothing queued: virtual time started over");
    });
  });

  describe("starvation bound", () => {
    for (const [started, weights] of [
      [0, {}],
      [3, {}],
      [32, {}],
      [150, {}],
      [7, { a: 5 }],
      [40, { a: 0.25, b: 4 }],
    ] as const) {
      it(`puts a newly active tenant's first task at most one place behind the next start (A: 200 queued, ${started} started, weights ${JSON.stringify(weights)})`, () => {
        const q = new Queue(create({ weights }));
        q.submit("a", 200);
        q.start(started);
        const [b1] = q.submit("b", 10);
        assert.ok(q.rank(b1!) <= 1, `B's first task is at place ${q.rank(b1!)}`);
      });
    }

    it("holds with three backlogged tenants: a fourth is behind at most one task of each", () => {
      const q = new Queue(create({ weights: { b: 2, c: 3 } }));
      q.submit("a", 100);
      q.submit("b", 100);
      q.submit("c", 100);
      q.start(37);
      const [d1] = q.submit("d", 5);
      assert.ok(q.rank(d1!) <= 2, `D's first task is at place ${q.rank(d1!)}`);
    });
  });

  describe("shares", () => {
    it("converge to the weights ±10% with three tenants under sustained load", () => {
      const q = new Queue(create({ weights: { a: 1, b: 2, c: 3 } }));
      // Each tenant keeps a backlog: it tops up whenever it has fewer than 20 queued.
      const pending: Record<string, number> = { a: 0, b: 0, c: 0 };
      for (let round = 0; round < 300; round++) {
        for (const tenant of ["a", "b", "c"]) {
          if (pending[tenant]! < 20) {
            q.submit(tenant, 10);
            pending[tenant]! += 10;
          }
        }
        for (const t of q.start(4)) pending[t.tenant]! -= 1;
      }
      const got = shares(q.started.slice(100));
      for (const [tenant, weight] of Object.entries({ a: 1, b: 2, c: 3 })) {
        const want = weight / 6;
        assert.ok(Math.abs(got[tenant]! - want) <= want * 0.1, `tenant ${tenant}: ${got[tenant]!.toFixed(3)} of starts, want ${want.toFixed(3)} ±10%`);
      }
    });

    it("gives an idle tenant no credit: after it returns, it gets its share, not a burst", () => {
      const q = new Queue(create());
      q.submit("a", 300);
      q.start(100);
      q.submit("b", 100);
      const next = q.start(20);
      const bs = next.filter((t) => t.tenant === "b").length;
      assert.ok(bs >= 9 && bs <= 11, `B got ${bs} of the next 20 starts`);
    });
  });

  describe("hooks", () => {
    it("forgets a task cancelled while queued, so its tenant's next task is not pushed back", () => {
      const policy = create();
      const q = new Queue(policy);
      const [a1, a2] = q.submit("a", 2);
      policy.onFinished?.(a1!, "cancelled");
      policy.onFinished?.(a2!, "cancelled");
      const [a3] = q.submit("a", 1);
      assert.equal(policy.taskKey(a3!), 0);
    });

    it("ignores onAssigned of a task it never keyed (the restart replay)", () => {
      const policy = create();
      policy.onAssigned?.(makePolicyTask({ id: "old", tenant: "a" }), makePolicyWorker({ id: "w-gone", slots: 0 }));
      assert.equal(policy.taskKey(makePolicyTask({ id: "new", tenant: "b", seq: 2 })), 0);
    });
  });
});
