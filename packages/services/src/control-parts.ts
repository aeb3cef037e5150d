/**
 * The control plane's parts, registered by their tokens: one list for the node's composition root
 * (apps/node/src/control.ts) and the policy simulator, so a part added here reaches both. Each
 * part gets its collaborators by constructor injection; the values they stand on (config, clock
 * and timers, the store, the policy, the heaps, security, the memory sampler, the scheduler's
 * inbox) are the caller's to register, and so are the edges (the PLM, schedules, worker
 * sessions, the gRPC server) that only a real node has.
 */
import type { DependencyContainer } from "tsyringe";
import { TOKENS } from "@taskflow/core";
import { DelayedTasks } from "./delayed-tasks.js";
import { Dependencies } from "./dependencies.js";
import { LocalEventBus } from "./events.js";
import { Limits } from "./limits.js";
import { MemoryAdmission } from "./memory-admission.js";
import { Recovery } from "./recovery.js";
import { WorkerRegister } from "./register.js";
import { ResultDelivery } from "./result-delivery.js";
import { MainScheduler } from "./scheduler.js";
import { StoreWriteBehind } from "./store-write-behind.js";
import { TaskLifecycle } from "./task-lifecycle.js";
import { TaskTable } from "./task-table.js";
import { Tenants } from "./tenants.js";
import { WorkerIndex } from "./worker-index.js";
import { WorkerPortDirectory } from "./worker-ports.js";

/** Registers the parts that schedule tasks onto workers, each as a singleton of `container`. */
export function registerSchedulingParts(container: DependencyContainer): void {
  const c = container;
  // Parts that depend on no other part.
  c.registerSingleton(TOKENS.EventBus, LocalEventBus); //        every task and worker change
  c.registerSingleton(TOKENS.ResultDelivery, ResultDelivery); // watchers, result subscribers
  c.registerSingleton(TOKENS.WorkerPorts, WorkerPortDirectory); // open sessions by worker ID
  c.registerSingleton(TOKENS.WorkerIndex, WorkerIndex); //       registered workers by ID, heap id, join order
  c.registerSingleton(TOKENS.TaskTable, TaskTable); //           live tasks, task heap, state counts
  c.registerSingleton(TOKENS.Tenants, Tenants); //               tenants' accounts, quotas, their result subscribers
  c.registerSingleton(TOKENS.DelayedTasks, DelayedTasks); //     delayed tasks until due: due-time heap, one timer
  c.registerSingleton(TOKENS.Limits, Limits); //                 rate buckets, per-key running counts, tasks they hold back
  c.registerSingleton(TOKENS.MemoryAdmission, MemoryAdmission); // memory against control.memoryBudget, sampled
  // The PLM's parts, each on the ones above it.
  c.registerSingleton(TOKENS.StoreWriteBehind, StoreWriteBehind); // batched writes, store health (Durability)
  c.registerSingleton(TOKENS.Dependencies, Dependencies); //     task graphs: dependents until their dependencies finish
  c.registerSingleton(TOKENS.TaskLifecycle, TaskLifecycle); //   the task state machine (TaskReports, LostWorkerTasks)
  c.registerSingleton(TOKENS.Recovery, Recovery); //             restart reload, re-adoption, reconcile
  // Workers and the scheduler.
  c.registerSingleton(TOKENS.Register, WorkerRegister); //       workers, liveness, their load
  c.registerSingleton(TOKENS.Scheduler, MainScheduler); //       the loop: tasks onto workers
}
