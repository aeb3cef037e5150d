/**
 * Issue 13's scale measurement: how many bytes one queued task costs the control node, and how
 * fast a deep queue fills and drains. A real control node with no workers takes `sizes` tasks
 * (16-byte payloads, through the SDK's batched SubmitTaskStream); at each size the node's
 * resident memory (`/proc/<pid>/status` VmRSS, after the node went quiet) is recorded. Then a
 * worker drains the queue. `deltaBytesPerTask` is ΔRSS between the first and the last size over
 * the tasks added between them: the marginal cost of one more queued task, free of the node's
 * fixed start-up memory.
 *
 * As a script: `node dist/bench/scale-queue.js [memory|sqlite] [size,size,...]` prints the JSON
 * (default memory, 1000000,10000000). Capacity is set to the largest size. `SCALE_DRAIN=0` skips
 * the drain; `SCALE_BIN=<other checkout>/apps/node/dist/bin.js` measures that build instead.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TaskflowClient, TaskflowWorker } from "@taskflow/client";
import { startNode, type StartedNode } from "../harness.js";
import { scrape, value } from "../prometheus.js";

export interface QueueScaleOptions {
  /** Queue depths to measure at, ascending. */
  sizes: number[];
  store: "memory" | "sqlite";
  /** Drain the queue after the last size (and time it). @defaultValue true */
  drain?: boolean;
  /** Progress lines go here. @defaultValue none */
  progress?: (line: string) => void;
  /** Another build's `apps/node/dist/bin.js`, to measure it the same way (a baseline). @defaultValue this checkout's */
  bin?: string;
  /**
   * The node's `control.hotQueueDepth`. The default keeps the first 65,536 tasks as objects: over
   * 1 M → 10 M that is noise, over a small window the garbage collector's slack around those
   * objects (tens of MB, released when V8 decides) is not, so a small run packs every task.
   * @defaultValue the node's default
   */
  hotQueueDepth?: number;
}

export interface QueueScaleResult {
  store: "memory" | "sqlite";
  /** Node RSS over queued tasks at each size (fixed start-up memory included). */
  bytesPerTaskAt: Record<string, number>;
  /** RSS at each size, bytes. */
  rssAt: Record<string, number>;
  /** RSS of the idle node before the first submit. */
  rssIdle: number;
  /** (RSS at the last size − RSS at the first) / (last − first): the marginal cost of a queued task. */
  deltaBytesPerTask: number;
  submitPerSec: number;
  /**
   * GetTask on the last task queued at the largest size (a cold task: thawed, and the heap
   * walked for its place, up to 100,000 ahead), median of 5, ms; and its waiting reason.
   */
  whyWaitingMs: number;
  whyWaiting: string;
  drainPerSec: number | undefined;
  drained: number | undefined;
}

/** A 14-character string: 16 bytes as the SDK's JSON codec sends it (quotes included). */
const PAYLOAD = "x".repeat(14);
/** Submits awaited together: the client batches them (1000 a batch, 8 in flight). */
const CHUNK = 50_000;

export async function queueScale(opts: QueueScaleOptions): Promise<QueueScaleResult> {
  const sizes = [...opts.sizes].sort((a, b) => a - b);
  const largest = sizes[sizes.length - 1]!;
  const say = opts.progress ?? (() => {});
  const node = await startNode(
    {
      roles: ["control"],
      control: { taskHeapCapacity: Math.max(1024, largest), ...(opts.hotQueueDepth !== undefined && { hotQueueDepth: opts.hotQueueDepth }) },
      ...(opts.store === "sqlite" ? { store: { kind: "sqlite", path: "scale-queue.db" } } : {}),
      log: { level: "error" },
    },
    { timeoutMs: 60_000, ...(opts.bin ? { bin: opts.bin } : {}) },
  );
  const client = new TaskflowClient({ address: node.address });
  try {
    const pid = node.process.pid!;
    const rssIdle = await quietRss(pid);
    const rssAt: Record<string, number> = {};
    const bytesPerTaskAt: Record<string, number> = {};
    let queued = 0;
    let submitMs = 0;
    let lastId = "";
    for (const size of sizes) {
      const started = performance.now();
      while (queued < size) {
        const n = Math.min(CHUNK, size - queued);
        const ids = await Promise.all(Array.from({ length: n }, () => client.submit("scale", PAYLOAD)));
        lastId = ids[ids.length - 1]!;
        queued += n;
        if (queued % 1_000_000 === 0) say(`${queued} queued, rss ${mb(rss(pid))} MB`);
      }
      submitMs += performance.now() - started;
      rssAt[size] = await quietRss(pid);
      bytesPerTaskAt[size] = Math.round(rssAt[size]! / size);
      say(`at ${size}: rss ${mb(rssAt[size]!)} MB`);
    }
    const first = sizes[0]!;
    const deltaBytesPerTask = sizes.length > 1 ? Math.round((rssAt[largest]! - rssAt[first]!) / (largest - first)) : bytesPerTaskAt[largest]!;
    const { ms: whyWaitingMs, reason: whyWaiting } = await timeGet(client, lastId);
    say(`GetTask on the last queued task: ${whyWaitingMs} ms (${whyWaiting})`);
    let drainPerSec: number | undefined;
    let drained: number | undefined;
    if (opts.drain ?? true) ({ drainPerSec, drained } = await drain(node, largest, say));
    return { store: opts.store, bytesPerTaskAt, rssAt, rssIdle, deltaBytesPerTask, submitPerSec: Math.round(largest / (submitMs / 1000)), whyWaitingMs, whyWaiting, drainPerSec, drained };
  } finally {
    client.close();
    await node.stop(60_000);
  }
}

/** Starts a worker with many slots and waits until `total` tasks finished; `drained` counts those that succeeded. */
async function drain(node: StartedNode, total: number, say: (line: string) => void): Promise<{ drainPerSec: number; drained: number }> {
  const worker = new TaskflowWorker({ address: node.address, workerId: "scale-drain", slots: 512, handlers: {
      // Each task's payload went through the compact table (its byte arena) and back: checked.
      scale: (input: unknown) => {
        if (input !== PAYLOAD) throw new Error(`payload changed in the queue: ${JSON.stringify(input)}`);
        return 0;
      },
    },
  });
  const started = performance.now();
  await worker.start();
  try {
    let done = 0;
    for (;;) {
      // A scrape can meet a keep-alive connection the server just closed ("fetch failed"): try again.
      const m = await scrape(node.metricsUrl!).catch(() => undefined);
      if (!m) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      done = value(m, "taskflow_tasks", { state: "succeeded" });
      const finished = done + value(m, "taskflow_tasks", { state: "failed" }) + value(m, "taskflow_tasks", { state: "cancelled" });
      if (finished >= total) break;
      say(`drained ${done}/${total}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    return { drainPerSec: Math.round(done / ((performance.now() - started) / 1000)), drained: done };
  } finally {
    await worker.stop();
  }
}

async function timeGet(client: TaskflowClient, id: string): Promise<{ ms: number; reason: string }> {
  const samples: number[] = [];
  let reason = "";
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    reason = (await client.get(id)).waitingReason;
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { ms: Math.round(samples[2]! * 100) / 100, reason };
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

/** RSS once the node went quiet (idle garbage collection ran): the lowest of a few samples. */
async function quietRss(pid: number): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 500));
    low = Math.min(low, rss(pid));
  }
  return low;
}

const mb = (bytes: number) => Math.round(bytes / (1024 * 1024));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const store = (process.argv[2] ?? "memory") as "memory" | "sqlite";
  const sizes = (process.argv[3] ?? "1000000,10000000").split(",").map(Number);
  const bin = process.env["SCALE_BIN"];
  const result = await queueScale({ store, sizes, drain: process.env["SCALE_DRAIN"] !== "0", ...(bin ? { bin } : {}), progress: (l) => process.stderr.write(`[scale-queue] ${l}\n`) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
