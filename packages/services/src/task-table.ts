/**
 * The task table: every unfinished task in memory, indexed by ID, by idempotency key, by its
 * small integer id in the shared-memory task heap, and by the worker holding it; the task heap
 * itself (the queue, in policy order) with parked tasks beside it; and the count of tasks per
 * state. It changes no task's state: the task lifecycle does (task-lifecycle.ts). Each live task
 * points at its tenant's account, counted in while tracked (docs/adr/0013-tenants.md).
 */
import { inject, injectable } from "tsyringe";
import {
  SPEC_ATTRIBUTE_KEYS,
  TASK_STATES,
  TOKENS,
  type Clock,
  type PolicyTask,
  type SchedulingPolicy,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TimerHandle,
} from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { type TenantAccount } from "./tenants.js";
import { delayedUntil, dueTime } from "./due-time.js";

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
  retryTimer: TimerHandle | undefined;
  timeoutTimer: TimerHandle | undefined;
}

@injectable()
export class TaskTable {
  private readonly live = new Map<string, LiveTask>();
  /** Heap id -> live task; ids are recycled through `freeIdx`. */
  private readonly byIdx: (LiveTask | undefined)[] = [];
  private readonly freeIdx: number[] = [];
  /** By `<tenant>\n<idempotency key>` (keys are scoped per tenant; tenant names hold no newline). */
  private readonly liveByKey = new Map<string, LiveTask>();
  /** Worker ID → tasks it holds, so a lost worker's tasks are found without a scan. */
  private readonly held = new Map<string, Set<LiveTask>>();
  private seq = 0;
  private readonly stateCounts: Record<TaskState, number> = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;

  constructor(
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.TaskHeap) private readonly heap: IndexedHeap,
    @inject(TOKENS.Clock) private readonly clock: Clock,
  ) {}

  /** After a restart: continue the store's sequence and state counts. */
  restore(maxSeq: number, counts: Record<TaskState, number>): void {
    this.seq = maxSeq;
    for (const state of TASK_STATES) this.stateCounts[state] = counts[state];
  }

  /** Unfinished tasks (queued, parked, with a worker, waiting out a backoff). */
  get size(): number {
    return this.live.size;
  }

  /** Most unfinished tasks the heap has room for. */
  get capacity(): number {
    return this.heap.capacity;
  }

  /** Tasks in the heap now (queued and not parked). */
  get inHeap(): number {
    return this.heap.size;
  }

  liveTasks(): IterableIterator<LiveTask> {
    return this.live.values();
  }

  get(taskId: string): LiveTask | undefined {
    return this.live.get(taskId);
  }

  /** The live task of `tenant` with this idempotency key. */
  byIdempotencyKey(tenant: string, key: string): LiveTask | undefined {
    return this.liveByKey.get(`${tenant}\n${key}`);
  }

  /** Tasks in each state (finished ones too, as the store counts them). */
  counts(): Record<TaskState, number> {
    return { ...this.stateCounts };
  }

  /** A task moved from one state to another. */
  count(from: TaskState, to: TaskState): void {
    this.stateCounts[from]--;
    this.stateCounts[to]++;
  }

  /** Tasks entered the table as queued (just inserted in the store). */
  countNew(n: number): void {
    this.stateCounts.queued += n;
  }

  /** A new task record with the next sequence number, queued. */
  newRecord(spec: TaskSpec, tenant: string, clientId: string, id: string): TaskRecord {
    const now = this.clock.now();
    const notBefore = spec.delayMs || spec.runAt ? dueTime(spec, now) : 0;
    // Every field spelled out: a spread here makes V8 build slow dictionary-mode objects (~25x slower).
    const rec: TaskRecord = {
      type: spec.type,
      payload: spec.payload,
      priority: spec.priority,
      requiredLabels: spec.requiredLabels,
      maxAttempts: spec.maxAttempts,
      timeoutMs: spec.timeoutMs,
      idempotencyKey: spec.idempotencyKey,
      expectedDurationMs: spec.expectedDurationMs,
      id,
      seq: ++this.seq,
      tenant,
      clientId,
      state: "queued",
      attempt: 0,
      epoch: 0,
      workerId: "",
      createdAt: now,
      assignedAt: 0,
      startedAt: 0,
      finishedAt: 0,
      notBefore,
      result: undefined,
      error: "",
      waitingReason: notBefore ? delayedUntil(notBefore) : "",
      attempts: [],
    };
    // Submission attributes (a schedule's firing, metadata…) only when set: a plain task keeps its shape.
    for (const key of SPEC_ATTRIBUTE_KEYS) if (spec[key] !== undefined) (rec as unknown as Record<string, unknown>)[key] = spec[key];
    return rec;
  }

  /** The task enters the table; `account` is its tenant's (`rec.tenant`), which counts it until {@link untrack}. */
  track(rec: TaskRecord, account: TenantAccount): LiveTask {
    const idx = this.freeIdx.length ? this.freeIdx.pop()! : this.byIdx.length;
    account.unfinished++;
    const live: LiveTask = {
      rec,
      account,
      idx,
      handle: -1,
      dueHandle: -1,
      key: 0,
      enqueuedAt: 0,
      parked: false,
      retryTimer: undefined,
      timeoutTimer: undefined,
    };
    this.byIdx[idx] = live;
    this.live.set(rec.id, live);
    if (rec.idempotencyKey) this.liveByKey.set(`${rec.tenant}\n${rec.idempotencyKey}`, live);
    return live;
  }

  /** The task finished: it leaves the table and the heap. */
  untrack(live: LiveTask): void {
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

  // ---- the queue ---------------------------------------------------------------------------

  /** Puts a task into the heap, at the place the policy's key gives it. */
  enqueue(live: LiveTask): void {
    live.enqueuedAt = this.clock.now();
    live.key = this.policy.taskKey(this.policyView(live));
    live.parked = false;
    live.handle = this.heap.push(live.key, live.idx);
  }

  /** The live task with this heap id (the task heap's and the due-time heap's), if any. */
  byHeapId(idx: number): LiveTask | undefined {
    return this.byIdx[idx];
  }

  /** Takes the next task in policy order out of the heap, skipping ids of tasks no longer queued. */
  popQueued(): LiveTask | undefined | null {
    const idx = this.heap.pop();
    if (idx < 0) return null;
    const live = this.byIdx[idx];
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

  /** Live tasks currently held by a worker (assigned or running). */
  tasksOf(workerId: string): LiveTask[] {
    return [...(this.held.get(workerId) ?? [])];
  }

  /** Keeps the worker → held tasks index; called whenever a task reaches a worker. */
  hold(live: LiveTask, workerId: string): void {
    let set = this.held.get(workerId);
    if (!set) this.held.set(workerId, (set = new Set()));
    set.add(live);
  }

  /** The task left its worker's hands. */
  unhold(live: LiveTask): void {
    const set = this.held.get(live.rec.workerId);
    if (!set?.delete(live)) return;
    if (set.size === 0) this.held.delete(live.rec.workerId);
  }

  /** The policy's view of a task. */
  policyView(live: LiveTask): PolicyTask {
    const rec = live.rec;
    return {
      id: rec.id,
      type: rec.type,
      priority: rec.priority,
      seq: rec.seq,
      attempt: rec.attempt,
      createdAt: rec.createdAt,
      enqueuedAt: live.enqueuedAt,
      requiredLabels: rec.requiredLabels,
      expectedDurationMs: rec.expectedDurationMs,
    };
  }
}
