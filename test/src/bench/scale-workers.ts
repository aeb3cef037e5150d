/**
 * Issue 13 item 5: many workers on one control node (ADR 0031). Starts a real control node, then
 * for each count connects SDK workers spread over a few child processes (worker-fleet.ts) and
 * reports, per count: connect time, the control node's CPU (ramp and steady heartbeats, from
 * /proc/<pid>/stat) and RSS, its event-loop lag p99 and max (prom-client's
 * `nodejs_eventloop_lag_*`, which resets at every scrape: each figure covers the phase since the
 * previous scrape), GetClusterState (a default page, summary only, and paging through all), the
 * `taskflow workers` CLI, a metrics scrape, and task latency p50/p99 at an open loop of 500 tasks/s.
 *
 * Run: `node test/dist/bench/scale-workers.js [count ...]` (default 1000 5000 10000; env
 * SCALE_PROCESSES, default 4; SCALE_FLEET_NICE, default 10, the fleets' nice value; SCALE_OWN_CONNECTIONS=1 gives each worker its own connection, the
 * SDK's behaviour before ADR 0031; SCALE_LATENCY_TASKS, default 2500; SCALE_CPU_PROF=<dir> writes
 * the control node's CPU profile there; SCALE_NODE_BIN=<checkout>/apps/node/dist/bin.js runs that
 * build's control node, as a baseline). Prints JSON.
 */
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import { TaskflowClient } from "@taskflow/client";
import { cli, installedBin, startNode, type StartedNode } from "../harness.js";
import { parsePrometheus, sum, value } from "../prometheus.js";

const RATE = 500;
const LATENCY_TASKS = Number(process.env["SCALE_LATENCY_TASKS"] ?? 2500);
const STEADY_MS = 5000;
/**
 * The worker fleets' nice value. They stand for workers on other hosts, yet share this machine's
 * cores with the control node: at nice 0, four busy fleets (a ramp) left the node waiting for a
 * core, which its loop-lag figures then counted (ramp p99 75–119 ms at nice 0, 26–40 ms at 10,
 * same machine, ADR 0031). SCALE_FLEET_NICE=0 measures them sharing the cores as equals.
 */
const FLEET_NICE = Number(process.env["SCALE_FLEET_NICE"] ?? 10);

interface Fleet {
  child: ChildProcess;
  request(msg: object): Promise<{ added: number; total: number; refused: number; lagMaxMs: number }>;
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function progress(message: string): void {
  process.stderr.write(`[scale-workers] ${message}\n`);
}

/** User + system CPU seconds a process has used (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Forks a worker-fleet process, ready for `{ add: n }`. */
export async function startFleet(address: string, prefix: string, sharedConnection = true, nice = 0): Promise<Fleet> {
  const args = [address, prefix, ...(sharedConnection ? [] : ["own"])];
  const child = fork(fileURLToPath(new URL("./worker-fleet.js", import.meta.url)), args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  if (nice) setPriority(child.pid!, nice);
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`worker fleet exited with ${code}`)));
  });
  return {
    child,
    request: (msg) =>
      new Promise((resolve) => {
        child.once("message", (m) => resolve(m as { added: number; total: number; refused: number; lagMaxMs: number }));
        child.send(msg);
      }),
  };
}

export async function stopFleets(fleets: Fleet[]): Promise<void> {
  await Promise.all(
    fleets.map(
      (f) =>
        new Promise<void>((resolve) => {
          if (f.child.exitCode !== null) return resolve();
          const killer = setTimeout(() => f.child.kill("SIGKILL"), 10_000);
          f.child.once("exit", () => {
            clearTimeout(killer);
            resolve();
          });
          f.child.send({ stop: true });
        }),
    ),
  );
}

/** Workers declared dead and sessions broken so far, from the node's JSON log, with their reasons (digits as #). */
function livenessLog(logs: string): { deaths: number; broken: number; why: Record<string, number> } {
  let deaths = 0;
  let broken = 0;
  const why: Record<string, number> = {};
  for (const line of logs.split("\n")) {
    if (!line.startsWith("{")) continue;
    const l = JSON.parse(line) as { msg?: string; reason?: string };
    if (l.msg === "worker is dead") deaths++;
    else if (l.msg === "worker session ended; waiting for it to reconnect") broken++;
    else continue;
    const key = `${l.msg}: ${String(l.reason).replace(/\d+/g, "#")}`;
    why[key] = (why[key] ?? 0) + 1;
  }
  return { deaths, broken, why };
}

/** Times `fn` `n` times; the median and the slowest, in ms. */
async function timed(n: number, fn: () => Promise<unknown>): Promise<{ medianMs: number; maxMs: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { medianMs: round(ms[Math.floor(ms.length / 2)]!, 1), maxMs: round(ms.at(-1)!, 1) };
}

/** Scrapes metrics: the samples, how long it took and how big it was. Resets the event-loop lag histogram. */
async function scrapeTimed(url: string): Promise<{ ms: number; bytes: number; lagP99Ms: number; lagMaxMs: number; series: number; gcSeconds: number }> {
  const t0 = performance.now();
  const text = await (await fetch(url)).text();
  const ms = performance.now() - t0;
  const samples = parsePrometheus(text);
  return {
    ms: round(ms, 1),
    bytes: text.length,
    series: samples.length,
    lagP99Ms: round(value(samples, "nodejs_eventloop_lag_p99_seconds") * 1000, 1),
    lagMaxMs: round(value(samples, "nodejs_eventloop_lag_max_seconds") * 1000, 1),
    gcSeconds: sum(samples, "nodejs_gc_duration_seconds_sum"),
  };
}

async function latency(client: TaskflowClient): Promise<{ tasks: number; p50Ms: number; p99Ms: number; maxMs: number }> {
  for (let i = 0; i < 200; i++) await client.run("noop");
  const samples: number[] = [];
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  while (sent < LATENCY_TASKS) {
    const due = Math.min(LATENCY_TASKS, Math.floor(((performance.now() - start) / 1000) * RATE) + 1);
    while (sent < due) {
      const t0 = performance.now();
      inflight.push(client.run("noop").then(() => void samples.push(performance.now() - t0)));
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inflight);
  samples.sort((a, b) => a - b);
  const at = (q: number) => round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!);
  return { tasks: samples.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: round(samples.at(-1)!) };
}

/** Every worker, following next_page_token at the largest page: pages, workers and time. */
async function pageAll(client: TaskflowClient): Promise<{ pages: number; workers: number; ms: number }> {
  const t0 = performance.now();
  let pages = 0;
  let workers = 0;
  let pageToken = "";
  do {
    const res = await client.clusterState({ pageSize: 5000, pageToken });
    pages++;
    workers += res.workers.length;
    pageToken = res.nextPageToken;
  } while (pageToken);
  return { pages, workers, ms: round(performance.now() - t0, 1) };
}

export async function workerScale(opts: { counts: number[]; processes?: number; sharedConnection?: boolean }): Promise<object> {
  const processes = opts.processes ?? 4;
  const shared = opts.sharedConnection ?? true;
  // SCALE_CPU_PROF=<dir>: the control node (only) writes a V8 CPU profile there when it stops.
  const profDir = process.env["SCALE_CPU_PROF"];
  // SCALE_NODE_ARGS="--max-semi-space-size=64 …": V8/Node options for the control node.
  const nodeArgs = (process.env["SCALE_NODE_ARGS"] ?? "").split(/\s+/).filter(Boolean);
  const execArgv = [...nodeArgs, ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [])];
  const node: StartedNode = await startNode(
    { roles: ["control"], control: { workerHeapCapacity: Math.max(131_072, ...opts.counts) } },
    // SCALE_NODE_BIN=<other checkout>/apps/node/dist/bin.js: that build's control node (a baseline).
    { timeoutMs: 60_000, execArgv, ...(process.env["SCALE_NODE_BIN"] && { bin: process.env["SCALE_NODE_BIN"] }) },
  );
  const pid = node.process.pid!;
  const fleets: Fleet[] = [];
  const client = new TaskflowClient({ address: node.address });
  const results: object[] = [];
  try {
    for (let i = 0; i < processes; i++) fleets.push(await startFleet(node.address, `p${i}`, shared, FLEET_NICE));
    const metricsUrl = node.metricsUrl!;
    let connected = 0;
    const cliBaseline = await timed(1, () => cli(["--version"], {}, installedBin));
    for (const count of opts.counts) {
      const add = count - connected;
      if (add <= 0) continue;
      progress(`${connected} → ${count} workers`);
      await scrapeTimed(metricsUrl); // resets the lag histogram: the next figure is the ramp's
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      const answers = await Promise.all(fleets.map((f, i) => f.request({ add: Math.floor(add / processes) + (i < add % processes ? 1 : 0) })));
      const connectMs = performance.now() - t0;
      const rampCpu = cpuSeconds(pid) - cpu0;
      const ramp = await scrapeTimed(metricsUrl);
      connected = count;
      const refused = answers.reduce((n, a) => n + a.refused, 0);
      const workerProcessLagMaxMs = Math.max(...answers.map((a) => a.lagMaxMs));

      // Steady state: heartbeats only.
      await new Promise((r) => setTimeout(r, 1000));
      const steadyFrom = await scrapeTimed(metricsUrl);
      const cpu1 = cpuSeconds(pid);
      const fleetCpu1 = fleets.reduce((n, f) => n + cpuSeconds(f.child.pid!), 0);
      await new Promise((r) => setTimeout(r, STEADY_MS));
      const steadyCores = (cpuSeconds(pid) - cpu1) / (STEADY_MS / 1000);
      const fleetCores = (fleets.reduce((n, f) => n + cpuSeconds(f.child.pid!), 0) - fleetCpu1) / (STEADY_MS / 1000);
      const steady = await scrapeTimed(metricsUrl);
      const rss = rssBytes(pid);

      progress(`${count} workers: admin calls`);
      const summary = (await client.clusterState({ summaryOnly: true })).workerSummary;
      const firstPage = await timed(5, () => client.clusterState());
      const summaryOnly = await timed(5, () => client.clusterState({ summaryOnly: true }));
      const all = await pageAll(client);
      // As users run it: the bundled entry `npm` links as `taskflow`.
      const cliWorkers = await timed(3, () => cli(["workers", "--address", node.address], {}, installedBin));
      const admin = await scrapeTimed(metricsUrl); // the lag over the admin calls above
      const scrapes = await timed(3, () => fetch(metricsUrl).then((r) => r.text()));
      const scrape = await scrapeTimed(metricsUrl);

      progress(`${count} workers: latency at ${RATE} tasks/s`);
      await Promise.all(fleets.map((f) => f.request({ add: 0 }))); // resets their lag histograms
      const latencyFrom = await scrapeTimed(metricsUrl);
      const latencyStarted = performance.now();
      const cpu2 = cpuSeconds(pid);
      const lat = await latency(client);
      const latencySec = (performance.now() - latencyStarted) / 1000;
      const fleetLagMs = Math.max(...(await Promise.all(fleets.map((f) => f.request({ add: 0 })))).map((a) => a.lagMaxMs));
      const latencyCpuUsPerTask = ((cpuSeconds(pid) - cpu2) * 1e6) / (LATENCY_TASKS + 200);
      const during = await scrapeTimed(metricsUrl);
      const { deaths, broken, why } = livenessLog(node.logs());
      results.push({
        workers: count,
        deathsSoFar: deaths,
        sessionsBrokenSoFar: broken,
        ...(deaths + broken > 0 && { whySoFar: why }),
        registered: summary?.total,
        refused,
        connectMs: round(connectMs, 0),
        connectsPerSec: round(add / (connectMs / 1000), 0),
        rampControlCpuSeconds: round(rampCpu, 2),
        rampLoopLag: { p99Ms: ramp.lagP99Ms, maxMs: ramp.lagMaxMs, workerProcessesMaxMs: workerProcessLagMaxMs },
        steady: {
          controlCores: round(steadyCores, 3),
          workerProcessesCores: round(fleetCores, 3),
          loopLag: { p99Ms: steady.lagP99Ms, maxMs: steady.lagMaxMs },
          gcMsPerSec: round(((steady.gcSeconds - steadyFrom.gcSeconds) * 1000) / (STEADY_MS / 1000), 2),
        },
        rssMB: round(rss / 2 ** 20, 1),
        rssPerWorkerKB: round(rss / 1024 / count, 1),
        getClusterState: { firstPage, summaryOnly, pageAll: all },
        cliWorkers: { ...cliWorkers, nodeStartupMs: cliBaseline.medianMs },
        scrape: { ms: scrape.ms, bytes: scrape.bytes, series: scrape.series, ...scrapes },
        adminLoopLag: { p99Ms: admin.lagP99Ms, maxMs: admin.lagMaxMs },
        latency: { ratePerSec: RATE, ...lat, controlCpuUsPerTask: round(latencyCpuUsPerTask, 0), loopLag: { p99Ms: during.lagP99Ms, maxMs: during.lagMaxMs },
          gcMsPerSec: round(((during.gcSeconds - latencyFrom.gcSeconds) * 1000) / latencySec, 2),
          workerProcessesLagMaxMs: fleetLagMs,
        },
      });
      progress(JSON.stringify(results.at(-1)));
    }
    return {
      processes,
      sharedConnection: shared,
      fleetNice: FLEET_NICE,
      loopLagNote: "prom-client samples the loop every 10 ms and records whole intervals: an idle loop reads ~10-11 ms",
      cpus: cpus().length,
      results,
    };
  } finally {
    client.close();
    await stopFleets(fleets);
    await node.stop(30_000);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const counts = process.argv.slice(2).map(Number);
  const out = await workerScale({ counts: counts.length ? counts : [1000, 5000, 10000], processes: Number(process.env["SCALE_PROCESSES"] ?? 4),
    sharedConnection: process.env["SCALE_OWN_CONNECTIONS"] !== "1",
  });
  console.log(JSON.stringify(out, null, 2));
}
