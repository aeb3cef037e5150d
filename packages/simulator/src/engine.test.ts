import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FITS, definePolicy, doesNotFit } from "@taskflow/core";
import fifo from "@taskflow/policy-fifo";
import priority from "@taskflow/policy-priority";
import { simulate } from "./engine.js";
import { summarize } from "./report.js";
import type { SimTask } from "./trace.js";

const T0 = 1_700_000_000_000;

function task(id: string, at: number, durationMs: number, tenant: string, prio = 0): SimTask {
  return { id, at: T0 + at, type: "work", tenant, priority: prio, expectedDurationMs: 0, durationMs };
}

/**
 * Two workers of one slot each. By hand:
 *   fifo:     A 0–10 and B 0–4 at once; C (waiting since 1) 4–7; D (since 2) 7–8; E 14–16.
 *   priority: D (priority 5) overtakes C when B's slot frees at 4: D 4–5, then C 5–8.
 * Makespan 16 either way; busy 10+4+3+1+2 = 20 of 2 × 16 slot-ms: utilisation 0.625.
 */
const trace = [task("A", 0, 10, "a"), task("B", 0, 4, "b"), task("C", 1, 3, "a"), task("D", 2, 1, "b", 5), task("E", 14, 2, "a")];
const cluster = { workers: 2, slots: 1, prefetch: 0 };

function waits(run: Awaited<ReturnType<typeof simulate>>): number[] {
  return Array.from(run.started, (s, i) => s - run.arrived[i]!);
}

describe("simulate", () => {
  it("replays a hand-computed trace under fifo: exact starts, waits, makespan and utilisation", async () => {
    const run = await simulate(trace, { policy: fifo, cluster });
    assert.equal(run.policy, "fifo");
    assert.deepEqual(Array.from(run.started, (s) => s - T0), [0, 0, 4, 7, 14]);
    assert.deepEqual(Array.from(run.finished, (f) => f - T0), [10, 4, 7, 8, 16]);
    assert.deepEqual(waits(run), [0, 0, 3, 5, 0]);
    assert.equal(run.virtualMs, 16);
    assert.equal(run.unfinished, 0);
    const s = summarize(run);
    assert.equal(s.makespanMs, 16);
    assert.equal(s.utilisation, 20 / 32);
    assert.equal(s.waitP50Ms, 0);
    assert.equal(s.waitP99Ms, 5);
    assert.equal(s.waitMeanMs, 8 / 5);
    assert.deepEqual(Object.keys(s.tenants), ["a", "b"]);
    assert.deepEqual({ ...s.tenants["a"], waitMeanMs: undefined }, { tasks: 3, waitP50Ms: 0, waitP99Ms: 3, waitMaxMs: 3, waitMeanMs: undefined, makespanMs: 16, utilisation: 15 / 32 });
    assert.deepEqual(s.tenants["b"], { tasks: 2, waitP50Ms: 0, waitP99Ms: 5, waitMaxMs: 5, waitMeanMs: 2.5, makespanMs: 8, utilisation: 5 / 32 });
  });

  it("under priority, the priority-5 task overtakes the older one", async () => {
    const run = await simulate(trace, { policy: priority, cluster });
    assert.equal(run.policy, "priority");
    assert.deepEqual(Array.from(run.started, (s) => s - T0), [0, 0, 5, 4, 14]);
    assert.deepEqual(waits(run), [0, 0, 4, 2, 0]);
    const s = summarize(run);
    assert.equal(s.makespanMs, 16);
    assert.equal(s.utilisation, 20 / 32);
    assert.equal(s.waitP99Ms, 4);
    assert.equal(s.tenants["b"]!.waitMaxMs, 2);
  });

  it("with prefetch, a worker takes tasks ahead and runs them in the order it got them, out of the policy's hands", async () => {
    // One worker, one slot, prefetch 2: A runs; C and D were handed over at 1 and 2, before D's
    // priority could count, so priority runs them in arrival order, like fifo.
    const run = await simulate(trace, { policy: priority, cluster: { workers: 1, slots: 1, prefetch: 2 } });
    assert.deepEqual(Array.from(run.started, (s) => s - T0), [0, 10, 14, 17, 18]);
  });

  it("counts tasks a policy's filter keeps off every worker as unfinished, and still ends", async () => {
    const blocking = definePolicy({
      name: "blocks-b",
      coreVersions: ">=0.1.0",
      defaults: {},
      create: () => ({
        name: "blocks-b",
        taskKey: (t) => t.seq,
        workerKey: (w) => w.joinSeq,
        filter: (t) => (t.priority === 5 ? doesNotFit("priority 5 is never served") : FITS),
      }),
    });
    const run = await simulate(trace, { policy: blocking, cluster });
    assert.equal(run.unfinished, 1);
    assert.ok(Number.isNaN(run.started[3]!), "D never started");
    assert.deepEqual(Array.from(run.started, (s) => s - T0).filter((s) => !Number.isNaN(s)), [0, 0, 4, 14]);
    assert.equal(summarize(run).tasks, 4);
  });

  it("finishes when the trace is empty", async () => {
    const run = await simulate([], { policy: fifo });
    assert.equal(run.virtualMs, 0);
    assert.equal(summarize(run).tasks, 0);
  });
});
