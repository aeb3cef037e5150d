/**
 * The control plane's parts built in one process for unit tests, the way apps/node wires them,
 * with a real memory store, real heaps and a fake clock: a test moves time with
 * `clock.advance(ms)` and never sleeps. Worker sessions are recording ports (the gRPC edge is
 * covered by the end-to-end tests).
 */
import "reflect-metadata";
import { parseConfig, type Logger, type MemorySampler, type SchedulingPolicy, type TaskflowError, type TaskflowConfigInput, type TaskRecord, type TaskSpec, type TaskStore } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { IndexedHeap } from "@taskflow/shm-heap";
import { DelayedTasks } from "./delayed-tasks.js";
import { Dependencies } from "./dependencies.js";
import { Limits } from "./limits.js";
import { LocalEventBus } from "./events.js";
import { MemoryAdmission } from "./memory-admission.js";
import { MemoryTaskStore } from "./memory-store.js";
import { ProcessLifecycleManager } from "./plm.js";
import { Recovery } from "./recovery.js";
import { WorkerRegister, type WorkerEntry } from "./register.js";
import { WorkerIndex } from "./worker-index.js";
import { ResultDelivery } from "./result-delivery.js";
import { MainScheduler } from "./scheduler.js";
import { LoopInbox } from "./scheduler-inbox.js";
import { StoreWriteBehind } from "./store-write-behind.js";
import { TaskLifecycle } from "./task-lifecycle.js";
import { TaskTable } from "./task-table.js";
import { Tenants } from "./tenants.js";
import { WorkerPortDirectory, type OutgoingAssignment, type WorkerSessionPort } from "./worker-ports.js";
import { WorkerSessions, type SessionTransport } from "./worker-sessions.js";

/**
 * Submission order, workers least recently assigned first: the built-in fifo policy's keys,
 * written out because the services know no policy package (apps/node names those).
 */
export const fifo: SchedulingPolicy = {
  name: "fifo",
  taskKey: (task) => task.seq,
  workerKey: (worker) => (worker.lastAssignedSeq > 0 ? worker.lastAssignedSeq : -(2 ** 53) + Math.max(0, worker.joinSeq)),
};

export const silent: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** A logger that keeps every line at warn and above, as `[level, message, fields]`. */
export class RecordingLogger implements Logger {
  readonly lines: [level: string, message: string, fields: object][] = [];
  trace() {}
  debug() {}
  info() {}
  warn(obj: object | string, msg?: string) {
    this.record("warn", obj, msg);
  }
  error(obj: object | string, msg?: string) {
    this.record("error", obj, msg);
  }
  child() {
    return this;
  }
  /** Messages logged at `level`. */
  messages(level = "warn"): string[] {
    return this.lines.filter((l) => l[0] === level).map((l) => l[1]);
  }
  private record(level: string, obj: object | string, msg?: string) {
    this.lines.push(typeof obj === "string" ? [level, obj, {}] : [level, msg ?? "", obj]);
  }
}

export function spec(type: string, overrides: Partial<TaskSpec> = {}): TaskSpec {
  return { type, payload: new Uint8Array(0), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, ...overrides };
}

/** A worker session that records what the control plane sent it. */
export class RecordingPort implements WorkerSessionPort {
  assigned: OutgoingAssignment[] = [];
  cancelled: { taskId: string; epoch: number; reason: string }[] = [];
  drained = false;
  closed = false;
  assign(a: readonly OutgoingAssignment[]) {
    this.assigned.push(...a);
  }
  cancel(tasks: readonly { taskId: string; epoch: number }[], reason: string) {
    for (const t of tasks) this.cancelled.push({ taskId: t.taskId, epoch: t.epoch, reason });
  }
  drain() {
    this.drained = true;
  }
  close() {
    this.closed = true;
  }
}

/** A session stream that records what the control plane sent the worker, and how it ended. */
export class RecordingTransport extends RecordingPort implements SessionTransport {
  welcomed: { workerId: string; heartbeatIntervalMs: number }[] = [];
  storedSeqs: bigint[] = [];
  failure: TaskflowError | undefined;
  welcome(workerId: string, heartbeatIntervalMs: number) {
    this.welcomed.push({ workerId, heartbeatIntervalMs });
  }
  stored(seqs: bigint[]) {
    this.storedSeqs.push(...seqs);
  }
  fail(err: TaskflowError) {
    this.failure = err;
  }
}

/**
 * The memory store behind a switch that makes its writes fail, the way a full disk does; it
 * hands out copies (keepsRecords false), so the PLM writes every change through `update`.
 */
export class SwitchableStore implements TaskStore {
  readonly kind = "switchable";
  readonly durable = true;
  readonly keepsRecords = false;
  failWrites = false;
  updateCalls = 0;
  /** While set, updates wait for it (a write in flight, as a slow disk or server keeps it). */
  holdUpdates: Promise<void> | undefined;
  constructor(private readonly inner = new MemoryTaskStore()) {}
  open() {
    return this.inner.open();
  }
  close() {
    return this.inner.close();
  }
  insert(records: readonly TaskRecord[]) {
    if (this.failWrites) return Promise.reject(new Error("disk full (test)"));
    return this.inner.insert(records.map(copy));
  }
  async update(records: readonly TaskRecord[]) {
    this.updateCalls++;
    if (this.failWrites) throw new Error("disk full (test)");
    const copies = records.map(copy);
    await this.holdUpdates;
    return this.inner.update(copies);
  }
  get(id: string) {
    return this.inner.get(id);
  }
  findByIdempotencyKey(tenant: string, key: string) {
    return this.inner.findByIdempotencyKey(tenant, key);
  }
  list(...args: Parameters<TaskStore["list"]>) {
    return this.inner.list(...args);
  }
  loadUnfinished() {
    return this.inner.loadUnfinished();
  }
  maxSeq() {
    return this.inner.maxSeq();
  }
  counts() {
    return this.inner.counts();
  }
  purgeFinished(before: number) {
    return this.inner.purgeFinished(before);
  }
}

function copy(rec: TaskRecord): TaskRecord {
  return { ...rec, attempts: rec.attempts.map((a) => ({ ...a })) };
}

/** Lets promise continuations and setImmediate turns run (the scheduler's loop, store flushes); no time passes. */
export async function settle(turns = 8): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

export interface TestControlPlane {
  readonly config: ReturnType<typeof parseConfig>;
  readonly clock: FakeClock;
  readonly store: TaskStore;
  readonly plm: ProcessLifecycleManager;
  readonly table: TaskTable;
  readonly tenants: Tenants;
  readonly lifecycle: TaskLifecycle;
  readonly delayed: DelayedTasks;
  readonly graph: Dependencies;
  readonly limits: Limits;
  readonly writer: StoreWriteBehind;
  readonly recovery: Recovery;
  readonly register: WorkerRegister;
  /** The register's workers by ID, heap id and join order. */
  readonly workers: WorkerIndex;
  readonly scheduler: MainScheduler;
  readonly sessions: WorkerSessions;
  readonly events: LocalEventBus;
  readonly memory: MemoryAdmission;
  /** A worker says hello on a new recording session. */
  join(id: string, types: string[], slots?: number): RecordingPort;
  entry(id: string): WorkerEntry;
  /**
   * Moves the fake clock and lets what its timers started run. With `heartbeats`, every
   * connected worker heartbeats (acknowledging all it was sent) every heartbeatIntervalMs on
   * the way, so only what the test is about times out.
   */
  advance(ms: number, options?: { heartbeats?: boolean }): Promise<void>;
  /** Stops the parts (not the store, which a restart test reuses). */
  stop(): Promise<void>;
}

export interface TestControlPlaneOptions {
  config?: TaskflowConfigInput;
  store?: TaskStore;
  clock?: FakeClock;
  /** Unfinished tasks the task heap holds. @defaultValue 1000 */
  heapCapacity?: number;
  /** Where the parts log. @defaultValue nowhere */
  logger?: Logger;
  /** The scheduling policy. @defaultValue {@link fifo} */
  policy?: SchedulingPolicy;
  /** What memory the admission control sees, sampled on the fake clock. @defaultValue a process far below every budget, never sampled again */
  memory?: MemorySampler;
}

/** A process far below every memory budget: 10 MB used of a 4 GB heap and 16 GB of host memory. */
const roomyMemory: MemorySampler = { sample: () => ({ heapUsed: 10e6, heapLimit: 4e9, rss: 50e6, systemLimit: 16e9 }) };

export async function startControlPlane(options: TestControlPlaneOptions = {}): Promise<TestControlPlane> {
  const config = parseConfig(options.config ?? {});
  const clock = options.clock ?? new FakeClock();
  const store = options.store ?? new MemoryTaskStore();
  const policy = options.policy ?? fifo;
  const events = new LocalEventBus();
  const log = options.logger ?? silent;
  const taskHeap = IndexedHeap.create({ capacity: options.heapCapacity ?? 1000 });
  const workerHeap = IndexedHeap.create({ capacity: config.control.workerHeapCapacity });
  const dueHeap = IndexedHeap.create({ capacity: options.heapCapacity ?? 1000 });
  // In dependency order, as apps/node/src/control.ts has tsyringe build them.
  const delivery = new ResultDelivery();
  const inbox = new LoopInbox();
  const ports = new WorkerPortDirectory();
  const table = new TaskTable(policy, taskHeap, clock, log);
  const tenants = new Tenants(config, clock, { tokens: config.auth.tokens });
  const writer = new StoreWriteBehind(config, store, delivery, inbox, log, clock, clock);
  const delayed = new DelayedTasks(dueHeap, table, inbox, clock, clock);
  const graph = new Dependencies(config, store, table, delayed, writer, inbox, clock);
  const limits = new Limits(config, table, inbox, clock, clock);
  const lifecycle = new TaskLifecycle(config, policy, table, writer, delivery, ports, inbox, events, log, clock, clock, delayed, graph, limits);
  const recovery = new Recovery(config, store, table, tenants, lifecycle, inbox, log, clock, delayed, graph, limits);
  const workers = new WorkerIndex();
  const register = new WorkerRegister(config, events, log, clock, clock, ports, lifecycle, inbox, workers);
  const scheduler = new MainScheduler(config, policy, workerHeap, table, lifecycle, register, writer, inbox, log, limits, clock, workers);
  const memory = new MemoryAdmission(config, options.memory ?? roomyMemory, clock, log);
  const plm = new ProcessLifecycleManager(config, store, policy, table, tenants, lifecycle, delivery, writer, scheduler, delayed, clock, memory, graph, limits);
  const sessions = new WorkerSessions(register, lifecycle, recovery, writer, log);
  await recovery.start();
  writer.start();
  register.start();
  scheduler.start();
  // Sampling only when the test plays memory: other tests count the fake clock's pending timers.
  if (options.memory) memory.start();
  let stopped = false;
  return {
    config,
    clock,
    store,
    plm,
    table,
    tenants,
    lifecycle,
    delayed,
    graph,
    limits,
    writer,
    recovery,
    register,
    workers,
    scheduler,
    sessions,
    events,
    memory,
    join(id, types, slots = 4) {
      const port = new RecordingPort();
      register.connect({ workerId: id, host: "h", pid: 1, slots, prefetch: 0, labels: {}, taskTypes: types }, port);
      return port;
    },
    entry(id) {
      const e = workers.get(id);
      if (!e) throw new Error(`no worker ${id}`);
      return e;
    },
    async advance(ms, { heartbeats = false } = {}) {
      if (!heartbeats) {
        clock.advance(ms);
        await settle();
        return;
      }
      const step = config.liveness.heartbeatIntervalMs;
      for (let left = ms; left > 0; left -= step) {
        for (const e of workers.entries()) if (e.link.port) register.heartbeat(e, e.sent);
        clock.advance(Math.min(step, left));
        await settle();
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      memory.stop();
      await scheduler.stop();
      register.stop();
      plm.stop();
      lifecycle.stop();
      delayed.stop();
      limits.stop();
      recovery.stop();
      await writer.stop();
      taskHeap.close();
      workerHeap.close();
      dueHeap.close();
    },
  };
}
