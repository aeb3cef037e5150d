/**
 * Test-only load generator, run as a worker thread (workerData.role) or a child process
 * (argv[2]) by stress.test.ts. Not a test file itself, and not shipped (`files` drops *.test.*).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { HeapFullError, IndexedHeap, type Handle, type SharedHeapRef } from "./index.js";

export interface WorkerPlan {
  role: "survivor" | "victim";
  shared: SharedHeapRef;
  /** First id this worker pushes; it uses ids base … base + maxItems - 1. */
  base: number;
  maxItems: number;
  seed: number;
  /** Thread runs: Int32Array over a SAB, [0] drain flag, then one counter per id (pops + removes). */
  control?: SharedArrayBuffer;
  unlocked?: boolean;
}

export interface WorkerReport {
  pushed: number;
  /** ids this worker popped or removed (process runs; thread runs count in `control`). */
  taken?: Int32Array;
  error?: string;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/**
 * Pushes, blocking pops, removes and updates at random until told to drain, then pops until
 * the heap stays empty. Every id it pops or removes goes to `take`.
 */
async function survive(heap: IndexedHeap, plan: WorkerPlan, drain: () => boolean, take: (id: number) => void): Promise<number> {
  const rand = rng(plan.seed);
  const handles: Handle[] = [];
  const handleIds: number[] = [];
  let pushed = 0;
  let ops = 0;
  while (!drain()) {
    const r = rand();
    if (r < 0.45 && pushed < plan.maxItems) {
      try {
        const h = heap.push(Math.floor(rand() * 1000), plan.base + pushed, ops, -ops);
        pushed++;
        if (handles.length < 64) {
          handles.push(h);
          handleIds.push(plan.base + pushed - 1);
        } else {
          const i = Math.floor(rand() * 64);
          handles[i] = h;
          handleIds[i] = plan.base + pushed - 1;
        }
      } catch (e) {
        if (!(e instanceof HeapFullError)) throw e;
      }
    } else if (r < 0.8) {
      const id = heap.popWait(1);
      if (id >= 0) take(id);
    } else if (r < 0.9 && handles.length > 0) {
      const i = Math.floor(rand() * handles.length);
      if (heap.remove(handles[i]!)) take(handleIds[i]!);
    } else if (handles.length > 0) {
      heap.update(handles[Math.floor(rand() * handles.length)]!, Math.floor(rand() * 1000));
    }
    // Let IPC messages and timers in (processes learn about "drain" that way).
    if ((++ops & 1023) === 0) await new Promise((r) => setImmediate(r));
  }
  // Bounded, because an unlocked run can corrupt `size` into never reaching 0.
  for (let n = 0; n < plan.maxItems * 4; n++) {
    const id = heap.popWait(30);
    if (id < 0) break;
    take(id);
  }
  return pushed;
}

/** Hammers the lock with every mutating operation on its own records until killed. */
function victim(heap: IndexedHeap, plan: WorkerPlan): never {
  const rand = rng(plan.seed);
  const handles: Handle[] = [];
  let pushed = 0;
  process.stdout.write("ready\n");
  for (;;) {
    const r = rand();
    if (r < 0.4 && pushed < plan.maxItems) {
      try {
        handles.push(heap.push(Math.floor(rand() * 1000), plan.base + pushed++));
      } catch (e) {
        if (!(e instanceof HeapFullError)) throw e;
      }
      if (handles.length > 256) handles.splice(0, 128);
    } else if (r < 0.7 && handles.length > 0) {
      heap.update(handles[Math.floor(rand() * handles.length)]!, Math.floor(rand() * 1000));
    } else if (r < 0.9 && handles.length > 0) {
      heap.remove(handles.splice(Math.floor(rand() * handles.length), 1)[0]!);
    } else {
      heap.peekKey();
    }
  }
}

async function main(): Promise<void> {
  if (!isMainThread && workerData?.role === "survivor") {
    const plan = workerData as WorkerPlan;
    const heap = IndexedHeap.attach(plan.shared);
    const control = new Int32Array(plan.control!);
    try {
      const pushed = await survive(
        heap,
        plan,
        () => Atomics.load(control, 0) !== 0,
        (id) => Atomics.add(control, 1 + id, 1),
      );
      parentPort!.postMessage({ pushed } satisfies WorkerReport);
    } catch (e) {
      // An unlocked run may corrupt the heap into throwing: that is a detected race too.
      parentPort!.postMessage({ pushed: -1, error: String(e) } satisfies WorkerReport);
    }
    return;
  }
  if (isMainThread && process.send !== undefined && process.argv[2] !== undefined) {
    const plan = JSON.parse(process.argv[2]) as WorkerPlan;
    const heap = IndexedHeap.attach(plan.shared);
    if (plan.role === "victim") victim(heap, plan);
    let draining = false;
    process.on("message", (m) => {
      if (m === "drain") draining = true;
    });
    process.send("started");
    const taken: number[] = [];
    let report: WorkerReport;
    try {
      const pushed = await survive(heap, plan, () => draining, (id) => taken.push(id));
      report = { pushed, taken: Int32Array.from(taken) };
    } catch (e) {
      report = { pushed: -1, error: String(e), taken: Int32Array.from(taken) };
    }
    // Disconnect only once the report is written, or it can be dropped.
    process.send(report, () => process.disconnect());
  }
}

await main();
