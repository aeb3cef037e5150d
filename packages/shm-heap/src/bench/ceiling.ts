/**
 * `node dist/bench/ceiling.js`: what the machine allows two cores sharing one heap, as JSON.
 * - pingPongRoundTripNs: two threads hand one word back and forth; half of it is the cost of
 *   moving a written cache line to the other core.
 * - twoPrivateHeaps: two threads on two private unlocked heaps (nothing shared) against one
 *   alone: how much of a second core a busy second thread really gets.
 * - sharedHeapBursts: two threads share one unlocked heap under an outside spin lock held for K
 *   push+pop pairs at a time, against one thread. K = 1 is the best any lock handing over per
 *   op can do; large K is the best batching can do. Neither can beat one thread alone: the heap
 *   is serial, so the single-thread figure is the ceiling for any number of contenders.
 * Threads and processes move cache lines the same way; threads are simpler to start.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { IndexedHeap, type SharedHeapRef } from "../index.js";

const ITEMS = 1000;
const MS = 300;
const ROUNDS = 5;
const KEYS = new Float64Array(1 << 16);
for (let i = 0; i < KEYS.length; i++) KEYS[i] = (i * 2654435761) % 1000003;

type Job =
  | { kind: "pingpong"; buf: SharedArrayBuffer; me: number }
  | { kind: "heap"; shared: SharedHeapRef | null; lock: SharedArrayBuffer | null; burst: number; startAt: number };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const m = (x: number): number => Math.round(x / 1e5) / 10;

function pingPong(buf: SharedArrayBuffer, me: number): number {
  const w = new Int32Array(buf);
  const n = 1_000_000;
  Atomics.add(w, 32, 1);
  while (Atomics.load(w, 32) < 2);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    while (Atomics.load(w, 16) !== me);
    Atomics.store(w, 16, 1 - me);
  }
  return ((performance.now() - t0) * 1e6) / n;
}

/** push+pop pairs for MS ms, `burst` pairs per hold of the outside lock (none when null); ops/s. */
function heapLoop(job: Extract<Job, { kind: "heap" }>): number {
  const heap = job.shared === null ? IndexedHeap.create({ capacity: ITEMS + 1 }, { unlocked: true }) : IndexedHeap.attach(job.shared);
  if (job.shared === null) for (let i = 0; i < ITEMS; i++) heap.push(KEYS[i]!, i);
  const lock = job.lock === null ? null : new Int32Array(job.lock);
  while (Date.now() < job.startAt);
  let ops = 0;
  let i = job.startAt & 0xffff;
  const end = performance.now() + MS;
  do {
    for (let j = 0; j < 4096; j += job.burst) {
      if (lock !== null) while (Atomics.compareExchange(lock, 0, 0, 1) !== 0);
      for (let k = 0; k < job.burst; k++, i++) {
        heap.push(KEYS[i & 0xffff]!, i & 0xffff);
        heap.pop();
      }
      if (lock !== null) Atomics.store(lock, 0, 0);
    }
    ops += 8192;
  } while (performance.now() < end);
  return ops / (MS / 1000);
}

function run(jobs: Job[]): Promise<number[]> {
  return Promise.all(
    jobs.map(
      (job) =>
        new Promise<number>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: job });
          w.once("message", (v: number) => void w.terminate().then(() => resolve(v)));
          w.once("error", reject);
        }),
    ),
  );
}

async function main(): Promise<void> {
  const pp: number[] = [];
  const alone: number[] = [];
  const pair: number[] = [];
  const bursts = [1, 16, 256];
  const shared: Record<number, number[]> = Object.fromEntries(bursts.map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const buf = new SharedArrayBuffer(256);
    pp.push((await run([0, 1].map((me) => ({ kind: "pingpong", buf, me }))))[0]!);
    const startAt = (): number => Date.now() + 100;
    alone.push((await run([{ kind: "heap", shared: null, lock: null, burst: 1, startAt: startAt() }]))[0]!);
    const t = startAt();
    pair.push((await run([0, 1].map(() => ({ kind: "heap", shared: null, lock: null, burst: 1, startAt: t })))).reduce((a, b) => a + b));
    for (const burst of bursts) {
      const heap = IndexedHeap.create({ capacity: ITEMS + 1 }, { unlocked: true });
      for (let i = 0; i < ITEMS; i++) heap.push(KEYS[i]!, i);
      const lock = new SharedArrayBuffer(64);
      const t2 = startAt();
      const rs = await run([0, 1].map(() => ({ kind: "heap", shared: heap.shared, lock, burst, startAt: t2 })));
      shared[burst]!.push(rs.reduce((a, b) => a + b));
      if (heap.validate() !== null) throw new Error("heap damaged");
    }
  }
  const out = {
    note: "M ops/s (one push or one pop), heap of 1,000, unlocked heap; medians of alternating rounds",
    pingPongRoundTripNs: Math.round(median(pp)),
    oneThreadPrivateHeap: m(median(alone)),
    twoThreadsPrivateHeapsTotal: m(median(pair)),
    twoThreadsOneHeapOutsideLock: Object.fromEntries(bursts.map((k) => [`burst${k}`, m(median(shared[k]!))])),
  };
  console.log(JSON.stringify(out, null, 2));
}

if (isMainThread) await main();
else {
  const job = workerData as Job;
  parentPort!.postMessage(job.kind === "pingpong" ? pingPong(job.buf, job.me) : heapLoop(job));
}
