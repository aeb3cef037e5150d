/**
 * `npm run bench -w @taskflow/shm-heap`: push+pop throughput on a heap of 1,000 records,
 * printed as JSON. One "op" is one push or one pop. Rounds alternate between the contenders so
 * the noise of a shared machine hits both alike; medians are reported.
 */
import { fork } from "node:child_process";
import { Worker, isMainThread } from "node:worker_threads";
import { Heap } from "heap-js";
import { IndexedHeap, type SharedHeapRef } from "../index.js";

const ITEMS = 1000;
const KEYS = new Float64Array(1 << 16);
for (let i = 0; i < KEYS.length; i++) KEYS[i] = Math.floor(Math.random() * 1e6);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round1 = (x: number): number => Math.round(x * 10) / 10;

/** push+pop pairs on a heap holding ITEMS records for `ms`; returns ops/s. */
function loopOurs(heap: IndexedHeap, ms: number, offset: number): number {
  let ops = 0;
  let i = offset;
  const end = performance.now() + ms;
  do {
    for (let j = 0; j < 4096; j++) {
      heap.push(KEYS[i & 0xffff]!, i & 0xffff);
      heap.pop();
      i++;
    }
    ops += 8192;
  } while (performance.now() < end);
  return ops / (ms / 1000);
}

interface Entry {
  key: number;
  seq: number;
  id: number;
}

function loopHeapJs(heap: Heap<Entry>, ms: number, seq0: number): number {
  let ops = 0;
  let seq = seq0;
  const end = performance.now() + ms;
  do {
    for (let j = 0; j < 4096; j++) {
      heap.push({ key: KEYS[seq & 0xffff]!, seq, id: seq & 0xffff });
      heap.pop();
      seq++;
    }
    ops += 8192;
  } while (performance.now() < end);
  return ops / (ms / 1000);
}

function filled(heap: IndexedHeap): IndexedHeap {
  for (let i = 0; i < ITEMS; i++) heap.push(KEYS[i]!, i);
  return heap;
}

function singleThreaded(rounds: number, ms: number): Record<string, number> {
  const sab = filled(IndexedHeap.create({ capacity: ITEMS + 1 }));
  const shmName = `/tf-bench-${process.pid}`;
  const shm = filled(IndexedHeap.create({ capacity: ITEMS + 1, backing: "shm", name: shmName }));
  const hj = new Heap<Entry>((a, b) => a.key - b.key || a.seq - b.seq);
  for (let i = 0; i < ITEMS; i++) hj.push({ key: KEYS[i]!, seq: i, id: i });
  const ours: number[] = [];
  const theirs: number[] = [];
  const shmOps: number[] = [];
  // Warm-up rounds let both reach optimised code before anything is counted.
  loopOurs(sab, 200, 0);
  loopHeapJs(hj, 200, ITEMS);
  loopOurs(shm, 200, 0);
  for (let r = 0; r < rounds; r++) {
    ours.push(loopOurs(sab, ms, r * 7919));
    theirs.push(loopHeapJs(hj, ms, ITEMS + r * 1e7));
    shmOps.push(loopOurs(shm, ms, r * 7919));
  }
  shm.close();
  const a = median(ours);
  const b = median(theirs);
  return {
    sabLockedOpsPerSec: Math.round(a),
    heapJsOpsPerSec: Math.round(b),
    ratioVsHeapJs: Math.round((a / b) * 100) / 100,
    shmLockedOpsPerSec: Math.round(median(shmOps)),
  };
}

const WORKER_CODE = `
const { workerData, parentPort } = require("node:worker_threads");
import(workerData.url).then(({ runContender }) => parentPort.postMessage(runContender(workerData)));
`;

export interface ContenderPlan {
  url: string;
  shared: SharedHeapRef;
  ms: number;
  seed: number;
  /** Epoch ms at which to start, so all contenders overlap. */
  startAt: number;
}

/** One contender: push+pop pairs on a shared heap. Exported for the worker/process entry. */
export function runContender(plan: ContenderPlan): number {
  const heap = IndexedHeap.attach(plan.shared);
  while (Date.now() < plan.startAt);
  return loopOurs(heap, plan.ms, plan.seed);
}

async function threads(n: number, ms: number): Promise<number> {
  const heap = filled(IndexedHeap.create({ capacity: ITEMS + 64 }));
  const startAt = Date.now() + 300;
  const url = import.meta.url;
  const results = await Promise.all(
    Array.from({ length: n }, (_, w) => {
      const worker = new Worker(WORKER_CODE, { eval: true, workerData: { url, shared: heap.shared, ms, seed: w * 999, startAt } });
      return new Promise<number>((resolve, reject) => {
        worker.once("message", (v: number) => void worker.terminate().then(() => resolve(v)));
        worker.once("error", reject);
      });
    }),
  );
  return results.reduce((a, b) => a + b, 0);
}

/** Total ops/s of `n` contender processes, and the smallest one's share of it (fairness). */
async function processes(n: number, ms: number): Promise<{ total: number; minShare: number }> {
  const name = `/tf-bench-procs-${process.pid}`;
  const heap = filled(IndexedHeap.create({ capacity: ITEMS + 64, backing: "shm", name }));
  try {
    const startAt = Date.now() + 500;
    const results = await Promise.all(
      Array.from({ length: n }, (_, w) => {
        const plan: ContenderPlan = { url: import.meta.url, shared: heap.shared, ms, seed: w * 999, startAt };
        const child = fork(new URL(import.meta.url), ["--contender", JSON.stringify(plan)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
        return new Promise<number>((resolve, reject) => {
          child.once("message", (v) => resolve(v as number));
          child.once("error", reject);
          child.once("exit", (code) => code !== 0 && reject(new Error(`contender exited ${code}`)));
        });
      }),
    );
    if (heap.size !== ITEMS || heap.validate() !== null) throw new Error("heap damaged by the benchmark");
    const total = results.reduce((a, b) => a + b, 0);
    return { total, minShare: Math.min(...results) / total };
  } finally {
    heap.close();
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf("--contender");
  if (i >= 0) {
    const v = runContender(JSON.parse(process.argv[i + 1]!) as ContenderPlan);
    process.send!(v, () => process.disconnect());
    return;
  }
  const quick = process.argv.includes("--quick");
  // Progress on stderr; stdout carries only the JSON.
  const progress = (message: string) => process.stderr.write(`[bench] ${message}\n`);
  progress("single thread: IndexedHeap (sab, shm) beside heap-js, alternating rounds");
  const single = singleThreaded(quick ? 3 : 7, quick ? 150 : 300);
  const ms = quick ? 400 : 1000;
  progress("contended: 2 threads, 3 rounds");
  const t2 = median([await threads(2, ms), await threads(2, ms), await threads(2, ms)]);
  progress("contended: 4 threads, 3 rounds");
  const t4 = median([await threads(4, ms), await threads(4, ms), await threads(4, ms)]);
  progress("contended: 2 processes over POSIX shm, 3 rounds");
  const p2runs = [await processes(2, ms), await processes(2, ms), await processes(2, ms)];
  const p2 = median(p2runs.map((r) => r.total));
  const out = {
    heapItems: ITEMS,
    op: "one push or one pop (push+pop pairs), locking on",
    node: process.version,
    cpus: (await import("node:os")).availableParallelism(),
    loadAverage1m: round1((await import("node:os")).loadavg()[0]!),
    singleThread: single,
    contended: { sabThreads2OpsPerSec: Math.round(t2), sabThreads4OpsPerSec: Math.round(t4), shmProcesses2OpsPerSec: Math.round(p2),
      // A waiter backs off so the owner runs bursts of ops on hot cache lines: more ops/s, less
      // even shares. 0.5 would be perfectly fair.
      shmProcesses2SmallerShare: Math.round(median(p2runs.map((r) => r.minShare)) * 100) / 100,
    },
    // The machine is shared: heap-js in the same run is the yardstick that makes figures
    // comparable across load (the 10 M target was set where heap-js ran at ~27 M).
    shmProcesses2VsHeapJs: Math.round((p2 / single.heapJsOpsPerSec!) * 100) / 100,
    targets: {
      ratioVsHeapJsAtLeast: 0.6,
      ratioMet: single.ratioVsHeapJs! >= 0.6,
      shmProcesses2AtLeast: 10_000_000,
      shmProcesses2Met: p2 >= 10_000_000,
    },
  };
  console.log(JSON.stringify(out, null, 2));
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/.*\//, "/"))) await main();
