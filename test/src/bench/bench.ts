/**
 * `npm run bench`: Taskflow end to end on one host, beside a bare grpc-js relay with the same
 * message pattern, in the same run, so the ratio holds on a noisy machine. Prints JSON.
 *
 * - throughput: 100,000 no-op tasks from one client (SDK auto-batching), 2 worker processes,
 *   after 20,000 unmeasured warm-up tasks;
 * - latency: submit → result at an open-loop 500 tasks/s, p50/p95/p99;
 * - monitoring: the same with metrics and the dashboard on (scraped, watched) beside both off;
 * - security: TLS on the port and bearer tokens for clients and workers beside plaintext;
 * - stores: the throughput and latency runs again on the SQLite store and on the Postgres store
 *   (a throwaway local server started for it), beside the memory store.
 * The client side is the same SDK for both; only what sits behind the address differs.
 * `BENCH_PARTS` picks parts (comma-separated: monitoring, security, stores, baseline; default
 * all), e.g. `BENCH_PARTS=stores` for the three stores' throughput and latency alone (~2 min).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TaskflowClient, type ClientOptions } from "@taskflow/client";
import type { TaskflowConfigInput } from "@taskflow/core";
import { startTestPostgres } from "@taskflow/store-postgres/testing";
import { makePki } from "../certs.js";
import { startNode, tempDir } from "../harness.js";

const N = Number(process.env["BENCH_TASKS"] ?? 100_000);
const RATE = Number(process.env["BENCH_RATE"] ?? 500);
const LATENCY_TASKS = Number(process.env["BENCH_LATENCY_TASKS"] ?? 2500);
/**
 * Tasks run, unmeasured, before the throughput run, on Taskflow and the relay alike: a fresh
 * process runs its first tens of thousands of tasks in unoptimised code, which measures V8's
 * JIT rather than the steady state a long-lived node runs in.
 */
const WARMUP = Number(process.env["BENCH_WARMUP_TASKS"] ?? 20_000);
const PARTS = new Set((process.env["BENCH_PARTS"] ?? "monitoring,security,stores,baseline").split(",").map((p) => p.trim()));
for (const part of PARTS) {
  if (!["monitoring", "security", "stores", "baseline"].includes(part)) throw new Error(`BENCH_PARTS: unknown part "${part}"; fix: use monitoring, security, stores, baseline`);
}

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Throughput of N no-op tasks after a warm-up; with `pid`, also that process's CPU µs per task. */
async function throughput(address: string, pid?: number, connect: Partial<ClientOptions> = {}): Promise<{ tasks: number; seconds: number; tasksPerSec: number; cpuUsPerTask?: number }> {
  const client = new TaskflowClient({ address, ...connect });
  try {
    await client.run("noop"); // open the channel and the results stream
    await Promise.all(Array.from({ length: WARMUP }, () => client.run("noop")));
    const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: N }, () => client.submit("noop")));
    let done = 0;
    await Promise.all(
      ids.map((id) =>
        client.result(id).then(() => {
          if (++done % 25_000 === 0) progress(`${done}/${N} done`);
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const out = { tasks: N, seconds: round(seconds), tasksPerSec: Math.round(N / seconds) };
    // CPU per task of one process: steadier than wall time on a shared machine.
    return pid === undefined ? out : { ...out, cpuUsPerTask: round(((cpuSeconds(pid) - cpuBefore) / N) * 1e6) };
  } finally {
    client.close();
  }
}

async function latency(address: string, connect: Partial<ClientOptions> = {}): Promise<{ ratePerSec: number; tasks: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number }> {
  const client = new TaskflowClient({ address, ...connect });
  try {
    for (let i = 0; i < 200; i++) await client.run("noop"); // warm up
    const samples: number[] = [];
    const inflight: Promise<void>[] = [];
    const start = performance.now();
    let sent = 0;
    // Open loop: send on schedule whatever the completions do.
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
    return { ratePerSec: RATE, tasks: samples.length, p50Ms: at(0.5), p95Ms: at(0.95), p99Ms: at(0.99), maxMs: round(samples.at(-1)!) };
  } finally {
    client.close();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

async function startRelay(): Promise<{ address: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL("./relay.js", import.meta.url))], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /relay ready on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`relay exited with ${code}`)));
  });
  return { address: `127.0.0.1:${port}`, child };
}

/**
 * CPU seconds a Postgres server has used so far: the postmaster, its live backends and helpers,
 * and the ones that exited (counted into the postmaster's children's time once reaped).
 */
function serverCpuSeconds(dataDir: string): number {
  const postmaster = Number(readFileSync(`${dataDir}/postmaster.pid`, "utf8").split("\n")[0]);
  const fields = readFileSync(`/proc/${postmaster}/stat`, "utf8").split(") ")[1]!.split(" ");
  let ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]); // utime, stime, cutime, cstime
  for (const child of readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, "utf8").trim().split(" ").filter(Boolean)) {
    try {
      ticks += cpuSeconds(Number(child)) * 100;
    } catch {
      // Exited meanwhile: its time is in the postmaster's children's time now, or soon.
    }
  }
  return ticks / 100;
}

/** User + system CPU seconds a process has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * What an operator adds while the benchmark runs with monitoring on: a Prometheus scrape every
 * second (15 s is usual) and an open dashboard, i.e. one event-stream client.
 */
function watch(node: { metricsUrl: string | undefined; dashboardUrl: string | undefined }): { scrapes: () => number; stop: () => void } {
  const abort = new AbortController();
  let scrapes = 0;
  const timer = node.metricsUrl
    ? setInterval(() => {
        void fetch(node.metricsUrl!, { signal: abort.signal })
          .then((r) => r.text())
          .then(() => scrapes++, () => {});
      }, 1000)
    : undefined;
  if (node.dashboardUrl) {
    void fetch(new URL("api/events", node.dashboardUrl), { signal: abort.signal })
      .then(async (r) => {
        for await (const _chunk of r.body!) {
          // Read and drop, as a browser tab would render it.
        }
      })
      .catch(() => {});
  }
  return { scrapes: () => scrapes, stop: () => (clearInterval(timer), abort.abort()) };
}

async function runTaskflow(config: TaskflowConfigInput, label: string, what: { latency: boolean; connect?: Partial<ClientOptions>; serverCpu?: () => number }) {
  const node = await startNode(config);
  const watcher = watch(node);
  try {
    progress(`taskflow ${label} (${config.store?.kind ?? "memory"} store): throughput of ${N} no-op tasks`);
    const serverCpuBefore = what.serverCpu?.() ?? 0;
    const { cpuUsPerTask, ...tp } = await throughput(node.address, node.process.pid!, what.connect);
    const controlCpuUsPerTask = cpuUsPerTask!;
    // Over the warm-up and the measured tasks: the server cannot tell them apart.
    const serverCpuUsPerTask = what.serverCpu ? round(((what.serverCpu() - serverCpuBefore) / (WARMUP + N)) * 1e6) : undefined;
    let lat;
    if (what.latency) {
      progress(`taskflow ${label}: latency at ${RATE} tasks/s`);
      lat = await latency(node.address, what.connect);
    }
    return { throughput: { ...tp, controlCpuUsPerTask, serverCpuUsPerTask }, latency: lat, metricsScrapes: watcher.scrapes() };
  } finally {
    watcher.stop();
    await node.stop();
  }
}

const base: TaskflowConfigInput = { roles: ["control", "worker"], worker: { processes: 2 }, log: { level: "warn" } };
// Monitoring on (the default: metrics and dashboard), scraped and watched, beside both off, in
// alternating rounds so drift on a shared machine hits both alike; the best round of each counts.
const monitoringOn: TaskflowConfigInput = { ...base, metrics: { enabled: true, port: 0 }, dashboard: { enabled: true, port: 0 } };
const monitoringOff: TaskflowConfigInput = { ...base, metrics: { enabled: false }, dashboard: { enabled: false } };
type Run = Awaited<ReturnType<typeof runTaskflow>>;
const best = (runs: Run[]) => runs.reduce((a, b) => (b.throughput.tasksPerSec > a.throughput.tasksPerSec ? b : a));

async function monitoringPart() {
  const rounds = Number(process.env["BENCH_MONITORING_ROUNDS"] ?? 2);
  const onRuns: Run[] = [];
  const offRuns: Run[] = [];
  for (let round = 0; round < rounds; round++) {
    offRuns.push(await runTaskflow(monitoringOff, "monitoring off", { latency: round === 0 }));
    onRuns.push(await runTaskflow(monitoringOn, "monitoring on", { latency: round === 0 }));
  }
  const taskflow = { ...best(onRuns), latency: onRuns[0]!.latency! };
  const taskflowOff = { ...best(offRuns), latency: offRuns[0]!.latency! };
  const monitoring = {
    what: "metrics + dashboard on (scraped every second, one event-stream client) vs both off; best of the rounds",
    rounds,
    onTasksPerSec: onRuns.map((r) => r.throughput.tasksPerSec),
    offTasksPerSec: offRuns.map((r) => r.throughput.tasksPerSec),
    onControlCpuUsPerTask: onRuns.map((r) => r.throughput.controlCpuUsPerTask),
    offControlCpuUsPerTask: offRuns.map((r) => r.throughput.controlCpuUsPerTask),
    off: taskflowOff,
    ratio: {
      throughput: round(taskflow.throughput.tasksPerSec / taskflowOff.throughput.tasksPerSec),
      controlCpuPerTask: round(Math.min(...onRuns.map((r) => r.throughput.controlCpuUsPerTask)) / Math.min(...offRuns.map((r) => r.throughput.controlCpuUsPerTask))),
      p50: round(taskflow.latency.p50Ms / taskflowOff.latency.p50Ms),
      p99: round(taskflow.latency.p99Ms / taskflowOff.latency.p99Ms),
    },
    target: { throughputRatio: 0.9 },
  };
  return { taskflow, monitoring };
}

// Security on (TLS on the gRPC port, a client token and a worker token, checked on every call and
// stream) beside plaintext without tokens, alternating rounds as above; monitoring off in both.
async function securityPart() {
  const pki = makePki(tempDir("taskflow-bench-pki-"));
  const secret = (role: string) => `tfk_bench_${role}_${randomBytes(16).toString("hex")}`;
  const clientToken = secret("client");
  const workerToken = secret("worker");
  const hash = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
  const secured: TaskflowConfigInput = {
    ...monitoringOff,
    worker: { processes: 2, token: workerToken },
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
    auth: {
      tokens: [
        { hash: hash(clientToken), role: "client", tenant: "bench", name: "bench-client" },
        { hash: hash(workerToken), role: "worker", tenant: "bench", name: "bench-workers" },
      ],
    },
  };
  const securedConnect: Partial<ClientOptions> = { tls: { ca: pki.read(pki.ca) }, token: clientToken };
  const rounds = Number(process.env["BENCH_SECURITY_ROUNDS"] ?? 2);
  const plainRuns: Run[] = [];
  const securedRuns: Run[] = [];
  for (let round = 0; round < rounds; round++) {
    plainRuns.push(await runTaskflow(monitoringOff, "plaintext", { latency: true }));
    securedRuns.push(await runTaskflow(secured, "TLS + tokens", { latency: true, connect: securedConnect }));
  }
  /** The median of the rounds' p99s: one noisy round should not decide a 1 ms budget. */
  const medianP99 = (runs: Run[]) => {
    const p99s = runs.map((r) => r.latency!.p99Ms).sort((a, b) => a - b);
    return p99s[Math.floor((p99s.length - 1) / 2)]!;
  };
  const bestPlain = best(plainRuns);
  const bestSecured = best(securedRuns);
  return {
    what: "TLS (ECDSA P-256 server certificate) + bearer tokens for client and workers vs plaintext without tokens; monitoring off; best throughput of the rounds, median p99",
    rounds,
    plaintextTasksPerSec: plainRuns.map((r) => r.throughput.tasksPerSec),
    securedTasksPerSec: securedRuns.map((r) => r.throughput.tasksPerSec),
    plaintextP99Ms: plainRuns.map((r) => r.latency!.p99Ms),
    securedP99Ms: securedRuns.map((r) => r.latency!.p99Ms),
    plaintextControlCpuUsPerTask: plainRuns.map((r) => r.throughput.controlCpuUsPerTask),
    securedControlCpuUsPerTask: securedRuns.map((r) => r.throughput.controlCpuUsPerTask),
    ratio: { throughput: round(bestSecured.throughput.tasksPerSec / bestPlain.throughput.tasksPerSec) },
    p99DeltaMs: round(medianP99(securedRuns) - medianP99(plainRuns)),
    target: { throughputRatio: 0.85, p99DeltaMs: 1 },
  };
}

/**
 * The durable stores beside the in-memory one, same settings, each a throughput run and then the
 * latency run (on a database that already holds the throughput run's tasks): SQLite in the
 * node's temp folder, Postgres on a throwaway local server (fsync on, default settings) that
 * shares the machine's cores with the node.
 */
async function storesPart(memory: Run | undefined) {
  memory ??= await runTaskflow(monitoringOn, "memory store", { latency: true });
  const sqliteRun = await runTaskflow({ ...monitoringOn, store: { kind: "sqlite", path: "bench-tasks.db" } }, "durable store", { latency: true });
  progress("starting a throwaway PostgreSQL server");
  const pgServer = await startTestPostgres();
  let postgresRun: Run;
  try {
    postgresRun = await runTaskflow({ ...monitoringOn, store: { kind: "postgres", url: pgServer.url } }, "postgres store", {
      latency: true,
      serverCpu: () => serverCpuSeconds(`${pgServer.dir}/data`),
    });
  } finally {
    await pgServer.stop();
  }
  const durable = {
    what: "store.kind sqlite (WAL, group commit) vs memory, monitoring on; target ratio >= 0.5, p99 at the latency rate <= 3 ms",
    tasksPerSec: sqliteRun.throughput.tasksPerSec,
    controlCpuUsPerTask: sqliteRun.throughput.controlCpuUsPerTask,
    ratioToMemory: round(sqliteRun.throughput.tasksPerSec / memory.throughput.tasksPerSec),
    latency: sqliteRun.latency!,
  };
  const postgres = {
    what: "store.kind postgres (local server, group commit over UNNEST) vs SQLite and memory, monitoring on; target ratio to SQLite >= 0.5",
    tasksPerSec: postgresRun.throughput.tasksPerSec,
    controlCpuUsPerTask: postgresRun.throughput.controlCpuUsPerTask,
    /** The Postgres server's own CPU per task (its processes share the machine's cores with the node). */
    serverCpuUsPerTask: postgresRun.throughput.serverCpuUsPerTask,
    ratioToMemory: round(postgresRun.throughput.tasksPerSec / memory.throughput.tasksPerSec),
    ratioToSqlite: round(postgresRun.throughput.tasksPerSec / sqliteRun.throughput.tasksPerSec),
    latency: postgresRun.latency!,
  };
  const latencyOf = (run: Run) => ({ p50Ms: run.latency!.p50Ms, p99Ms: run.latency!.p99Ms, maxMs: run.latency!.maxMs });
  const stores = {
    what: `tasks/s and latency at ${RATE} tasks/s by store in this run, monitoring on`,
    memory: memory.throughput.tasksPerSec,
    sqlite: durable.tasksPerSec,
    postgres: postgres.tasksPerSec,
    latency: { memory: latencyOf(memory), sqlite: latencyOf(sqliteRun), postgres: latencyOf(postgresRun) },
  };
  return { durable, postgres, stores };
}

async function baselinePart() {
  progress("baseline: raw grpc-js relay");
  const relay = await startRelay();
  try {
    return { throughput: await throughput(relay.address), latency: await latency(relay.address) };
  } finally {
    relay.child.kill("SIGTERM");
  }
}

const { taskflow, monitoring } = PARTS.has("monitoring") ? await monitoringPart() : { taskflow: undefined, monitoring: undefined };
const security = PARTS.has("security") ? await securityPart() : undefined;
const storeParts = PARTS.has("stores") ? await storesPart(taskflow) : undefined;
const baseline = PARTS.has("baseline") ? await baselinePart() : undefined;
const result = {
  machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
  taskflow,
  monitoring,
  security,
  ...storeParts,
  baseline: baseline && { what: "bare grpc-js relay, same message pattern and batching, no scheduler/store/heaps", ...baseline },
  ratio: taskflow &&
    baseline && {
      throughput: round(taskflow.throughput.tasksPerSec / baseline.throughput.tasksPerSec),
      p50: round(taskflow.latency.p50Ms / baseline.latency.p50Ms),
      p99: round(taskflow.latency.p99Ms / baseline.latency.p99Ms),
    },
  targets: { tasksPerSec: 20_000, p50Ms: 1, p99Ms: 10, sqliteP99Ms: 3 },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
