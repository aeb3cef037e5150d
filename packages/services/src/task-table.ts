/**
 * The task table: every unfinished task in memory, indexed by ID, by idempotency key, by its
 * small integer id in the shared-memory task heap, and by the worker holding it; the task heap
 * itself (the queue, in policy order) with parked tasks beside it; and the count of tasks per
 * state (task-tally.ts). It changes no task's state: the task lifecycle does (task-lifecycle.ts).
 * Each live task points at its tenant's account, counted in while tracked (docs/adr/0013-tenants.md).
 *
 * Two tiers (docs/adr/0030-off-heap-queued-tasks.md): a plain task waiting in the heap is kept
 * *cold*, compactly in typed arrays (cold-tasks.ts), with no object of its own; it is thawed back
 * into a {@link LiveTask} when it is popped, looked up by ID or heap id, or walked over. Only
 * what is in flight, or unusual, is a JavaScript object.
 */
import { inject, injectable } from "tsyringe";
import {
  DEFAULT_HOT_QUEUE_DEPTH,
  TOKENS,
  frozenRecord,
  isFinal,
  type Clock,
  type Logger,
  type PolicyOutcome,
  type PolicyTask,
  type SchedulingPolicy,
  type TaskRecord,
  type TaskStore,
  type TaskflowConfig,
  type TimerHandle,
} from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { ColdTasks, isPlain, recordKeeperOf, type RecordKeeper } from "./cold-tasks.js";
import { HeldTasks } from "./held-tasks.js";
import { type TenantAccount } from "./tenants.js";
import type { TaskLimits } from "./limits.js";
import { PolicyHooks, type WorkerViewSource } from "./policy-hooks.js";
import { TaskTally } from "./task-tally.js";

/** What the policy knows of a task: nothing, that it is queued (keyed), or that a worker holds it. */
export const PolicySeen = { None: 0, Queued: 1, Held: 2 } as const;
export type PolicySeen = (typeof PolicySeen)[keyof typeof PolicySeen];

/** A task that has not finished, with its place in the heap. */
export interface LiveTask {
  readonly rec: TaskRecord;
  /** Its tenant's account: counts it while it is unfinished, and holds its result subscribers. */
  readonly account: TenantAccount;
  /** Its id in the task heap. */
  readonly idx: number;
  /** Task heap handle while queued, else -1. */
  handle: number;
  /** Its task heap key, kept to push it back after parking. */
  key: number;
  enqueuedAt: number;
  /** Due-time heap handle while a delayed task waits for its time (see DelayedTasks), else -1. */
  dueHandle: number;
  /** Set while it waits for a worker that can take it (see Scheduler). */
  parked: boolean;
  /** What the policy was told of it: the hooks fire on its changes (docs/adr/0004-policy-contract.md). */
  policySeen: PolicySeen;
  retryTimer: TimerHandle | undefined;
  timeoutTimer: TimerHandle | undefined;
  /**
   * A task graph's dependent, once its dependencies finished: their outcomes as the assignment
   * carries them (`Assignment.dependency_results`), set by Dependencies; else undefined.
   */
  dependencyResults: Uint8Array | undefined;
  /** Its rate and concurrency limits (see Limits); undefined when no rule fits it, the plain path. */
  limits: TaskLimits | undefined;
}

@injectable()
export class TaskTable {
  /** Hot tasks: every unfinished task that is not cold. */
  private readonly live = new Map<string, LiveTask>();
  /** Heap id -> hot task; ids are recycled through `freeIdx` (a cold task's id stays taken). */
  private readonly byIdx: (LiveTask | undefined)[] = [];
  private readonly freeIdx: number[] = [];
  /** By `<tenant>\n<idempotency key>` (keys are scoped per tenant; tenant names hold no newline). */
  private readonly liveByKey = new Map<string, LiveTask>();
  /** Queued plain tasks, compactly; undefined when the store keeps every record object and cannot let go of some. */
  private readonly cold: ColdTasks<TenantAccount> | undefined;
  /** The store, when it keeps record objects (the memory store): told when a record goes cold and comes back. */
  private readonly keeper: RecordKeeper | undefined;
  /** Worker ID → tasks it holds, so a lost worker's tasks are found without a scan. */
  readonly held = new HeldTasks<LiveTask>();
  /** The submission sequence and the count of tasks per state. */
  readonly tally: TaskTally;
  /** The policy's lifecycle hooks and read-only views, shared with the scheduler. */
  readonly hooks: PolicyHooks;
  /** `control.hotQueueDepth`: tasks queued while the heap holds no more than this stay hot. */
  private readonly hotQueueDepth: number;

  constructor(
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.TaskHeap) private readonly heap: IndexedHeap,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Logger) logger?: Logger,
    @inject(TOKENS.TaskStore) store?: Pick<TaskStore, "keepsRecords"> & Partial<RecordKeeper>,
    @inject(TOKENS.Config) config?: { readonly control: Pick<TaskflowConfig["control"], "hotQueueDepth"> },
  ) {
    this.hotQueueDepth = config?.control.hotQueueDepth ?? DEFAULT_HOT_QUEUE_DEPTH;
    this.hooks = new PolicyHooks(policy, logger);
    this.tally = new TaskTally(clock);
    this.keeper = store?.keepsRecords ? recordKeeperOf(store) : undefined;
    this.cold = store && (!store.keepsRecords || this.keeper) ? coldTasksFor(heap.capacity, logger) : undefined;
    if (this.cold) this.keeper?.attachCold(this.cold);
  }

  /** Unfinished tasks (queued, parked, with a worker, waiting out a backoff), cold ones included. */
  get size(): number {
    return this.live.size + (this.cold?.size ?? 0);
  }

  /** Most unfinished tasks the heap has room for. */
  get capacity(): number {
    return this.heap.capacity;
  }

  /** Tasks in the heap now (queued and not parked). */
  get inHeap(): number {
    return this.heap.size;
  }

  /**
   * Unfinished tasks: every one (`"all"`, cold ones thawed as the walk reaches them), only the
   * hot ones (`"hot"`: a cold task has no timers, limits or worker), or those whose record
   * matches (a cold one is read in place and thawed only when it matches).
   */
  *liveTasks(which: "all" | "hot" | ((rec: TaskRecord) => boolean) = "all"): IterableIterator<LiveTask> {
    const where = typeof which === "function" ? which : undefined;
    for (const live of this.live.values()) if (!where || where(live.rec)) yield live;
    if (!this.cold || which === "hot") return;
    for (const idx of this.cold.heapIds()) if (!where || where(this.cold.record(idx))) yield this.thaw(idx);
  }

  get(taskId: string): LiveTask | undefined {
    const hot = this.live.get(taskId);
    if (hot || !this.cold) return hot;
    const idx = this.cold.find(taskId);
    return idx < 0 ? undefined : this.thaw(idx);
  }

  /** The live task of `tenant` with this idempotency key (such a task is never cold). */
  byIdempotencyKey(tenant: string, key: string): LiveTask | undefined {
    return this.liveByKey.get(`${tenant}\n${key}`);
  }

  /** The task enters the table; `account` is its tenant's (`rec.tenant`), which counts it until {@link untrack}. */
  track(rec: TaskRecord, account: TenantAccount): LiveTask {
    const idx = this.freeIdx.length ? this.freeIdx.pop()! : this.byIdx.length;
    account.unfinished++;
    const live = liveTask(rec, account, idx);
    this.byIdx[idx] = live;
    this.live.set(rec.id, live);
    if (rec.idempotencyKey) this.liveByKey.set(`${rec.tenant}\n${rec.idempotencyKey}`, live);
    return live;
  }

  /** The task finished: it leaves the table and the heap. */
  untrack(live: LiveTask): void {
    this.policyLeft(live);
    if (live.handle >= 0) this.heap.remove(live.handle);
    live.handle = -1;
    live.parked = false;
    this.unhold(live);
    this.live.delete(live.rec.id);
    this.byIdx[live.idx] = undefined;
    this.freeIdx.push(live.idx);
    live.account.unfinished--;
    if (live.rec.idempotencyKey) {
      const key = `${live.rec.tenant}\n${live.rec.idempotencyKey}`;
      if (this.liveByKey.get(key) === live) this.liveByKey.delete(key);
    }
  }

  /**
   * A task just queued may go cold: when the queue is deeper than `control.hotQueueDepth`, it is
   * plain (cold-tasks.ts `isPlain`) and nothing but the heap refers to it (no timer, limit, delay
   * or dependency). Its record and live task are dropped; callers must not keep them. A short
   * queue stays hot: freezing and thawing took ~17 % of the control node's CPU under a burst
   * (ADR 0030, amendment), 4–5 µs of a task's ~25.
   */
  compact(live: LiveTask): void {
    if (!this.cold || live.handle < 0 || live.parked || live.dueHandle >= 0 || live.limits || live.dependencyResults) return;
    if (live.retryTimer || live.timeoutTimer || live.policySeen !== PolicySeen.Queued || !isPlain(live.rec)) return;
    // Last: reading the heap's size takes its lock.
    if (this.heap.size <= this.hotQueueDepth) return;
    if (!this.cold.freeze(live.idx, live.rec, live)) return;
    this.live.delete(live.rec.id);
    this.byIdx[live.idx] = undefined;
    this.keeper?.released(live.rec, live.idx);
  }

  /** A cold task becomes hot again: a new record and live task, in the heap where it was. */
  private thaw(idx: number): LiveTask {
    const t = this.cold!.thaw(idx);
    const live = liveTask(t.rec, t.account, idx);
    live.handle = t.handle;
    live.key = t.key;
    live.enqueuedAt = t.enqueuedAt;
    live.policySeen = PolicySeen.Queued;
    this.byIdx[idx] = live;
    this.live.set(t.rec.id, live);
    this.keeper?.adopted(t.rec, idx);
    return live;
  }

  // ---- the queue ---------------------------------------------------------------------------

  /** Puts a task into the heap, at the place the policy's key gives it. */
  enqueue(live: LiveTask): void {
    // Back from a worker without passing through unhold (recovery's re-adoption paths).
    if (live.policySeen === PolicySeen.Held) this.policyLeft(live);
    live.enqueuedAt = this.clock.now();
    live.key = this.policy.taskKey(policyView(live));
    live.policySeen = PolicySeen.Queued;
    live.parked = false;
    live.handle = this.heap.push(live.key, live.idx);
  }

  /** The live task with this heap id (the task heap's and the due-time heap's), if any; a cold one is thawed. */
  byHeapId(idx: number): LiveTask | undefined {
    return this.byIdx[idx] ?? (this.cold?.has(idx) ? this.thaw(idx) : undefined);
  }

  /** Takes the next task in policy order out of the heap, skipping ids of tasks no longer queued. */
  popQueued(): LiveTask | undefined | null {
    const idx = this.heap.pop();
    if (idx < 0) return null;
    const live = this.byHeapId(idx);
    if (!live || live.rec.state !== "queued") return undefined;
    live.handle = -1;
    return live;
  }

  /** Puts a popped task aside because no worker can take it now; the reason shows in `get`. */
  park(live: LiveTask, reason: string): void {
    live.handle = -1;
    live.parked = true;
    if (live.rec.waitingReason !== reason) live.rec.waitingReason = reason;
  }

  /** Puts a parked task back into the heap. */
  unpark(live: LiveTask): void {
    if (!live.parked || live.rec.state !== "queued") return;
    live.parked = false;
    live.handle = this.heap.push(live.key, live.idx);
  }

  /** How many tasks pop before this queued one, counting at most `limit`; -1 when it is not in the heap. */
  countAhead(live: LiveTask, limit: number): number {
    return live.handle >= 0 ? this.heap.countAhead(live.handle, limit) : -1;
  }

  // ---- who holds what ------------------------------------------------------------------------

  /** The task left its worker's hands. */
  unhold(live: LiveTask): void {
    this.policyLeft(live);
    this.held.remove(live, live.rec.workerId);
  }

  /**
   * The task went to a worker, or was recovered as with one after a restart (`worker` is then
   * only its ID): the policy hears it through `onAssigned`. Views are built only for a policy
   * that has the hook, so the assignment path costs nothing more without one.
   */
  assigned(live: LiveTask, worker: WorkerViewSource | string): void {
    live.policySeen = PolicySeen.Held;
    if (!this.policy.onAssigned) return;
    this.hooks.assigned(policyView(live), typeof worker === "string" ? this.hooks.absentWorker(worker) : this.hooks.worker(worker));
  }

  /** The policy hears that a task it was told about left a worker, or the queue by a cancel. */
  private policyLeft(live: LiveTask): void {
    const seen = live.policySeen;
    if (seen === PolicySeen.None) return;
    live.policySeen = PolicySeen.None;
    const state = live.rec.state;
    const outcome: PolicyOutcome = isFinal(state) ? (state as PolicyOutcome) : "requeued";
    // A queued task leaves the queue only by assignment (onAssigned) or a cancel.
    if ((seen === PolicySeen.Queued && outcome !== "cancelled") || !this.policy.onFinished) return;
    this.hooks.finished(policyView(live), outcome);
  }
}

/**
 * The cold table for `capacity` tasks, or undefined when its arrays (~92 bytes a task, reserved,
 * resident only as used) cannot be had: every task then stays a full object, as before ADR 0030.
 */
function coldTasksFor(capacity: number, logger: Logger | undefined): ColdTasks<TenantAccount> | undefined {
  try {
    return new ColdTasks(capacity);
  } catch (err) {
    logger?.warn(
      { capacity, err: err instanceof Error ? err.message : String(err) },
      "cannot reserve the compact table for queued tasks (control.taskHeapCapacity); every queued task stays a JavaScript object, ~1 KB each: lower control.taskHeapCapacity to get it back",
    );
    return undefined;
  }
}

function liveTask(rec: TaskRecord, account: TenantAccount, idx: number): LiveTask {
  return {
    rec,
    account,
    idx,
    handle: -1,
    dueHandle: -1,
    key: 0,
    enqueuedAt: 0,
    parked: false,
    policySeen: PolicySeen.None,
    retryTimer: undefined,
    timeoutTimer: undefined,
    dependencyResults: undefined,
    limits: undefined,
  };
}

/** The policy's view of a task: frozen, its maps frozen copies (never the record's own). */
export function policyView(live: LiveTask): PolicyTask {
  const rec = live.rec;
  return Object.freeze({
    id: rec.id,
    type: rec.type,
    priority: rec.priority,
    seq: rec.seq,
    attempt: rec.attempt,
    createdAt: rec.createdAt,
    enqueuedAt: live.enqueuedAt,
    requiredLabels: frozenRecord(rec.requiredLabels),
    expectedDurationMs: rec.expectedDurationMs,
    tenant: rec.tenant,
    clientId: rec.clientId,
    metadata: frozenRecord(rec.metadata),
    deadline: rec.deadline ?? 0,
  });
}
