/**
 * `npm run bench`: Taskflow end to end on one host, beside a bare grpc-js relay with the same
 * message pattern, in the same run, so the ratio holds on a noisy machine. Prints JSON.
 *
 * - throughput: 100,000 no-op tasks from one client (SDK auto-batching), 2 worker processes;
 * - latency: submit → result at an open-loop 500 tasks/s, p50/p95/p99.
 * The client side is the same SDK for both; only what sits behind the address differs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TaskflowClient } from "@taskflow/client";
import type { TaskflowConfigInput } from "@taskflow/core";
import { startNode } from "../harness.js";

const N = Number(process.env["BENCH_TASKS"] ?? 100_000);
const RATE = Number(process.env["BENCH_RATE"] ?? 500);
const LATENCY_TASKS = Number(process.env["BENCH_LATENCY_TASKS"] ?? 2500);

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function throughput(address: string): Promise<{ tasks: number; seconds: number; tasksPerSec: number }> {
  const client = new TaskflowClient({ address });
  try {
    await client.run("noop"); // warm the channel and the results stream
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
    return { tasks: N, seconds: round(seconds), tasksPerSec: Math.round(N / seconds) };
  } finally {
    client.close();
  }
}

async function latency(address: string): Promise<{ ratePerSec: number; tasks: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number }> {
  const client = new TaskflowClient({ address });
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

async function runTaskflow(config: TaskflowConfigInput) {
  const node = await startNode(config);
  try {
    progress(`taskflow (${config.store?.kind ?? "memory"} store): throughput of ${N} no-op tasks`);
    const tp = await throughput(node.address);
    progress(`taskflow: latency at ${RATE} tasks/s`);
    const lat = await latency(node.address);
    return { throughput: tp, latency: lat };
  } finally {
    await node.stop();
  }
}

const config: TaskflowConfigInput = { roles: ["control", "worker"], worker: { processes: 2 }, log: { level: "warn" } };
const taskflow = await runTaskflow(config);
progress("baseline: raw grpc-js relay");
const relay = await startRelay();
let baseline;
try {
  baseline = { throughput: await throughput(relay.address), latency: await latency(relay.address) };
} finally {
  relay.child.kill("SIGTERM");
}
const result = {
  machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
  taskflow,
  baseline: { what: "bare grpc-js relay, same message pattern and batching, no scheduler/store/heaps", ...baseline },
  ratio: {
    throughput: round(taskflow.throughput.tasksPerSec / baseline.throughput.tasksPerSec),
    p50: round(taskflow.latency.p50Ms / baseline.latency.p50Ms),
    p99: round(taskflow.latency.p99Ms / baseline.latency.p99Ms),
  },
  targets: { tasksPerSec: 20_000, p50Ms: 1, p99Ms: 10 },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
