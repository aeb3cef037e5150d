/**
 * The benchmarks are how the issues' figures are measured, so they must keep running: each
 * runs here at a tiny size and its JSON is checked for the figures and the same-run baseline.
 * No figure is asserted against a target (speed is measured in benchmarks, not asserted).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./harness.js";

const run = promisify(execFile);

async function bench(script: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [path.join(repoRoot, "test/dist/bench", script)], {
    env: { ...process.env, ...env },
    timeout: 120_000,
    maxBuffer: 16 << 20,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const positive = (x: unknown, what: string) => assert.ok(typeof x === "number" && Number.isFinite(x) && x > 0, `${what}: ${String(x)}`);

describe("benchmarks run and print their figures", { timeout: 300_000 }, () => {
  it("npm run bench: Taskflow, monitoring on/off, SQLite, Postgres and the relay baseline", async () => {
    const out = (await bench("bench.js", {
      BENCH_TASKS: "2000",
      BENCH_WARMUP_TASKS: "200",
      BENCH_LATENCY_TASKS: "100",
      BENCH_MONITORING_ROUNDS: "1",
    })) as {
      taskflow: { throughput: { tasks: number; tasksPerSec: number; controlCpuUsPerTask: number }; latency: { tasks: number; p50Ms: number; p99Ms: number } };
      monitoring: { ratio: { throughput: number } };
      durable: { tasksPerSec: number; ratioToMemory: number };
      postgres: { tasksPerSec: number; ratioToSqlite: number };
      stores: { what: string; memory: number; sqlite: number; postgres: number; latency: Record<"memory" | "sqlite" | "postgres", { p50Ms: number; p99Ms: number; maxMs: number }> };
      baseline: { throughput: { tasksPerSec: number }; latency: { p50Ms: number } };
      ratio: { throughput: number; p50: number };
    };
    assert.equal(out.taskflow.throughput.tasks, 2000);
    assert.equal(out.taskflow.latency.tasks, 100);
    positive(out.taskflow.throughput.tasksPerSec, "taskflow tasks/s");
    positive(out.taskflow.throughput.controlCpuUsPerTask, "control CPU per task");
    positive(out.taskflow.latency.p50Ms, "p50");
    assert.ok(out.taskflow.latency.p99Ms >= out.taskflow.latency.p50Ms, "p99 >= p50");
    positive(out.monitoring.ratio.throughput, "monitoring ratio");
    positive(out.durable.tasksPerSec, "durable tasks/s");
    positive(out.postgres.tasksPerSec, "postgres tasks/s");
    assert.equal(out.postgres.ratioToSqlite, Math.round((out.postgres.tasksPerSec / out.durable.tasksPerSec) * 1000) / 1000);
    const { latency: storeLatency, ...storeRates } = out.stores;
    assert.deepEqual(storeRates, { what: "tasks/s and latency at 500 tasks/s by store in this run, monitoring on", memory: out.taskflow.throughput.tasksPerSec, sqlite: out.durable.tasksPerSec, postgres: out.postgres.tasksPerSec });
    for (const [store, l] of Object.entries(storeLatency)) {
      positive(l.p50Ms, `${store} p50`);
      assert.ok(l.p99Ms >= l.p50Ms && l.maxMs >= l.p99Ms, `${store}: p50 <= p99 <= max`);
    }
    positive(out.baseline.throughput.tasksPerSec, "relay tasks/s");
    positive(out.baseline.latency.p50Ms, "relay p50");
    assert.equal(out.ratio.throughput, Math.round((out.taskflow.throughput.tasksPerSec / out.baseline.throughput.tasksPerSec) * 1000) / 1000);
  });

  it("npm run bench:rtt: round trips after each idle gap, over TCP and a Unix socket", async () => {
    const out = (await bench("rtt.js", { BENCH_RTT_ROUND_TRIPS: "30" })) as {
      tcpLoopback: { gapMs: number; p50Ms: number }[];
      unixSocket: { gapMs: number; p50Ms: number }[];
      twoRoundTripsP50MsAt2msGap: { tcp: number; unix: number };
    };
    for (const rows of [out.tcpLoopback, out.unixSocket]) {
      assert.deepEqual(rows.map((r) => r.gapMs), [1, 2, 10]);
      for (const r of rows) positive(r.p50Ms, `p50 after ${r.gapMs} ms`);
    }
    positive(out.twoRoundTripsP50MsAt2msGap.tcp, "floor over TCP");
  });

  it("npm run bench:failover: a killed leader control node's successor runs a task; a dead worker host's task runs elsewhere", async () => {
    type Summary = { samplesMs: number[]; medianMs: number; maxMs: number };
    const out = (await bench("failover.js", { FAILOVER_ROUNDS: "1", FAILOVER_WORKER_ROUNDS: "1" })) as { controlLeader: Summary & { leaseTtlMs: number }; workerHost: Summary };
    assert.equal(out.controlLeader.samplesMs.length, 1);
    positive(out.controlLeader.medianMs, "leader failover ms");
    positive(out.controlLeader.maxMs, "leader failover max ms");
    assert.equal(out.controlLeader.leaseTtlMs, 2000);
    assert.equal(out.workerHost.samplesMs.length, 1);
    positive(out.workerHost.medianMs, "worker host failover ms");
  });

  it("npm run bench:late-binding: throughput with prefetch (fifo) and with late binding (fair-share)", async () => {
    const out = (await bench("late-binding.js", { LATE_BINDING_TASKS: "300", LATE_BINDING_WARMUP_TASKS: "20", LATE_BINDING_ROUNDS: "1" })) as Record<
      "noop" | "sleep",
      { prefetchTasksPerSec: number[]; lateBindingTasksPerSec: number[]; ratio: number }
    >;
    for (const type of ["noop", "sleep"] as const) {
      positive(out[type].prefetchTasksPerSec[0], `${type} with prefetch`);
      positive(out[type].lateBindingTasksPerSec[0], `${type} with late binding`);
      positive(out[type].ratio, `${type} ratio`);
    }
  });

  it("npm run bench:primitives: delayed tasks all due at once, a rate limit's enforced rate, the plain path beside the relay", async () => {
    const out = (await bench("primitives.js", {
      PRIMITIVES_DELAYED: "500",
      PRIMITIVES_RATE: "200",
      PRIMITIVES_RATE_SECONDS: "1",
      PRIMITIVES_TASKS: "300",
      PRIMITIVES_WARMUP_TASKS: "50",
      PRIMITIVES_ROUNDS: "1",
    })) as Record<string, Record<string, unknown>>;
    assert.equal(out["delayed"]!["tasks"], 500);
    assert.equal(out["delayed"]!["delayedBeforeDue"], 500, "every task waited in the due-time heap before its time");
    assert.ok(typeof out["delayed"]!["allQueuedAfterDueMs"] === "number", "time from the due time to all queued");
    assert.ok(out["rateLimit"], "a rate-limit section");
    assert.ok(out["plainPath"], "a plain-path section");
  });

  it("npm run bench:chaos: lost, finished twice, delivered twice, and kill → rerun", async () => {
    const out = (await bench("chaos.js", { CHAOS_TASKS: "200", CHAOS_KILLS: "1", CHAOS_SCENARIOS: "control-kills,kill-storm", CHAOS_STORM_ROUNDS: "2" })) as {
      results: { scenario: string; tasks: number; lost: number; finishedTwice: number; deliveredTwice: number }[];
      killToRerun: { samplesMs: number[]; medianMs: number; maxMs: number };
    };
    assert.deepEqual(out.results.map((r) => [r.scenario, r.tasks]), [["control-kills", 200]]);
    for (const key of ["lost", "finishedTwice", "deliveredTwice"] as const) assert.equal(typeof out.results[0]![key], "number");
    assert.equal(out.killToRerun.samplesMs.length, 2);
    positive(out.killToRerun.medianMs, "kill → rerun median");
  });
});
