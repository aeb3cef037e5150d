/**
 * `npm run bench:scheduler -w @taskflow/services`: does the scheduler loop go faster on its own
 * worker thread over the shared task and worker heaps than on the main thread? Prints JSON.
 *
 * Both variants run the control node's real hot path: the real ProcessLifecycleManager (task
 * records, epochs, store writes, result delivery), WorkerRegister, MemoryTaskStore, `IndexedHeap`
 * (`"sab"`, the default backing) and policies, and the gRPC I/O as protobuf-es work with the real
 * schemas: decoding `SubmitTasksRequest`s and heartbeats with results, encoding
 * `SubmitTasksResponse`s, `SessionResponse{assign}` per worker per turn and
 * `SubscribeResultsResponse`s. A closed-loop client keeps `OUTSTANDING` tasks unfinished;
 * simulated workers finish what they were sent on the next event-loop turn (their own CPU is not
 * counted: a heartbeat's bytes are a template of the same size, its task ids are the real ones).
 *
 * - `main`: the real MainScheduler on the main thread.
 * - `thread-ring`: the loop of `scheduler-thread-loop.ts` on a worker thread; decisions come back
 *   through a SharedArrayBuffer ring of (task id, worker id) pairs; the main thread records each
 *   assignment in the PLM and encodes it. Completions update worker keys in the shared worker heap
 *   from the main thread.
 * - `thread-message`: the same, decisions posted in batches with `postMessage`.
 *
 * Rounds alternate the variants; medians are reported. Benchmark code only.
 */
import "reflect-metadata";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { defaultConfig, systemClock, type Logger, type PolicyContext, type SchedulingPolicy, type TaskflowConfig } from "@taskflow/core";
import { IndexedHeap } from "@taskflow/shm-heap";
import { fifoPolicy } from "@taskflow/policy-fifo";
import { leastLoadedPolicy } from "@taskflow/policy-least-loaded";
import {
  SessionRequestSchema,
  SessionResponseSchema,
  SubmitTasksRequestSchema,
  SubmitTasksResponseSchema,
  SubscribeResultsResponseSchema,
  create,
  fromBinary,
  toBinary,
} from "@taskflow/proto";
import { ProcessLifecycleManager } from "../plm.js";
import { MainScheduler } from "../scheduler.js";
import { WorkerRegister, type OutgoingAssignment, type WorkerEntry, type WorkerSessionPort } from "../register.js";
import { MemoryTaskStore } from "../memory-store.js";
import { LocalEventBus } from "../events.js";
import { outcomeToWire, specFromWire } from "../convert.js";
import { CTL, SharedWorkers, threadCpuNs, type HandOff, type ThreadPlan, type ThreadStats } from "./scheduler-thread-loop.js";

type Variant = "main" | "thread-ring" | "thread-message";
type PolicyName = "fifo" | "least-loaded";

const arg = (name: string, fallback: number): number => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.slice(name.length + 3)) : fallback;
};
const TASKS = arg("tasks", 200_000);
const ROUNDS = arg("rounds", 3);
const WORKERS = arg("workers", 32);
const SLOTS = arg("slots", 8);
const PREFETCH = arg("prefetch", 8);
const BATCH = arg("batch", 1000);
const OUTSTANDING = arg("outstanding", 8 * BATCH);
const PAYLOAD_BYTES = arg("payload", 64);
const MESSAGE_BATCH = arg("message-batch", 256);
const RING_PAIRS = 4096;
// Atomics.waitAsync is in Node 20 but only in TypeScript's ES2024 lib (as in shm-heap).
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;
const TASK_HEAP_CAPACITY = 1 << 18;
const MAX_WORKERS = 4096;
const CLIENT_ID = "bench-client";

const silent: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const policyContext: PolicyContext = { now: () => Date.now(), logger: { debug() {}, info() {}, warn() {} } };
const makePolicy = (name: PolicyName): SchedulingPolicy => (name === "fifo" ? fifoPolicy : leastLoadedPolicy).create({}, policyContext);

// ---- wire bytes prepared before timing ------------------------------------------------------------

const payload = new Uint8Array(PAYLOAD_BYTES).map((_, i) => (i * 31) & 0xff);
const submitBytes = toBinary(
  SubmitTasksRequestSchema,
  create(SubmitTasksRequestSchema, {
    clientId: CLIENT_ID,
    specs: Array.from({ length: BATCH }, () => ({ type: "bench", payload })),
  }),
);
const templateId = "00000000-0000-4000-8000-000000000000";
/** heartbeats[k]: a worker's heartbeat carrying k results, as it arrives on the wire. */
const heartbeats: Uint8Array[] = [new Uint8Array(0)];
for (let k = 1; k <= SLOTS + PREFETCH; k++) {
  heartbeats.push(
    toBinary(
      SessionRequestSchema,
      create(SessionRequestSchema, {
        kind: {
          case: "heartbeat",
          value: {
            running: SLOTS,
            assignmentsReceived: 1_000_000n,
            results: Array.from({ length: k }, () => ({ taskId: templateId, epoch: 1n, ok: true, result: payload, error: "" })),
          },
        },
      }),
    ),
  );
}

// ---- measurement helpers --------------------------------------------------------------------------

const MAIN_SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface RunResult {
  variant: Variant;
  policy: PolicyName;
  tasks: number;
  wallMs: number;
  tasksPerSec: number;
  /** Main-thread CPU per task (ns), from the main thread's schedstat. */
  mainCpuNsPerTask: number;
  /** The whole process's CPU per task (ns): main, scheduler thread, GC and V8 helpers. */
  processCpuNsPerTask: number;
  /** Main thread event-loop utilization during the run (0 … 1). */
  mainElu: number;
  /** Scheduler thread CPU per task (ns); variants (b) only. */
  schedulerThreadCpuNsPerTask?: number;
  /** Variant main: time in MainScheduler turns minus the sends, per task (ns): what moving the loop could take off the main thread. */
  schedulerLoopNsPerTask?: number;
  /** Main-thread time building and encoding assignment messages, per task (ns). */
  sendNsPerTask: number;
  /** Ring: main-thread wake-ups; message: batches posted. */
  handOffs?: number;
  /** Times the scheduler thread had to sleep for a task or a free worker. */
  threadSleeps?: number;
  loadAvg1m: number;
}

/** The simulated network: sessions record what was sent; the pump delivers results a turn later. */
class Harness {
  readonly config: TaskflowConfig = defaultConfig();
  readonly store = new MemoryTaskStore();
  readonly events = new LocalEventBus();
  readonly taskHeap = IndexedHeap.create({ capacity: TASK_HEAP_CAPACITY });
  readonly workerHeap = IndexedHeap.create({ capacity: MAX_WORKERS });
  readonly plm: ProcessLifecycleManager;
  readonly register: WorkerRegister;
  private pending: { entry: WorkerEntry; ids: string[]; epochs: number[] }[] = [];
  private pumpScheduled = false;
  private submitted = 0;
  private finished = 0;
  private unfinished = 0;
  bytesOut = 0;
  /** Main-thread time spent building and encoding assignment messages (the "send"), ns. */
  sendNs = 0n;
  private resolveDone: () => void = () => {};
  readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    readonly policy: SchedulingPolicy,
    readonly tasks: number,
  ) {
    this.plm = new ProcessLifecycleManager(this.config, this.store, policy, this.taskHeap, this.events, silent, systemClock);
    this.register = new WorkerRegister(this.config, this.events, silent, systemClock);
  }

  /** Call after the scheduler under test wired its hooks. */
  async connectWorkers(): Promise<void> {
    await this.plm.start();
    this.plm.subscribeResults(CLIENT_ID, (outcomes) => {
      this.bytesOut += toBinary(SubscribeResultsResponseSchema, create(SubscribeResultsResponseSchema, { results: outcomes.map(outcomeToWire) })).length;
      this.finished += outcomes.length;
      this.unfinished -= outcomes.length;
      if (this.finished >= this.tasks) this.resolveDone();
      else this.armPump();
    });
    for (let w = 0; w < WORKERS; w++) {
      const self: { entry?: WorkerEntry } = {};
      const port: WorkerSessionPort = {
        assign: (assignments: readonly OutgoingAssignment[]) => {
          const t0 = process.hrtime.bigint();
          // As the server's session port: one SessionResponse{assign} per worker per turn.
          const msg = create(SessionResponseSchema, {
            kind: {
              case: "assign",
              value: {
                assignments: assignments.map((a) => ({ taskId: a.taskId, epoch: BigInt(a.epoch), type: a.type, payload: a.payload, attempt: a.attempt, timeoutMs: a.timeoutMs })),
              },
            },
          });
          this.bytesOut += toBinary(SessionResponseSchema, msg).length;
          this.pending.push({ entry: self.entry!, ids: assignments.map((a) => a.taskId), epochs: assignments.map((a) => a.epoch) });
          this.sendNs += process.hrtime.bigint() - t0;
          this.armPump();
        },
        cancel() {},
        drain() {},
        close() {},
      };
      self.entry = this.register.connect(
        { workerId: `worker-${w}`, host: "bench", pid: 1000 + w, slots: SLOTS, prefetch: PREFETCH, labels: {}, taskTypes: ["bench"] },
        port,
      );
    }
  }

  start(): void {
    this.armPump();
  }

  armPump(): void {
    if (this.pumpScheduled || this.finished >= this.tasks) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  /** One I/O turn: heartbeats with results arrive, the client submits while it has room. */
  private pump(): void {
    this.pumpScheduled = false;
    const arrived = this.pending;
    this.pending = [];
    for (const { entry, ids, epochs } of arrived) {
      for (let from = 0; from < ids.length; from += SLOTS + PREFETCH) {
        const k = Math.min(SLOTS + PREFETCH, ids.length - from);
        const msg = fromBinary(SessionRequestSchema, heartbeats[k]!);
        if (msg.kind.case !== "heartbeat") throw new Error("bad template");
        const hb = msg.kind.value;
        this.register.heartbeat(entry, entry.sent);
        this.plm.completed(
          entry.record.id,
          hb.results.map((r, j) => ({ taskId: ids[from + j]!, epoch: epochs[from + j]!, ok: r.ok, result: r.result, error: r.error })),
        );
      }
    }
    while (this.submitted < this.tasks && this.unfinished + BATCH <= OUTSTANDING) {
      const req = fromBinary(SubmitTasksRequestSchema, submitBytes);
      const n = Math.min(BATCH, this.tasks - this.submitted);
      const specs = (n === BATCH ? req.specs : req.specs.slice(0, n)).map(specFromWire);
      this.submitted += n;
      this.unfinished += n;
      void this.plm.submit(specs, req.clientId).then(({ ids }) => {
        this.bytesOut += toBinary(SubmitTasksResponseSchema, create(SubmitTasksResponseSchema, { taskIds: ids })).length;
      });
    }
  }

  /** Every task succeeded exactly once and every worker is free again. */
  async check(): Promise<void> {
    await this.plm.stop();
    const counts = await this.plm.counts();
    if (counts.succeeded !== this.tasks || this.finished !== this.tasks) throw new Error(`lost or duplicated tasks: ${JSON.stringify(counts)} finished=${this.finished}`);
    for (const e of this.register.entriesList()) if (e.record.running !== 0) throw new Error(`worker ${e.record.id} still counts ${e.record.running} running`);
  }
}

/**
 * The main-thread side of variant (b): wires the PLM's and Register's hooks like MainScheduler
 * does, applies the thread's decisions (epoch, task record, outbox) and frees worker slots in the
 * shared worker heap, under the worker's mutex, when results arrive.
 */
class ThreadFront {
  private readonly dirty = new Set<WorkerEntry>();
  private readonly taskTypes: ReadonlySet<string> = new Set(["bench"]);

  constructor(
    private readonly h: Harness,
    private readonly shared: SharedWorkers,
  ) {
    h.plm.hooks = {
      queued() {}, // the thread sleeps in popWait; a push wakes it
      released: (workerId, count) => {
        const entry = h.register.entry(workerId);
        if (entry) this.free(entry.idx, count);
      },
      cancelOnWorker() {},
      explainWait: () => "",
    };
    h.register.hooks = {
      capacity: (entry) => this.joined(entry),
      lost() {},
      unschedulable() {},
    };
  }

  private joined(entry: WorkerEntry): void {
    const s = this.shared;
    const i = entry.idx;
    s.acquire(i);
    s.capacity[i] = entry.capacity;
    s.slots[i] = entry.record.slots;
    s.joinSeq[i] = entry.joinSeq;
    s.types[i] = entry.record.taskTypes.has("bench") ? 1 : 0; // type ids: "bench" = 0, the `a` field the PLM pushes
    s.running[i] = entry.record.running;
    if (s.handle[i] === -1) s.handle[i] = this.h.workerHeap.push(this.key(i), i);
    s.release(i);
  }

  private key(i: number): number {
    return this.h.policy.workerKey(this.shared.view(i, this.taskTypes));
  }

  /** Results freed `count` slots of worker `i`: O(log n) re-key in the shared heap. */
  free(i: number, count: number): void {
    const s = this.shared;
    s.acquire(i);
    s.running[i] = Math.max(0, s.running[i]! - count);
    const entry = this.h.register.byHeapId(i)!;
    entry.record.running = s.running[i]!;
    const handle = s.handle[i]!;
    if (handle >= 0) {
      // False when the thread popped it and has not taken its mutex yet: it re-keys it itself.
      this.h.workerHeap.update(handle, this.key(i));
    } else if (s.running[i]! < s.capacity[i]!) {
      s.handle[i] = this.h.workerHeap.push(this.key(i), i);
    }
    s.release(i);
  }

  /** One decision of the thread: record it as MainScheduler.turn does. */
  apply(t: number, w: number): void {
    const live = this.h.plm.byHeapId(t);
    const entry = this.h.register.byHeapId(w);
    if (!live || live.rec.state !== "queued" || !entry) {
      this.free(w, 1);
      return;
    }
    const epoch = this.h.plm.assign(live, entry.record.id);
    const rec = live.rec;
    entry.outbox.push({ taskId: rec.id, epoch, type: rec.type, payload: rec.payload, attempt: rec.attempt, timeoutMs: rec.timeoutMs || 0 });
    entry.record.running = Atomics.load(this.shared.running, w);
    entry.lastAssignedSeq = this.shared.lastAssignedSeq[w]!;
    this.dirty.add(entry);
  }

  /** One message per worker for the decisions applied since the last flush. */
  flush(): void {
    for (const worker of this.dirty) {
      if (worker.outbox.length && worker.session) {
        worker.session.assign(worker.outbox);
        this.h.register.sentAssignments(worker, worker.outbox.length);
      }
      worker.outbox = [];
    }
    this.dirty.clear();
  }
}

async function runMain(policyName: PolicyName, tasks: number): Promise<RunResult> {
  const policy = makePolicy(policyName);
  const h = new Harness(policy, tasks);
  const scheduler = new MainScheduler(h.config, policy, h.workerHeap, h.plm, h.register, silent);
  await h.connectWorkers();
  scheduler.start();
  const result = await measure("main", policyName, h);
  // Turns include the sends (session.assign); what is left is the scheduling loop itself.
  result.schedulerLoopNsPerTask = Math.round(Number(scheduler.stats.busyNs - h.sendNs) / h.tasks);
  await scheduler.stop();
  await h.check();
  return result;
}

async function runThread(policyName: PolicyName, handOff: HandOff, tasks: number): Promise<RunResult> {
  const policy = makePolicy(policyName);
  const h = new Harness(policy, tasks);
  const { ctl: ctlBuffer, meta } = SharedWorkers.buffers(MAX_WORKERS);
  const ctl = new Int32Array(ctlBuffer);
  const shared = new SharedWorkers(ctl, new Float64Array(meta), MAX_WORKERS);
  shared.handle.fill(-1);
  const ring = new Int32Array(new SharedArrayBuffer(RING_PAIRS * 2 * 4));
  const front = new ThreadFront(h, shared);
  await h.connectWorkers();

  const plan: ThreadPlan = {
    taskHeap: h.taskHeap.shared,
    workerHeap: h.workerHeap.shared,
    ctl: ctlBuffer,
    meta,
    ring: ring.buffer as SharedArrayBuffer,
    maxWorkers: MAX_WORKERS,
    policy: policyName,
    handOff,
    batch: MESSAGE_BATCH,
  };
  const worker = new Worker(new URL("./scheduler-thread-loop.js", import.meta.url), { workerData: { kind: "scheduler-thread", plan } });
  let resolveStats: (s: ThreadStats) => void = () => {};
  const statsP = new Promise<ThreadStats>((resolve) => (resolveStats = resolve));
  const ready = new Promise<void>((resolve, reject) => {
    worker.on("error", reject);
    worker.on("message", (m: unknown) => {
      if (m instanceof Int32Array) {
        for (let k = 0; k < m.length; k += 2) front.apply(m[k]!, m[k + 1]!);
        front.flush();
      } else if ((m as { ready?: boolean }).ready) resolve();
      else if ((m as { stats?: ThreadStats }).stats) resolveStats((m as { stats: ThreadStats }).stats);
    });
  });
  await ready;

  let stopped = false;
  let head = 0;
  const drainRing = (): number => {
    const tail = Atomics.load(ctl, CTL.RING_TAIL);
    let n = 0;
    for (; head !== tail; head++, n++) {
      const at = (head % RING_PAIRS) * 2;
      front.apply(ring[at]!, ring[at + 1]!);
    }
    if (n) {
      Atomics.store(ctl, CTL.RING_HEAD, head);
      if (Atomics.load(ctl, CTL.THREAD_WAITING_ROOM)) Atomics.notify(ctl, CTL.RING_HEAD);
      front.flush();
    }
    return n;
  };
  const watchRing = async (): Promise<void> => {
    while (!stopped) {
      if (drainRing()) {
        await nextTurn();
        continue;
      }
      // Say we sleep, then look again, so a decision published meanwhile is never missed.
      Atomics.store(ctl, CTL.MAIN_SLEEPING, 1);
      const tail = Atomics.load(ctl, CTL.RING_TAIL);
      if (tail === head) {
        const wait = waitAsync(ctl, CTL.RING_TAIL, tail, 50);
        if (wait.async) await wait.value;
      }
      Atomics.store(ctl, CTL.MAIN_SLEEPING, 0);
    }
  };
  const watcher = handOff === "ring" ? watchRing() : Promise.resolve();

  const result = await measure(handOff === "ring" ? "thread-ring" : "thread-message", policyName, h);
  stopped = true;
  Atomics.store(ctl, CTL.STOP, 1);
  Atomics.notify(ctl, CTL.RING_TAIL);
  await watcher;
  const stats = await statsP;
  await worker.terminate();
  await h.check();
  result.schedulerThreadCpuNsPerTask = Math.round(stats.cpuNs / h.tasks);
  result.handOffs = stats.handOffs;
  result.threadSleeps = stats.sleeps;
  return result;
}

async function measure(variant: Variant, policy: PolicyName, h: Harness): Promise<RunResult> {
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuNs(MAIN_SCHEDSTAT);
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  h.start();
  await h.done;
  const wallMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  const mainNs = threadCpuNs(MAIN_SCHEDSTAT) - main0;
  const cpu = process.cpuUsage(cpu0);
  return {
    variant,
    policy,
    tasks: h.tasks,
    wallMs: Math.round(wallMs),
    tasksPerSec: Math.round(h.tasks / (wallMs / 1000)),
    mainCpuNsPerTask: Math.round(mainNs / h.tasks),
    processCpuNsPerTask: Math.round(((cpu.user + cpu.system) * 1000) / h.tasks),
    mainElu: r2(elu.utilization),
    sendNsPerTask: Math.round(Number(h.sendNs) / h.tasks),
    loadAvg1m: r2(loadavg()[0]!),
  };
}

async function runVariant(variant: Variant, policy: PolicyName, tasks = TASKS): Promise<RunResult> {
  if (variant === "main") return runMain(policy, tasks);
  return runThread(policy, variant === "thread-ring" ? "ring" : "message", tasks);
}

async function main(): Promise<void> {
  const pickList = <T extends string>(name: string, all: T[]): T[] => {
    const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
    return hit ? (hit.slice(name.length + 3).split(",") as T[]).filter((x) => all.includes(x)) : all;
  };
  const variants = pickList<Variant>("variants", ["main", "thread-ring", "thread-message"]);
  const policies = pickList<PolicyName>("policies", ["fifo", "least-loaded"]);
  const rounds: RunResult[] = [];
  // Warm-up: the main thread's code paths reach optimised code before anything is counted.
  for (const v of variants) for (const policy of policies) await runVariant(v, policy, Math.min(TASKS, 30_000));
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`[bench:scheduler] round ${r + 1}/${ROUNDS}: ${variants.join(", ")} × ${policies.join(", ")}\n`);
    for (const policy of policies) {
      // Alternate the order each round so drift in the machine's load hits every variant alike.
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        rounds.push(await runVariant(v, policy));
        await nextTurn();
      }
    }
  }
  const summary: Record<string, unknown> = {};
  for (const policy of policies) {
    const pick = (v: Variant, f: (x: RunResult) => number): number => median(rounds.filter((x) => x.variant === v && x.policy === policy).map(f));
    const mainTps = pick("main", (x) => x.tasksPerSec);
    const entry: Record<string, unknown> = {};
    for (const v of variants) {
      entry[v] = {
        tasksPerSec: pick(v, (x) => x.tasksPerSec),
        mainCpuNsPerTask: pick(v, (x) => x.mainCpuNsPerTask),
        processCpuNsPerTask: pick(v, (x) => x.processCpuNsPerTask),
        mainElu: pick(v, (x) => x.mainElu),
        sendNsPerTask: pick(v, (x) => x.sendNsPerTask),
        ...(v === "main" ? { schedulerLoopNsPerTask: pick(v, (x) => x.schedulerLoopNsPerTask ?? 0) } : { schedulerThreadCpuNsPerTask: pick(v, (x) => x.schedulerThreadCpuNsPerTask ?? 0) }),
      };
    }
    // Ratios taken within each round, then the median: the noise of a shared machine cancels.
    const ratio = (v: Variant, f: (x: RunResult) => number): number => {
      const rs: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const inRound = rounds.filter((x) => x.policy === policy).slice(r * variants.length, (r + 1) * variants.length);
        const a = inRound.find((x) => x.variant === v)!;
        const b = inRound.find((x) => x.variant === "main");
        if (a && b) rs.push(f(a) / f(b));
      }
      return rs.length ? r2(median(rs)) : NaN;
    };
    entry.ratios = {
      threadRingVsMainThroughput: ratio("thread-ring", (x) => x.tasksPerSec),
      threadMessageVsMainThroughput: ratio("thread-message", (x) => x.tasksPerSec),
      threadRingVsMainMainCpuPerTask: ratio("thread-ring", (x) => x.mainCpuNsPerTask),
      threadMessageVsMainMainCpuPerTask: ratio("thread-message", (x) => x.mainCpuNsPerTask),
      medianMainTasksPerSec: mainTps,
    };
    summary[policy] = entry;
  }
  console.log(
    JSON.stringify(
      {
        node: process.version,
        cpus: cpus().length,
        setup: { tasks: TASKS, rounds: ROUNDS, workers: WORKERS, slots: SLOTS, prefetch: PREFETCH, submitBatch: BATCH, outstanding: OUTSTANDING, payloadBytes: PAYLOAD_BYTES, messageBatch: MESSAGE_BATCH, heapBacking: "sab" },
        summary,
        rounds,
      },
      null,
      2,
    ),
  );
}

await main();
