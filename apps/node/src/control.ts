/**
 * The composition root of the control plane: the one place that knows which implementation
 * backs each contract, and builds them all with tsyringe. Every part gets its collaborators
 * through its constructor (`@inject(TOKENS.X)`), as narrow interfaces; no part mutates another
 * or looks anything up later. Reading the registrations below top to bottom shows the whole
 * control plane, in dependency order (docs/adr/0015-the-control-plane.md draws it).
 */
import "reflect-metadata";
import { container as rootContainer } from "tsyringe";
import { TOKENS, systemClock, systemTimers, type EventBus, type Leadership, type Logger, type PolicyDefinition, type ScheduleStore, type TaskStore, type TaskflowConfig } from "@taskflow/core";
import {
  ControlServer,
  type DelayedTasks,
  type Limits,
  LoopInbox,
  type MainScheduler,
  type MemoryAdmission,
  MemoryTaskStore,
  ProcessLifecycleManager,
  type Recovery,
  Schedules,
  type StoreWriteBehind,
  type TaskLifecycle,
  type TaskTable,
  type WorkerIndex,
  type WorkerRegister,
  WorkerSessions,
  loadPolicy,
  processMemorySampler,
  registerSchedulingParts,
  taskHeapCapacityOf,
} from "@taskflow/services";
import type { Authenticator } from "@taskflow/services/auth";
import type { ControlView } from "@taskflow/monitoring";
import { IndexedHeap } from "@taskflow/shm-heap";
import path from "node:path";
import { TraceRecorder } from "@taskflow/simulator/trace";
import { controlListenError, heapCreateError, storeOpenError, traceFileError } from "./startup-errors.js";
import { postgresOpenError, postgresSsl } from "./postgres-config.js";
import { serverSecurity } from "./security.js";
import { BUILT_IN_POLICIES } from "./policies.js";

/** A running control role, and what monitoring reads from it. */
export interface ControlNode {
  readonly port: number;
  /** The parts monitoring reads (metrics, dashboard), as a narrow view. */
  readonly view: ControlView;
  /** Every task transition and worker change. */
  readonly events: EventBus;
  /** The control server's tokens: the dashboard and metrics accept the same ones. */
  readonly auth: Authenticator;
  stop(): Promise<void>;
}

/** What a node with `ha.enabled` adds when it starts the control plane as the leader (apps/node/src/ha.ts). */
export interface LeaderContext {
  /** The lease's epoch, undefined once it may have expired: every store write is fenced with it (ADR 0016). */
  leaderEpoch: () => number | undefined;
  /** The node's role, epoch and leader address, for GetClusterState. */
  leadership: Leadership;
  /** Heaps allocated while a standby ({@link allocateHeaps}); closed by the node's stop as usual. */
  heaps?: ControlHeaps;
  /** Called once everything is loaded, just before the control port is bound: the standby server frees it. */
  beforeListen?: () => Promise<void>;
}

const SINGLE: Leadership = { current: () => ({ role: "single", epoch: 0, leader: "" }) };

/** The control plane's shared-memory heaps. */
export interface ControlHeaps {
  taskHeap: IndexedHeap;
  workerHeap: IndexedHeap;
  /** Delayed tasks by due time. */
  dueHeap: IndexedHeap;
}

/**
 * Allocates the heaps in full now: a capacity this host cannot hold stops the start, naming its
 * key. A standby control node allocates them before it is elected (allocating 2^24-task heaps,
 * what `taskHeapCapacity: "auto"` gives on a host with 20 GiB or more, takes about a second,
 * with the event loop blocked).
 */
export function allocateHeaps(config: TaskflowConfig): ControlHeaps {
  const backing = config.control.heapBacking;
  const tag = `taskflow-${process.pid}-${Date.now().toString(36)}`;
  const heaps: IndexedHeap[] = [];
  const capacities = { taskHeapCapacity: taskHeapCapacityOf(config), workerHeapCapacity: config.control.workerHeapCapacity };
  const heap = (key: keyof typeof capacities, name: string): IndexedHeap => {
    try {
      const created = IndexedHeap.create({ capacity: capacities[key], backing, name: `${tag}-${name}` });
      heaps.push(created);
      return created;
    } catch (err) {
      for (const h of heaps) h.close();
      throw heapCreateError(err, `control.${key}`, capacities[key], backing);
    }
  };
  const taskHeap = heap("taskHeapCapacity", "tasks");
  const workerHeap = heap("workerHeapCapacity", "workers");
  // Every delayed task is an unfinished task, which the PLM caps at the task heap's capacity.
  const dueHeap = heap("taskHeapCapacity", "due");
  return { taskHeap, workerHeap, dueHeap };
}

/**
 * The node's stores: the tasks and the schedules, in one database (a firing's task and the
 * schedule's progress share its fate). The memory store keeps both in one object; SQLite and
 * Postgres keep their schedules in a part of their own on the same database (`.schedules`).
 * Opening and closing `tasks` opens and closes both.
 */
export interface NodeStores {
  tasks: TaskStore;
  schedules: ScheduleStore;
}

/** The stores the config names, with their options, not opened yet. Exported for tests. */
export async function createStore(config: TaskflowConfig, baseDir: string, leaderEpoch?: () => number | undefined): Promise<NodeStores> {
  if (config.store.kind === "sqlite") {
    const { SqliteTaskStore } = await import("@taskflow/store-sqlite");
    const { synchronous, groupCommitMaxDelayMs, writer } = config.store;
    const store = new SqliteTaskStore({ path: path.resolve(baseDir, config.store.path), synchronous, groupCommitMaxDelayMs, writer });
    return { tasks: store, schedules: store.schedules };
  }
  if (config.store.kind === "postgres") {
    const { PostgresTaskStore } = await import("@taskflow/store-postgres");
    const { url, poolSize, schema, groupCommitMaxDelayMs } = config.store;
    // parseConfig refuses kind "postgres" without a url.
    const store = new PostgresTaskStore({ url: url!, ssl: postgresSsl(config, baseDir), poolSize, schema, groupCommitMaxDelayMs, leaderEpoch });
    return { tasks: store, schedules: store.schedules };
  }
  const store = new MemoryTaskStore({ maxFinishedTasks: config.store.maxFinishedTasks });
  return { tasks: store, schedules: store };
}

export async function startControl(config: TaskflowConfig, baseDir: string, logger: Logger, leader?: LeaderContext): Promise<ControlNode> {
  // First: a certificate or tokens file that cannot be read stops the node before anything opens.
  const security = serverSecurity(config, baseDir, logger);
  const definition: PolicyDefinition = await loadPolicy(config.scheduler.policy, config.scheduler.policyOptions, baseDir, BUILT_IN_POLICIES);
  const policy = definition.create(definition.parseOptions(config.scheduler.policyOptions), {
    now: () => systemClock.now(),
    logger: {
      debug: (message, fields) => logger.debug(fields ?? {}, message),
      info: (message, fields) => logger.info(fields ?? {}, message),
      warn: (message, fields) => logger.warn(fields ?? {}, message),
    },
  });
  const { tasks: store, schedules: scheduleStore } = await createStore(config, baseDir, leader?.leaderEpoch);
  await store.open().catch((err: unknown) => {
    throw config.store.kind === "postgres" ? postgresOpenError(err, config.store.url!) : storeOpenError(err, path.resolve(baseDir, config.store.path));
  });
  const backing = config.control.heapBacking;
  let allocated: ControlHeaps;
  try {
    allocated = leader?.heaps ?? allocateHeaps(config);
  } catch (err) {
    store.close().catch(() => {});
    throw err;
  }
  const { taskHeap, workerHeap, dueHeap } = allocated;

  const c = rootContainer.createChildContainer();
  // Values built above: config, time, the store, the policy, the shared-memory heaps, security.
  c.register(TOKENS.Config, { useValue: config });
  c.register(TOKENS.Logger, { useValue: logger });
  c.register(TOKENS.Clock, { useValue: systemClock });
  c.register(TOKENS.Timers, { useValue: systemTimers });
  c.register(TOKENS.TaskStore, { useValue: store });
  // Schedules live in the tasks' database: a firing's task and the schedule's progress share its fate.
  c.register(TOKENS.ScheduleStore, { useValue: scheduleStore });
  c.register(TOKENS.SchedulingPolicy, { useValue: policy });
  c.register(TOKENS.TaskHeap, { useValue: taskHeap });
  c.register(TOKENS.WorkerHeap, { useValue: workerHeap });
  c.register(TOKENS.DueHeap, { useValue: dueHeap });
  c.register(TOKENS.Security, { useValue: security });
  c.register(TOKENS.Leadership, { useValue: leader?.leadership ?? SINGLE });
  c.register(TOKENS.MemorySampler, { useValue: processMemorySampler() });
  c.registerSingleton(TOKENS.SchedulerInbox, LoopInbox); //      what the scheduler acts on next turn
  // The parts that schedule tasks onto workers, listed in @taskflow/services' control-parts.ts (the policy simulator runs the same ones).
  registerSchedulingParts(c);
  // The edges only a node has.
  c.registerSingleton(TOKENS.Plm, ProcessLifecycleManager); //   the client-facing task API
  c.registerSingleton(TOKENS.Schedules, Schedules); //           recurring schedules: they submit through the PLM
  c.registerSingleton(TOKENS.WorkerSessions, WorkerSessions); // hello, heartbeats, reconcile
  c.registerSingleton(ControlServer); //                         gRPC: transport only

  const writer = c.resolve<StoreWriteBehind>(TOKENS.StoreWriteBehind);
  const lifecycle = c.resolve<TaskLifecycle>(TOKENS.TaskLifecycle);
  const delayed = c.resolve<DelayedTasks>(TOKENS.DelayedTasks);
  const limits = c.resolve<Limits>(TOKENS.Limits);
  const recovery = c.resolve<Recovery>(TOKENS.Recovery);
  const table = c.resolve<TaskTable>(TOKENS.TaskTable);
  const register = c.resolve<WorkerRegister>(TOKENS.Register);
  const workers = c.resolve<WorkerIndex>(TOKENS.WorkerIndex);
  const scheduler = c.resolve<MainScheduler>(TOKENS.Scheduler);
  const plm = c.resolve<ProcessLifecycleManager>(TOKENS.Plm);
  const memory = c.resolve<MemoryAdmission>(TOKENS.MemoryAdmission);
  const schedules = c.resolve<Schedules>(TOKENS.Schedules);
  const server = c.resolve(ControlServer);
  const events = c.resolve<EventBus>(TOKENS.EventBus);
  let recorder: TraceRecorder | undefined;
  if (config.control.traceFile) {
    const file = path.resolve(baseDir, config.control.traceFile);
    try {
      recorder = new TraceRecorder(file, events, systemClock.now());
    } catch (err) {
      await store.close().catch(() => {});
      // An elected standby's heaps are its own to keep (it allocated them before the election).
      if (!leader?.heaps) for (const h of [taskHeap, workerHeap, dueHeap]) h.close();
      throw traceFileError(err, file);
    }
  }

  await recovery.start();
  writer.start();
  register.start();
  scheduler.start();
  memory.start();
  // After recovery: a firing repeated across the restart finds its task by idempotency key.
  await schedules.start();
  await leader?.beforeListen?.();
  const port = await server.listen().catch((err: unknown) => {
    throw controlListenError(err, config.control.host, config.control.port);
  });
  logger.info(
    { address: `${config.control.host}:${port}`, policy: definition.name, store: store.kind, heapBacking: backing },
    "control node listening",
  );

  const view: ControlView = {
    plm,
    register,
    policyName: scheduler.policyName,
    queue: () => ({ inHeap: table.inHeap, parked: scheduler.parkedCount() + limits.waiting, delayed: delayed.size, capacity: table.capacity }),
    freeWorkers: () => workerHeap.size,
    workerSummary: () => {
      const s = workers.summary();
      const oldestHeartbeatAgeSeconds = s.oldestHeartbeat ? Math.max(0, (systemClock.now() - s.oldestHeartbeat) / 1000) : 0;
      return { ...s, oldestHeartbeatAgeSeconds };
    },
    firstWorkers: (limit) => workers.first(limit),
    schedulerStats: () => scheduler.stats,
    grpcErrors: () => server.errorsByCode(),
    authFailures: () => server.auth.failureCounts(),
    submitRejections: () => server.submitsRejected(),
    workersRefused: () => register.refusedHellos,
    memory: () => memory.use(),
    store: () => writer.storeHealth(),
    schedules: () => schedules.list(null),
    scheduleFirings: () => schedules.firings,
  };

  let stopped = false;
  return {
    port,
    view,
    events,
    auth: server.auth,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await scheduler.stop();
      register.stop();
      schedules.stop();
      plm.stop();
      memory.stop();
      lifecycle.stop();
      delayed.stop();
      limits.stop();
      recovery.stop();
      await writer.stop();
      await recorder?.close();
      await store.close();
      taskHeap.close();
      workerHeap.close();
      dueHeap.close();
    },
  };
}
