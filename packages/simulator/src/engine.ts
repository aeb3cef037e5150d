/**
 * The replay: a trace's tasks go through the control plane's real parts — spec validation, the
 * tenants' accounts, the task table and its shared-memory heap, the task lifecycle, the worker
 * register and the `MainScheduler` with the policy — built with tsyringe from the same tokens as
 * `apps/node/src/control.ts`, on a {@link VirtualClock}. Only the edges are simulated: no gRPC
 * and no PLM (arrivals are admitted the way its submit admits a stored batch), a store that
 * keeps nothing, and workers that are a slot count and a local queue, running each task for its
 * trace duration. See docs/adr/0023-policy-simulator.md.
 */
import "reflect-metadata";
import { container as rootContainer } from "tsyringe";
import {
  TASK_STATES,
  TOKENS,
  parseConfig,
  type Logger,
  type PolicyDefinition,
  type SchedulingPolicy,
  type TaskCounts,
  type TaskPage,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  type TaskflowConfigInput,
  type WorkerResult,
} from "@taskflow/core";
import {
  type DelayedTasks,
  LoopInbox,
  type MainScheduler,
  type Recovery,
  type StoreWriteBehind,
  type TaskLifecycle,
  type TaskTable,
  type Tenants,
  type WorkerRegister,
  registerSchedulingParts,
  validateSpec,
  type OutgoingAssignment,
  type WorkerSessionPort,
} from "@taskflow/services";
import { IndexedHeap } from "@taskflow/shm-heap";
import type { SimTask } from "./trace.js";
import { VirtualClock } from "./virtual-clock.js";

/** The simulated workers: `count` workers of `slots` slots, each also taking `prefetch` tasks ahead. */
export interface SimCluster {
  /** @defaultValue 4 */
  workers: number;
  /** Tasks a worker runs at once. @defaultValue 8 */
  slots: number;
  /**
   * Tasks a worker takes beyond its free slots and queues locally, as `WorkerOptions.prefetch`
   * does; those are out of the policy's hands. @defaultValue 0
   */
  prefetch: number;
}

export interface SimulateOptions {
  /** The policy, as `loadPolicy` returns it (or a built-in package's default export). */
  policy: PolicyDefinition;
  /** `scheduler.policyOptions` for it. @defaultValue {} */
  policyOptions?: unknown;
  /** @defaultValue 4 workers × 8 slots, no prefetch */
  cluster?: Partial<SimCluster>;
  /** Control-plane config on top of the simulator's (no timeouts, a heap as large as the trace). @defaultValue none */
  config?: TaskflowConfigInput;
}

/** What happened to each task, by its index in the trace's task list. */
export interface SimRun {
  readonly policy: string;
  readonly cluster: SimCluster;
  /** Tenant names; `tenantOf[i]` indexes this. */
  readonly tenants: readonly string[];
  readonly tenantOf: Uint16Array;
  /** Epoch ms each task arrived, started (on a simulated slot) and finished; NaN if it never did. */
  readonly arrived: Float64Array;
  readonly started: Float64Array;
  readonly finished: Float64Array;
  /** First arrival to last finish, ms of virtual time. */
  readonly virtualMs: number;
  /** Wall-clock ms the replay took. */
  readonly wallMs: number;
  /** CPU ms the process spent meanwhile (user + system): on a shared machine, steadier than wall time. */
  readonly cpuMs: number;
  /** Tasks that never finished (none unless the policy filters every worker out for them). */
  readonly unfinished: number;
}

/**
 * The replay's store: it keeps nothing. The task table holds what is live (as it does with any
 * store), and a replay never reads a finished task back, so 100,000 finished records need not
 * outlive their task (kept, they cost the replay more in garbage collection than the scheduling).
 */
class DiscardingStore implements TaskStore {
  readonly kind = "simulator";
  readonly durable = false;
  readonly keepsRecords = true;
  open = () => Promise.resolve();
  close = () => Promise.resolve();
  insert = () => Promise.resolve();
  update = () => Promise.resolve();
  get = () => Promise.resolve(undefined);
  findByIdempotencyKey = () => Promise.resolve(undefined);
  list = (): Promise<TaskPage> => Promise.resolve({ tasks: [], nextPageToken: "", totalSize: 0 });
  loadUnfinished = (): Promise<TaskRecord[]> => Promise.resolve([]);
  maxSeq = () => Promise.resolve(0);
  purgeFinished = () => Promise.resolve(0);
  counts = (): Promise<TaskCounts> => Promise.resolve(Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as TaskCounts);
}

const silent: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** One simulated worker: the session port the scheduler sends to, slots and a local queue. */
class SimWorker implements WorkerSessionPort {
  readonly queue: OutgoingAssignment[] = [];
  private head = 0;
  running = 0;
  constructor(
    readonly id: string,
    readonly slots: number,
    private readonly onAssigned: (worker: SimWorker) => void,
  ) {}
  assign(assignments: readonly OutgoingAssignment[]): void {
    for (const a of assignments) this.queue.push(a);
    this.onAssigned(this);
  }
  /** The next queued assignment, or undefined. */
  next(): OutgoingAssignment | undefined {
    if (this.head >= this.queue.length) return undefined;
    const a = this.queue[this.head++]!;
    // Compact now and then: the queue is a FIFO over one array.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return a;
  }
  cancel(): void {}
  drain(): void {}
  close(): void {}
}

/**
 * Replays `tasks` (arrival order) under one policy. Resolves when every task finished, or
 * when nothing is left that could happen.
 */
export async function simulate(tasks: readonly SimTask[], options: SimulateOptions): Promise<SimRun> {
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  const cluster: SimCluster = { workers: 4, slots: 8, prefetch: 0, ...options.cluster };
  const n = tasks.length;
  const start = n ? tasks[0]!.at : 0;
  const clock = new VirtualClock(start);
  const config = parseConfig({
    ...options.config,
    control: {
      // Every task of the trace may be unfinished at once.
      taskHeapCapacity: Math.max(1024, n),
      workerHeapCapacity: Math.max(64, cluster.workers),
      ...options.config?.control,
    },
  });
  const definition = options.policy;
  const policy: SchedulingPolicy = definition.create(definition.parseOptions(options.policyOptions ?? {}), {
    now: () => clock.now(),
    logger: { debug() {}, info() {}, warn() {} },
  });

  // The loop's turns run when the simulator says, not on setImmediate: a turn per virtual instant.
  const inbox = new SteppedInbox();
  // "auto" sizes from the host's memory; a replay needs room for its trace, no more.
  const taskCapacity = config.control.taskHeapCapacity === "auto" ? Math.max(1024, n) : config.control.taskHeapCapacity;
  const heaps = [
    IndexedHeap.create({ capacity: taskCapacity }),
    IndexedHeap.create({ capacity: config.control.workerHeapCapacity }),
    IndexedHeap.create({ capacity: taskCapacity }),
  ];
  const c = rootContainer.createChildContainer();
  // The values apps/node/src/control.ts registers, then the same parts (registerSchedulingParts).
  c.register(TOKENS.Config, { useValue: config });
  c.register(TOKENS.Logger, { useValue: silent });
  c.register(TOKENS.Clock, { useValue: clock });
  c.register(TOKENS.Timers, { useValue: clock });
  c.register(TOKENS.TaskStore, { useValue: new DiscardingStore() });
  c.register(TOKENS.SchedulingPolicy, { useValue: policy });
  c.register(TOKENS.TaskHeap, { useValue: heaps[0] });
  c.register(TOKENS.WorkerHeap, { useValue: heaps[1] });
  c.register(TOKENS.DueHeap, { useValue: heaps[2] });
  c.register(TOKENS.Security, { useValue: { tokens: config.auth.tokens } });
  c.register(TOKENS.MemorySampler, { useValue: { sample: () => ({ heapUsed: 0, heapLimit: 1e12, rss: 0, systemLimit: 1e12 }) } });
  c.register(TOKENS.SchedulerInbox, { useValue: inbox });
  registerSchedulingParts(c);

  const recovery = c.resolve<Recovery>(TOKENS.Recovery);
  const lifecycle = c.resolve<TaskLifecycle>(TOKENS.TaskLifecycle);
  const register = c.resolve<WorkerRegister>(TOKENS.Register);
  const scheduler = c.resolve<MainScheduler>(TOKENS.Scheduler);
  const table = c.resolve<TaskTable>(TOKENS.TaskTable);
  const accounts = c.resolve<Tenants>(TOKENS.Tenants);
  const delayed = c.resolve<DelayedTasks>(TOKENS.DelayedTasks);
  const writer = c.resolve<StoreWriteBehind>(TOKENS.StoreWriteBehind);

  const tenants: string[] = [];
  const tenantIdx = new Map<string, number>();
  const tenantOf = new Uint16Array(n);
  const arrived = new Float64Array(n);
  const started = new Float64Array(n).fill(NaN);
  const finished = new Float64Array(n).fill(NaN);
  let done = 0;

  // Workers run what they were sent, oldest first, up to their slots; a slot frees at the task's
  // trace duration, reported the way a worker's heartbeat reports it (TaskReports).
  const ready = new Set<SimWorker>();
  const startQueued = (worker: SimWorker) => {
    while (worker.running < worker.slots) {
      const a = worker.next();
      if (!a) break;
      const i = Number(a.taskId);
      const now = clock.now();
      worker.running++;
      if (Number.isNaN(started[i]!)) started[i] = now;
      lifecycle.started(worker.id, a.taskId, a.epoch);
      const epoch = a.epoch;
      clock.at(now + tasks[i]!.durationMs, () => {
        worker.running--;
        finished[i] = clock.now();
        lastProgress = finished[i]!;
        done++;
        const result: WorkerResult = { taskId: a.taskId, epoch, ok: true, result: undefined, error: "" };
        lifecycle.completed(worker.id, [result]);
        ready.add(worker);
      });
    }
  };
  const types = [...new Set(tasks.map((t) => t.type))];
  const workers: SimWorker[] = [];
  for (let w = 0; w < cluster.workers; w++) {
    const worker = new SimWorker(`sim-${w + 1}`, cluster.slots, (wk) => ready.add(wk));
    workers.push(worker);
    register.connect({ workerId: worker.id, host: "sim", pid: 0, slots: cluster.slots, prefetch: cluster.prefetch, labels: {}, taskTypes: types }, worker);
  }

  await recovery.start();
  scheduler.start();
  /** Scheduler turns until quiet, then workers start what they got. */
  const settle = () => {
    do {
      inbox.runTurns();
      for (const worker of ready) startQueued(worker);
      ready.clear();
    } while (inbox.pending);
  };

  let next = 0;
  let steps = 0;
  let lastProgress = start;
  while (done < n) {
    const arrival = next < n ? tasks[next]!.at : Infinity;
    const timer = clock.nextAt() ?? Infinity;
    const t = Math.min(arrival, timer);
    if (t === Infinity) break;
    // Only timers left and no task running or finishing for a virtual day (say a policy filtered
    // every worker out for some task, while an interval keeps ticking): what is left never runs.
    if (arrival === Infinity && t > lastProgress + STALL_MS && workers.every((w) => w.running === 0)) break;
    clock.advanceTo(t);
    if (arrival === t) {
      // Every arrival of this instant, admitted per tenant as the PLM's submit admits a batch.
      const byTenant = new Map<string, TaskRecord[]>();
      const limits = { maxPayloadBytes: config.control.maxPayloadBytes, now: t };
      for (; next < n && tasks[next]!.at === t; next++) {
        const task = tasks[next]!;
        const spec = specOf(task);
        validateSpec(spec, limits);
        let ti = tenantIdx.get(task.tenant);
        if (ti === undefined) {
          tenantIdx.set(task.tenant, (ti = tenants.length));
          tenants.push(task.tenant);
        }
        tenantOf[next] = ti;
        arrived[next] = t;
        lastProgress = t;
        let fresh = byTenant.get(task.tenant);
        if (!fresh) byTenant.set(task.tenant, (fresh = []));
        // The trace index as the task ID: the simulated workers find their task's duration by it.
        fresh.push(table.tally.newRecord(spec, task.tenant, "simulator", String(next)));
      }
      for (const [tenant, fresh] of byTenant) {
        const account = accounts.account(tenant);
        accounts.admit(account, fresh.length);
        accounts.settle(account, fresh.length, true);
        lifecycle.admit(fresh, account);
      }
    }
    settle();
    // Store write-behind flushes on setImmediate: let it run now and then so its batches stay small.
    if (++steps % 4096 === 0) await new Promise((r) => setImmediate(r));
  }

  await scheduler.stop();
  register.stop();
  lifecycle.stop();
  delayed.stop();
  recovery.stop();
  await writer.stop();
  for (const heap of heaps) heap.close();
  let last = start;
  for (let i = 0; i < n; i++) if (finished[i]! > last) last = finished[i]!;
  return {
    policy: definition.name,
    cluster,
    tenants,
    tenantOf,
    arrived,
    started,
    finished,
    virtualMs: last - start,
    wallMs: performance.now() - wallStart,
    cpuMs: cpuOf(process.cpuUsage(cpuStart)),
    unfinished: n - done,
  };
}

function cpuOf(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

function specOf(task: SimTask): TaskSpec {
  return {
    type: task.type,
    payload: EMPTY,
    priority: task.priority,
    requiredLabels: task.requiredLabels ?? {},
    maxAttempts: 0,
    timeoutMs: 0,
    idempotencyKey: "",
    expectedDurationMs: task.expectedDurationMs,
    ...(task.metadata && { metadata: task.metadata }),
    ...(task.deadline !== undefined && { deadline: task.deadline }),
  };
}

const EMPTY = new Uint8Array(0);
/** Virtual time with nothing running after which a replay stops waiting for the rest. */
const STALL_MS = 86_400_000;

/**
 * The scheduler's inbox with turns on demand: `wake()` only notes that a turn is due, and the
 * simulator runs the turns at each virtual instant. What parts note (freed slots, changed
 * workers) and how the scheduler reads it stay the real `LoopInbox`'s.
 */
class SteppedInbox extends LoopInbox {
  private turnFn: (() => void) | undefined;
  pending = false;

  override drive(turn: () => void): void {
    this.turnFn = turn;
    this.pending = true;
  }

  override halt(): void {
    this.turnFn = undefined;
  }

  override wake(): void {
    if (this.turnFn) this.pending = true;
  }

  runTurns(): void {
    while (this.pending && this.turnFn) {
      this.pending = false;
      this.turnFn();
    }
  }
}
