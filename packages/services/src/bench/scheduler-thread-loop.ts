/**
 * The scheduling loop of `scheduler-thread.ts` variant (b), run on its own worker thread over the
 * control role's task and worker heaps (attached through `IndexedHeap.attach`). It mirrors
 * `MainScheduler.turn`/`pickWorker`/`rekey` on what a thread can see: the heap records and the
 * per-worker fields the main thread mirrors into shared memory. Task records, sessions and epochs
 * stay on the main thread, so every decision goes back there as a (task id, worker id) pair.
 *
 * Benchmark code only: not used by the product.
 */
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { IndexedHeap, type SharedHeapRef } from "@taskflow/shm-heap";
import { fifoPolicy } from "@taskflow/policy-fifo";
import { leastLoadedPolicy } from "@taskflow/policy-least-loaded";
import type { PolicyContext, PolicyWorker } from "@taskflow/core";

/** Int32 control words at the start of `ctl`. */
export const CTL = { STOP: 0, RING_HEAD: 1, RING_TAIL: 2, MAIN_SLEEPING: 3, THREAD_WAITING_ROOM: 4 } as const;
const CTL_WORDS = 8;

/** Per-worker shared fields: Int32 arrays in `ctl` after the control words, Float64 arrays in `meta`. */
export class SharedWorkers {
  readonly running: Int32Array;
  readonly capacity: Int32Array;
  readonly slots: Int32Array;
  readonly handle: Int32Array;
  readonly lock: Int32Array;
  readonly types: Int32Array;
  readonly lastAssignedSeq: Float64Array;
  readonly joinSeq: Float64Array;

  constructor(
    readonly ctl: Int32Array,
    meta: Float64Array,
    readonly max: number,
  ) {
    const at = (k: number): Int32Array => ctl.subarray(CTL_WORDS + k * max, CTL_WORDS + (k + 1) * max);
    this.running = at(0);
    this.capacity = at(1);
    this.slots = at(2);
    this.handle = at(3);
    this.lock = at(4);
    this.types = at(5);
    this.lastAssignedSeq = meta.subarray(0, max);
    this.joinSeq = meta.subarray(max, 2 * max);
  }

  static buffers(max: number): { ctl: SharedArrayBuffer; meta: SharedArrayBuffer } {
    return { ctl: new SharedArrayBuffer((CTL_WORDS + 6 * max) * 4), meta: new SharedArrayBuffer(2 * max * 8) };
  }

  /** A futex mutex per worker (0 free, 1 held, 2 held with waiters); held for a few heap operations. */
  acquire(i: number): void {
    const word = this.lock;
    let c = Atomics.compareExchange(word, i, 0, 1);
    if (c === 0) return;
    for (let spin = 0; spin < 100 && c !== 0; spin++) {
      c = Atomics.compareExchange(word, i, 0, 1);
      if (c === 0) return;
    }
    if (c !== 2) c = Atomics.exchange(word, i, 2);
    while (c !== 0) {
      Atomics.wait(word, i, 2, 1);
      c = Atomics.exchange(word, i, 2);
    }
  }

  release(i: number): void {
    if (Atomics.sub(this.lock, i, 1) !== 1) {
      Atomics.store(this.lock, i, 0);
      Atomics.notify(this.lock, i, 1);
    }
  }

  /** The policy's view of worker `i`, as `MainScheduler.policyView` builds it. */
  view(i: number, taskTypes: ReadonlySet<string>): PolicyWorker {
    return {
      id: "",
      host: "",
      slots: this.slots[i]!,
      running: this.running[i]!,
      labels: {},
      taskTypes,
      lastAssignedSeq: this.lastAssignedSeq[i]!,
      joinSeq: this.joinSeq[i]!,
    };
  }
}

export type HandOff = "ring" | "message";

export interface ThreadPlan {
  taskHeap: SharedHeapRef;
  workerHeap: SharedHeapRef;
  ctl: SharedArrayBuffer;
  meta: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  maxWorkers: number;
  policy: "fifo" | "least-loaded";
  handOff: HandOff;
  /** Pairs per postMessage batch (handOff "message"). */
  batch: number;
}

export interface ThreadStats {
  cpuNs: number;
  decisions: number;
  /** Ring: times the main thread was woken. Message: batches posted. */
  handOffs: number;
  /** Blocking pops that had to sleep (no task or no free worker). */
  sleeps: number;
}

/** CPU time of the calling thread in ns (Linux schedstat). */
export function threadCpuNs(path = "/proc/thread-self/schedstat"): number {
  return Number(readFileSync(path, "utf8").split(" ")[0]);
}

const policyContext: PolicyContext = {
  now: () => Date.now(),
  logger: { debug() {}, info() {}, warn() {} },
};

function run(plan: ThreadPlan): void {
  const port = parentPort!;
  const tasks = IndexedHeap.attach(plan.taskHeap);
  const workers = IndexedHeap.attach(plan.workerHeap);
  const ctl = new Int32Array(plan.ctl);
  const shared = new SharedWorkers(ctl, new Float64Array(plan.meta), plan.maxWorkers);
  const ring = new Int32Array(plan.ring);
  const ringSize = ring.length >> 1;
  const policy = (plan.policy === "fifo" ? fifoPolicy : leastLoadedPolicy).create({}, policyContext);
  const taskTypes: ReadonlySet<string> = new Set(["bench"]);
  const stats: ThreadStats = { cpuNs: 0, decisions: 0, handOffs: 0, sleeps: 0 };
  let assignCounter = 0;
  let batch = new Int32Array(plan.batch * 2);
  let inBatch = 0;
  let tail = 0;

  const stopping = (): boolean => Atomics.load(ctl, CTL.STOP) !== 0;

  const flush = (): void => {
    if (plan.handOff !== "message" || inBatch === 0) return;
    port.postMessage(batch.subarray(0, inBatch * 2));
    stats.handOffs++;
    batch = new Int32Array(plan.batch * 2);
    inBatch = 0;
  };

  const emit = (t: number, w: number): void => {
    stats.decisions++;
    if (plan.handOff === "message") {
      batch[inBatch * 2] = t;
      batch[inBatch * 2 + 1] = w;
      if (++inBatch === plan.batch) flush();
      return;
    }
    while (tail - Atomics.load(ctl, CTL.RING_HEAD) >= ringSize) {
      Atomics.store(ctl, CTL.THREAD_WAITING_ROOM, 1);
      const head = Atomics.load(ctl, CTL.RING_HEAD);
      if (tail - head >= ringSize) Atomics.wait(ctl, CTL.RING_HEAD, head, 5);
      Atomics.store(ctl, CTL.THREAD_WAITING_ROOM, 0);
      if (stopping()) return;
    }
    const at = (tail % ringSize) * 2;
    ring[at] = t;
    ring[at + 1] = w;
    Atomics.store(ctl, CTL.RING_TAIL, ++tail);
    // Wake the main thread only when it said it sleeps (it re-checks the tail after saying so).
    if (Atomics.load(ctl, CTL.MAIN_SLEEPING) === 1 && Atomics.compareExchange(ctl, CTL.MAIN_SLEEPING, 1, 0) === 1) {
      Atomics.notify(ctl, CTL.RING_TAIL, 1);
      stats.handOffs++;
    }
  };

  /** Rekey after an assignment, as MainScheduler.rekey does: back in the heap while it has a free slot. */
  const rekey = (w: number): void => {
    if (shared.running[w]! >= shared.capacity[w]!) return;
    shared.handle[w] = workers.push(policy.workerKey(shared.view(w, taskTypes)), w);
  };

  const cpu0 = threadCpuNs();
  port.postMessage({ ready: true });
  outer: while (!stopping()) {
    // As MainScheduler.turn: only pop a task while some worker is free.
    if (workers.size === 0) {
      flush();
      stats.sleeps++;
      const w = workers.popWait(20);
      if (w < 0) continue;
      // Popped only to wait for a free worker: put it back with its current key.
      shared.acquire(w);
      shared.handle[w] = -1;
      rekey(w);
      shared.release(w);
    }
    let t = tasks.pop();
    if (t < 0) {
      flush();
      stats.sleeps++;
      t = tasks.popWait(20);
      if (t < 0) continue;
    }
    const typeBit = 1 << tasks.lastA;
    // pickWorker: pop until a worker passes the built-in filter (type and a free slot).
    const rejected: number[] = [];
    let chosen = -1;
    while (chosen < 0) {
      let w = workers.pop();
      if (w < 0) {
        flush();
        stats.sleeps++;
        w = workers.popWait(20);
        if (w < 0) {
          if (stopping()) break outer;
          continue;
        }
      }
      shared.acquire(w);
      shared.handle[w] = -1;
      if ((shared.types[w]! & typeBit) !== 0 && shared.running[w]! < shared.capacity[w]!) {
        chosen = w;
        break;
      }
      shared.release(w);
      rejected.push(w);
    }
    for (const w of rejected) {
      shared.acquire(w);
      rekey(w);
      shared.release(w);
    }
    shared.running[chosen]!++;
    shared.lastAssignedSeq[chosen] = ++assignCounter;
    rekey(chosen);
    shared.release(chosen);
    emit(t, chosen);
  }
  flush();
  stats.cpuNs = threadCpuNs() - cpu0;
  port.postMessage({ stats });
}

if (parentPort && workerData && (workerData as { kind?: string }).kind === "scheduler-thread") {
  run((workerData as { plan: ThreadPlan }).plan);
}
