/**
 * `npm run bench:scale -w @taskflow/e2e` (issue 13): one run, one JSON. Queued tasks (bytes per
 * queued task at each depth from ΔRSS, submit and drain rates; memory and SQLite stores;
 * docs/adr/0030) and many workers (connect time, control CPU and RSS, event-loop lag p99,
 * cluster-state, `taskflow workers` and scrape times, latency p50/p99 at 500 tasks/s;
 * docs/adr/0031). The figures to reach are printed beside them.
 *
 * Env: SCALE_QUEUE_SIZES (default 1000000,10000000), SCALE_QUEUE_STORES (default memory,sqlite),
 * SCALE_WORKER_COUNTS (default 1000,5000,10000), SCALE_PROCESSES (default 4), SCALE_FLEET_NICE
 * (default 10: the worker processes yield the cores to the control node, as other hosts would), SCALE_PARTS
 * (queue,workers: both by default). Progress goes to stderr.
 */
import { queueScale } from "./scale-queue.js";
import { workerScale } from "./scale-workers.js";

const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(",").map((s) => s.trim()).filter(Boolean);
const parts = new Set(list("SCALE_PARTS", "queue,workers"));
const progress = (line: string) => process.stderr.write(`[bench:scale] ${line}\n`);
const started = Date.now();

const out: Record<string, unknown> = {
  what: "issue 13: queued tasks off the JS heap and many workers on one control node",
  targets: { bytesPerQueuedTask: 300, queuedWithoutCrash: 10_000_000, eventLoopLagP99MsAt10kWorkers: 50, adminCallMsAt10kWorkers: 200, latencyP99MsAt500PerSecAt10kWorkers: 10 },
};
if (parts.has("queue")) {
  const sizes = list("SCALE_QUEUE_SIZES", "1000000,10000000").map(Number);
  const queue: unknown[] = [];
  for (const store of list("SCALE_QUEUE_STORES", "memory,sqlite") as ("memory" | "sqlite")[]) {
    progress(`queue: ${store} store, sizes ${sizes.join(", ")}`);
    queue.push(await queueScale({ sizes, store, progress }));
  }
  out["queue"] = queue;
}
if (parts.has("workers")) {
  const counts = list("SCALE_WORKER_COUNTS", "1000,5000,10000").map(Number);
  progress(`workers: ${counts.join(", ")}`);
  out["workers"] = await workerScale({ counts, processes: Number(process.env["SCALE_PROCESSES"] ?? 4) });
}
out["elapsedSec"] = Math.round((Date.now() - started) / 1000);
console.log(JSON.stringify(out, null, 2));
