/**
 * Many workers on one control node, across real processes (ADR 0031): 300 SDK workers in 2
 * processes are all welcomed; GetClusterState pages through them each exactly once and counts
 * them all in its summary; `taskflow workers` shows a page and the summary, `--all` every one;
 * WatchEvents opens with every worker; a scrape carries per-worker series for `metrics.maxWorkerSeries` workers only, and aggregates
 * over all; the dashboard lists `dashboard.maxWorkersListed` and counts the rest.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient } from "@taskflow/client";
import { ClusterService, type WatchEventsResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, startNode, type StartedNode } from "./harness.js";
import { scrape, value } from "./prometheus.js";
import { startFleet, stopFleets } from "./bench/scale-workers.js";

const WORKERS = 300;
const PROCESSES = 2;

describe(`${WORKERS} workers in ${PROCESSES} processes`, () => {
  let node: StartedNode;
  let client: TaskflowClient;
  const fleets: Awaited<ReturnType<typeof startFleet>>[] = [];

  before(async () => {
    node = await startNode({ roles: ["control"], metrics: { maxWorkerSeries: 10 }, dashboard: { maxWorkersListed: 20 } });
    client = new TaskflowClient({ address: node.address });
    for (let i = 0; i < PROCESSES; i++) fleets.push(await startFleet(node.address, `scale-p${i}`));
    const answers = await Promise.all(fleets.map((f) => f.request({ add: WORKERS / PROCESSES })));
    assert.deepEqual(
      answers.map((a) => [a.total, a.refused]),
      fleets.map(() => [WORKERS / PROCESSES, 0]),
      "every worker welcomed",
    );
  });
  after(async () => {
    client?.close();
    await stopFleets(fleets);
    assert.equal(await node?.stop(), 0);
  });

  it("pages GetClusterState: each worker exactly once, with the summary of all on every page", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await client.clusterState({ pageSize: 64, pageToken });
      assert.ok(res.workers.length <= 64);
      assert.equal(res.workerSummary?.total, WORKERS, "the summary counts every worker, whatever the page");
      seen.push(...res.workers.map((w) => w.workerId));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken);
    assert.equal(pages, Math.ceil(WORKERS / 64));
    assert.equal(seen.length, WORKERS);
    assert.equal(new Set(seen).size, WORKERS, "none twice");
    const expected = fleets.flatMap((_, p) => Array.from({ length: WORKERS / PROCESSES }, (__, i) => `scale-p${p}-${i}`));
    assert.deepEqual([...seen].sort(), expected.sort());

    const summary = (await client.clusterState({ summaryOnly: true })).workerSummary!;
    assert.deepEqual(
      { total: summary.total, alive: summary.alive, suspect: summary.suspect, draining: summary.draining, slots: summary.slots, running: summary.running, free: summary.free },
      { total: WORKERS, alive: WORKERS, suspect: 0, draining: 0, slots: BigInt(WORKERS), running: 0n, free: WORKERS },
    );
    assert.equal((await client.clusterState()).workers.length, WORKERS, "the default page (500) holds them all");
  });

  it("refuses a page past 5000 and a token it did not give out, with INVALID_ARGUMENT", async () => {
    const cluster = createClient(ClusterService, node.address);
    try {
      await assert.rejects(cluster.getClusterState({ pageSize: 5001 }), code(status.INVALID_ARGUMENT, /page_size is 5001; at most 5000/));
      await assert.rejects(cluster.getClusterState({ pageToken: "not-a-token" }), code(status.INVALID_ARGUMENT, /page_token "not-a-token" is not one this node gave out/));
    } finally {
      cluster.raw.close();
    }
  });

  it("opens a WatchEvents stream with every worker, sent a page a turn", async () => {
    const cluster = createClient(ClusterService, node.address);
    const call = cluster.watchEvents({ includeTasks: false });
    try {
      const seen = new Map<string, number>();
      await new Promise<void>((resolve, reject) => {
        call.on("data", (msg: WatchEventsResponse) => {
          if (msg.event.case !== "worker") return;
          seen.set(msg.event.value.workerId, (seen.get(msg.event.value.workerId) ?? 0) + 1);
          if (seen.size === WORKERS) resolve();
        });
        call.on("error", reject);
      });
      // A worker whose state changes meanwhile may come twice (live, then as it is now): never older.
      assert.equal(seen.size, WORKERS);
    } finally {
      call.cancel();
      cluster.raw.close();
    }
  });

  it("taskflow workers lists a page with the summary, --all every worker", async () => {
    const env = { TASKFLOW_ADDRESS: node.address };
    const some = await cli(["workers", "--limit", "5"], env);
    assert.equal(some.code, 0, some.stderr);
    assert.match(some.stdout, /5 of 300 worker\(s\) listed; more: --limit <n> or --all/);
    assert.match(some.stdout, /workers 300: 300 alive, 0 suspect, 0 draining, 0 reconnecting; load 0\/300 slots, 300 with a free slot/);
    const all = await cli(["workers", "--all", "--json"], env);
    assert.equal(all.code, 0, all.stderr);
    const parsed = JSON.parse(all.stdout) as { workers: { workerId: string }[]; workerSummary: { total: number }; more: boolean };
    assert.equal(new Set(parsed.workers.map((w) => w.workerId)).size, WORKERS);
    assert.deepEqual([parsed.workerSummary.total, parsed.more], [WORKERS, false]);
  });

  it("keeps per-worker series to metrics.maxWorkerSeries and counts every worker in the aggregates", async () => {
    const samples = await scrape(node.metricsUrl!);
    for (const name of ["taskflow_worker_running_tasks", "taskflow_worker_slots", "taskflow_worker_heartbeat_age_seconds"]) {
      assert.equal(samples.filter((s) => s.name === name).length, 10, name);
    }
    assert.equal(value(samples, "taskflow_workers", { state: "alive" }), WORKERS);
    assert.equal(value(samples, "taskflow_workers_slots"), WORKERS);
    assert.equal(value(samples, "taskflow_workers_running_tasks"), 0);
    assert.ok(value(samples, "taskflow_workers_heartbeat_age_max_seconds") < 5, "every worker beats");
  });

  it("lists dashboard.maxWorkersListed workers on the dashboard and counts the rest", async () => {
    const state = (await (await fetch(`${node.dashboardUrl}api/state`)).json()) as { workers: unknown[]; workerCounts: { total: number; alive: number; listed: number } };
    assert.equal(state.workers.length, 20);
    assert.deepEqual([state.workerCounts.total, state.workerCounts.alive, state.workerCounts.listed], [WORKERS, WORKERS, 20]);
  });
});
