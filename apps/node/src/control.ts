/**
 * Assembles the control role from its parts with tsyringe: config, logger, store, policy,
 * heaps, PLM, Register, Scheduler and the gRPC server. This is the only place that knows which
 * implementation backs each contract.
 */
import "reflect-metadata";
import { container as rootContainer, type DependencyContainer } from "tsyringe";
import { TOKENS, systemClock, type Logger, type PolicyDefinition, type TaskStore, type TaskflowConfig } from "@taskflow/core";
import {
  ControlServer,
  LocalEventBus,
  MainScheduler,
  MemoryTaskStore,
  loadPolicy,
  ProcessLifecycleManager,
  WorkerRegister,
} from "@taskflow/services";
import { IndexedHeap } from "@taskflow/shm-heap";
import path from "node:path";
import { controlListenError, storeOpenError } from "./startup-errors.js";
import { serverSecurity } from "./security.js";
import { BUILT_IN_POLICIES } from "./policies.js";

export interface ControlNode {
  readonly port: number;
  readonly container: DependencyContainer;
  stop(): Promise<void>;
}

/** The store the config names, with its options. Exported for tests. */
export async function createStore(config: TaskflowConfig, baseDir: string): Promise<TaskStore> {
  if (config.store.kind === "sqlite") {
    const { SqliteTaskStore } = await import("@taskflow/store-sqlite");
    const { synchronous, groupCommitMaxDelayMs, writer } = config.store;
    return new SqliteTaskStore({ path: path.resolve(baseDir, config.store.path), synchronous, groupCommitMaxDelayMs, writer });
  }
  return new MemoryTaskStore({ maxFinishedTasks: config.store.maxFinishedTasks });
}

export async function startControl(config: TaskflowConfig, baseDir: string, logger: Logger): Promise<ControlNode> {
  // First: a certificate or tokens file that cannot be read stops the node before anything opens.
  const security = serverSecurity(config, baseDir, logger);
  const definition: PolicyDefinition = await loadPolicy(config.scheduler.policy, config.scheduler.policyOptions, baseDir, BUILT_IN_POLICIES);
  const policy = definition.create(definition.parseOptions(config.scheduler.policyOptions), {
    now: () => Date.now(),
    logger: {
      debug: (message, fields) => logger.debug(fields ?? {}, message),
      info: (message, fields) => logger.info(fields ?? {}, message),
      warn: (message, fields) => logger.warn(fields ?? {}, message),
    },
  });
  const store = await createStore(config, baseDir);
  await store.open().catch((err: unknown) => {
    throw storeOpenError(err, path.resolve(baseDir, config.store.path));
  });
  const backing = config.control.heapBacking;
  const tag = `taskflow-${process.pid}-${Date.now().toString(36)}`;
  const taskHeap = IndexedHeap.create({ capacity: config.control.taskHeapCapacity, backing, name: `${tag}-tasks` });
  const workerHeap = IndexedHeap.create({ capacity: config.control.workerHeapCapacity, backing, name: `${tag}-workers` });

  const container = rootContainer.createChildContainer();
  container.register(TOKENS.Config, { useValue: config });
  container.register(TOKENS.Logger, { useValue: logger });
  container.register(TOKENS.Clock, { useValue: systemClock });
  container.register(TOKENS.TaskStore, { useValue: store });
  container.register(TOKENS.SchedulingPolicy, { useValue: policy });
  container.register(TOKENS.TaskHeap, { useValue: taskHeap });
  container.register(TOKENS.WorkerHeap, { useValue: workerHeap });
  container.register(TOKENS.Security, { useValue: security });
  container.registerSingleton(TOKENS.EventBus, LocalEventBus);
  container.registerSingleton(TOKENS.Plm, ProcessLifecycleManager);
  container.registerSingleton(TOKENS.Register, WorkerRegister);
  container.registerSingleton(TOKENS.Scheduler, MainScheduler);
  container.registerSingleton(ControlServer);

  const plm = container.resolve<ProcessLifecycleManager>(TOKENS.Plm);
  const register = container.resolve<WorkerRegister>(TOKENS.Register);
  const scheduler = container.resolve<MainScheduler>(TOKENS.Scheduler);
  const server = container.resolve(ControlServer);

  await plm.start();
  register.start();
  scheduler.start();
  const port = await server.listen().catch((err: unknown) => {
    throw controlListenError(err, config.control.host, config.control.port);
  });
  logger.info(
    { address: `${config.control.host}:${port}`, policy: definition.name, store: store.kind, heapBacking: backing },
    "control node listening",
  );

  let stopped = false;
  return {
    port,
    container,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await scheduler.stop();
      register.stop();
      await plm.stop();
      await store.close();
      taskHeap.close();
      workerHeap.close();
    },
  };
}
