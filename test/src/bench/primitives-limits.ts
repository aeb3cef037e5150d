/**
 * The limits' part of `npm run bench:primitives` (issue 16 items 3 and 4):
 *
 * - rateLimit: a type limited to PRIMITIVES_RATE tasks/s (default 1000, burst
 *   PRIMITIVES_RATE_BURST, default a tenth of a second's worth), PRIMITIVES_RATE_SECONDS (10) of
 *   it submitted at once; the rate of starts past the burst, by the control node's assignedAt,
 *   as a ratio to the configured rate. Target: within 2%.
 * - plainPath: no-op tasks with none of the new features used, on a node without limits config
 *   and on one with limits configured for another type (every task then passes the rule match
 *   and binds nothing), in alternating rounds, beside a baseline in the same run: the bare
 *   grpc-js relay, and, when PRIMITIVES_BASELINE_BIN names another build's apps/node/dist/bin.js
 *   (the main branch before these features), that build on the same plain path. Target: within
 *   5% of before. Control-node CPU µs per task is the steadier figure on a shared machine.
 *
 * Knobs: PRIMITIVES_TASKS (30,000 plain-path tasks per round), PRIMITIVES_WARMUP_TASKS (10,000),
 * PRIMITIVES_ROUNDS (2).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TaskflowClient } from "@taskflow/client";
import type { TaskflowConfigInput } from "@taskflow/core";
import { startNode } from "../harness.js";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RATE = env("PRIMITIVES_RATE", 1000);
const RATE_SECONDS = env("PRIMITIVES_RATE_SECONDS", 10);
const RATE_BURST = env("PRIMITIVES_RATE_BURST", Math.max(1, Math.round(RATE / 10)));
const TASKS = env("PRIMITIVES_TASKS", 30_000);
const WARMUP = env("PRIMITIVES_WARMUP_TASKS", 10_000);
const ROUNDS = env("PRIMITIVES_ROUNDS", 2);
const BASELINE_BIN = process.env["PRIMITIVES_BASELINE_BIN"];

export function progress(message: string): void {
  process.stderr.write(`[bench:primitives] ${message}\n`);
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** User + system CPU seconds a process has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : 0;
}

const base: TaskflowConfigInput = { roles: ["control", "worker"], worker: { processes: 2 }, log: { level: "warn" }, metrics: { enabled: false }, dashboard: { enabled: false } };

/** Rate-limited throughput against the configured rate. */
export async function rateLimit(): Promise<Record<string, unknown>> {
  const total = Math.round(RATE * RATE_SECONDS) + RATE_BURST;
  const node = await startNode({ ...base, limits: [{ match: { type: "noop" }, rate: `${RATE}/s`, burst: RATE_BURST }] });
  const client = new TaskflowClient({ address: node.address });
  try {
    progress(`rate limit: ${total} tasks of a type limited to ${RATE}/s, burst ${RATE_BURST}`);
    const ids = await Promise.all(Array.from({ length: total }, () => client.submit("noop")));
    await Promise.all(ids.map((id) => client.result(id)));
    // One bucket releases its tasks in FIFO order, so ids[k] is the k-th start. The control node
    // stamps assignedAt with the clock its bucket reads: past the burst, (to - from) starts over
    // their span is the enforced rate, whatever the results' trip back costs.
    const from = Math.max(RATE_BURST, Math.floor(total * 0.1));
    const to = total - 1;
    const [first, last] = await Promise.all([client.get(ids[from]!), client.get(ids[to]!)]);
    const measured = (to - from) / ((ms(last.assignedAt) - ms(first.assignedAt)) / 1000);
    const ratio = measured / RATE;
    return {
      what: `starts/s of a type with limits [{match: {type}, rate: "${RATE}/s", burst: ${RATE_BURST}}]: starts ${from}..${to} of ${total} (past the burst), by the control node's assignedAt`,
      configuredPerSec: RATE,
      measuredPerSec: Math.round(measured * 10) / 10,
      ratio: round3(ratio),
      withinTarget: Math.abs(ratio - 1) <= 0.02,
      target: { ratio: "1 ± 0.02" },
    };
  } finally {
    client.close();
    await node.stop();
  }
}

/** Throughput of TASKS no-op tasks after a warm-up, and the control node's CPU µs per task. */
async function throughput(address: string, pid: number | undefined): Promise<{ tasksPerSec: number; controlCpuUsPerTask?: number }> {
  const client = new TaskflowClient({ address });
  try {
    await client.run("noop");
    await Promise.all(Array.from({ length: WARMUP }, () => client.run("noop")));
    const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: TASKS }, () => client.submit("noop")));
    await Promise.all(ids.map((id) => client.result(id)));
    const tasksPerSec = Math.round(TASKS / ((performance.now() - started) / 1000));
    return pid === undefined ? { tasksPerSec } : { tasksPerSec, controlCpuUsPerTask: round3(((cpuSeconds(pid) - cpuBefore) / TASKS) * 1e6) };
  } finally {
    client.close();
  }
}

async function nodeThroughput(config: TaskflowConfigInput, label: string, bin?: string): Promise<{ tasksPerSec: number; controlCpuUsPerTask?: number }> {
  progress(`plain path: ${TASKS} no-op tasks, ${label}`);
  const node = await startNode(config, bin ? { bin } : {});
  try {
    return await throughput(node.address, node.process.pid);
  } finally {
    await node.stop();
  }
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

/** The plain path, with and without limits configured, beside the baselines; alternating rounds, best of each. */
export async function plainPath(): Promise<Record<string, unknown>> {
  const configuredElsewhere: TaskflowConfigInput = {
    ...base,
    limits: [{ match: { type: "email" }, rate: "100/s" }],
    concurrency: [{ match: { concurrencyKey: "customer-*" }, max: 2 }],
  };
  const runs: Record<string, { tasksPerSec: number; controlCpuUsPerTask?: number }[]> = { plain: [], limitsConfigured: [], before: [] };
  for (let r = 0; r < ROUNDS; r++) {
    runs["plain"]!.push(await nodeThroughput(base, "no limits config"));
    runs["limitsConfigured"]!.push(await nodeThroughput(configuredElsewhere, "limits configured for another type"));
    if (BASELINE_BIN) runs["before"]!.push(await nodeThroughput(base, `baseline build ${BASELINE_BIN}`, BASELINE_BIN));
  }
  progress("baseline: raw grpc-js relay");
  const relay = await startRelay();
  let relayRun;
  try {
    relayRun = await throughput(relay.address, undefined);
  } finally {
    relay.child.kill("SIGTERM");
  }
  const best = (list: { tasksPerSec: number }[]) => Math.max(...list.map((x) => x.tasksPerSec));
  const leastCpu = (list: { controlCpuUsPerTask?: number }[]) => Math.min(...list.map((x) => x.controlCpuUsPerTask ?? Infinity));
  const plain = best(runs["plain"]!);
  return {
    what: `${TASKS} no-op tasks per round after ${WARMUP} warm-up, memory store, monitoring off, 2 worker processes; ${ROUNDS} alternating rounds, best of each`,
    tasksPerSec: { plain: runs["plain"]!.map((x) => x.tasksPerSec), limitsConfigured: runs["limitsConfigured"]!.map((x) => x.tasksPerSec), ...(BASELINE_BIN ? { before: runs["before"]!.map((x) => x.tasksPerSec) } : {}), relay: relayRun.tasksPerSec },
    controlCpuUsPerTask: {
      plain: runs["plain"]!.map((x) => x.controlCpuUsPerTask),
      limitsConfigured: runs["limitsConfigured"]!.map((x) => x.controlCpuUsPerTask),
      ...(BASELINE_BIN ? { before: runs["before"]!.map((x) => x.controlCpuUsPerTask) } : {}),
    },
    ratio: {
      limitsConfiguredToPlain: round3(best(runs["limitsConfigured"]!) / plain),
      plainToRelay: round3(plain / relayRun.tasksPerSec),
      ...(BASELINE_BIN
        ? { plainToBefore: round3(plain / best(runs["before"]!)), plainToBeforeCpuPerTask: round3(leastCpu(runs["plain"]!) / leastCpu(runs["before"]!)) }
        : { plainToBefore: "set PRIMITIVES_BASELINE_BIN=<main checkout>/apps/node/dist/bin.js to measure" }),
    },
    target: { plainToBefore: "≥ 0.95" },
  };
}
