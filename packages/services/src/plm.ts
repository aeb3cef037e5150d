/**
 * The Process Lifecycle Manager: task IDs, the task table and its state machine, the task heap,
 * the task-to-worker mapping, result delivery and retries (DESIGN §2-3).
 *
 * Live (unfinished) tasks are held in memory and indexed by a small integer, the id stored in
 * the shared-memory task heap; every change is written through the TaskStore, and a submit is
 * acknowledged only once the store has committed it.
 */
import { createHash, randomUUID } from "node:crypto";
import { inject, injectable } from "tsyringe";
import {
  Code,
  Reason,
  TOKENS,
  TASK_STATES,
  TaskflowError,
  isFinal,
  type Clock,
  type EventBus,
  type Logger,
  type Plm,
  type PolicyTask,
  type SchedulingPolicy,
  type SubmitResult,
  type TaskflowConfig,
  type TaskOutcome,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TaskStore,
  type WorkerResult,
} from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { invalid, validateSpec } from "./validation.js";

/** A task that has not finished, with its place in the heap. */
export interface LiveTask {
  readonly rec: TaskRecord;
  /** Its id in the task heap. */
  readonly idx: number;
  /** Task heap handle while queued, else -1. */
  handle: number;
  /** Its task heap key, kept to push it back after parking. */
  key: number;
  enqueuedAt: number;
  /** Set while it waits for a worker that can take it (see Scheduler). */
  parked: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  timeoutTimer: NodeJS.Timeout | undefined;
}

/** What the PLM asks of the rest of the control plane, wired by the Scheduler. */
export interface PlmHooks {
  /** Tasks entered the queue. */
  queued(): void;
  /** A task left a worker's hands (finished, cancelled, timed out): free its slot. */
  released(workerId: string, count: number): void;
  /** Tell a worker to stop a task it runs. */
  cancelOnWorker(workerId: string, taskId: string, epoch: number, reason: string): void;
  /** Why a task in the heap is still waiting, from the scheduler's point of view. */
  explainWait(live: LiveTask): string;
}

const noHooks: PlmHooks = { queued() {}, released() {}, cancelOnWorker() {}, explainWait: () => "" };

/** Whether the task store takes writes; while it does not, the node takes no new work. */
export interface StoreHealth {
  /** The store's kind, for example `sqlite`. */
  kind: string;
  writable: boolean;
  /** The last write error while not writable, else "". */
  error: string;
  /** Since when (ms since the epoch) it is in this state; 0 = since the start. */
  since: number;
  /** Writes that failed since the start. */
  failedWrites: number;
}

/** First retry of a failed store write after this long; doubles up to STORE_RETRY_MAX_MS. */
const STORE_RETRY_MIN_MS = 100;
const STORE_RETRY_MAX_MS = 5_000;

@injectable()
export class ProcessLifecycleManager implements Plm {
  hooks: PlmHooks = noHooks;
  private readonly live = new Map<string, LiveTask>();
  /** Heap id -> live task; ids are recycled through `freeIdx`. */
  private readonly byIdx: (LiveTask | undefined)[] = [];
  private readonly freeIdx: number[] = [];
  private readonly liveByKey = new Map<string, LiveTask>();
  /** Worker ID → tasks it holds, so a lost worker's tasks are found without a scan. */
  private readonly held = new Map<string, Set<LiveTask>>();
  private readonly watchers = new Map<string, Set<(task: TaskRecord) => void>>();
  private readonly resultSubscribers = new Map<string, Set<(outcomes: readonly TaskOutcome[]) => void>>();
  private pendingOutcomes = new Map<string, TaskOutcome[]>();
  private pendingUpdates = new Map<string, TaskRecord>();
  /** Called once everything changed before them is durable (see afterDurable). */
  private pendingDurable: (() => void)[] = [];
  private flushScheduled = false;
  /** Set while a failed store write waits for its retry; no flush runs before it. */
  private retryFlushTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = STORE_RETRY_MIN_MS;
  private health: StoreHealth;
  private readonly healthListeners = new Set<(health: StoreHealth) => void>();
  /** Submits with a request ID now being stored, so a retry that overtakes one waits for it. */
  private readonly inflightRequests = new Map<string, Promise<SubmitResult>>();
  private seq = 0;
  private readonly stateCounts: Record<TaskState, number> = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<
    TaskState,
    number
  >;
  private purgeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** After a restart: tasks that were with a worker, kept out of the queue until it comes back. */
  private readonly awaitingAdoption = new Map<string, LiveTask>();
  private adoptionTimer: NodeJS.Timeout | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.TaskStore) private readonly store: TaskStore,
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.TaskHeap) readonly heap: IndexedHeap,
    @inject(TOKENS.EventBus) private readonly events: EventBus,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Clock) private readonly clock: Clock,
  ) {
    this.health = { kind: store.kind, writable: true, error: "", since: 0, failedWrites: 0 };
  }

  /** Loads the store's unfinished tasks back into the queue (after a restart) and starts housekeeping. */
  async start(): Promise<void> {
    this.seq = await this.store.maxSeq();
    const counts = await this.store.counts();
    for (const state of TASK_STATES) this.stateCounts[state] = counts[state];
    const unfinished = await this.store.loadUnfinished();
    const requeued: TaskRecord[] = [];
    for (const rec of unfinished) {
      const live = this.track(rec);
      // Queued with a worker ID: it already waited for its worker after an earlier restart.
      if (rec.state === "queued" && !rec.workerId) {
        this.enqueue(live);
        continue;
      }
      // It was with a worker when the control node stopped. That worker may still run it and
      // will list it when it reconnects (see reconcile); until then it waits outside the heap.
      if (rec.state !== "queued") this.count(rec.state, "queued");
      rec.state = "queued";
      rec.waitingReason = `control node restarted; waiting for worker ${rec.workerId} to reconnect and re-adopt it`;
      requeued.push(rec);
      this.awaitingAdoption.set(rec.id, live);
    }
    if (requeued.length) {
      await this.store.update(requeued);
      // Workers reconnect within their backoff; whatever nobody re-adopts by then runs again.
      const grace = this.config.liveness.heartbeatTimeoutMs * 2;
      this.adoptionTimer = setTimeout(() => this.giveUpAdoption(), grace);
      this.adoptionTimer.unref();
    }
    if (unfinished.length) {
      this.logger.info({ tasks: unfinished.length, awaitingWorkers: requeued.length }, "resumed unfinished tasks from the store");
      this.hooks.queued();
    }
    const retention = this.config.control.resultRetentionMs;
    this.purgeTimer = setInterval(() => void this.purge(retention), Math.min(retention, 60_000));
    this.purgeTimer.unref();
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.adoptionTimer);
    clearTimeout(this.retryFlushTimer);
    this.retryFlushTimer = undefined;
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    for (const live of this.live.values()) {
      clearTimeout(live.retryTimer);
      clearTimeout(live.timeoutTimer);
    }
    await this.flushNow();
  }

  // ---- client-facing -------------------------------------------------------------------------

  async submit(specs: readonly TaskSpec[], clientId: string, requestId = ""): Promise<SubmitResult> {
    if (!requestId) return this.submitOnce(specs, clientId, undefined);
    if (requestId.length > 128) throw invalid(`request_id must be at most 128 characters, got ${requestId.length}`);
    const key = `${clientId}\n${requestId}`;
    const inflight = this.inflightRequests.get(key);
    if (inflight) {
      const { ids } = await inflight;
      return { ids, deduplicated: ids.map(() => true) };
    }
    const attempt = this.submitOnce(specs, clientId, idDeriver(clientId, requestId));
    this.inflightRequests.set(key, attempt);
    try {
      return await attempt;
    } finally {
      this.inflightRequests.delete(key);
    }
  }

  /** `deriveId` is set for a submit with a request ID: task i gets `deriveId(i)`, the same on a retry. */
  private async submitOnce(specs: readonly TaskSpec[], clientId: string, deriveId: ((index: number) => string) | undefined): Promise<SubmitResult> {
    if (this.closed) throw new TaskflowError(Code.UNAVAILABLE, "the control node is shutting down");
    if (!this.health.writable) {
      throw new TaskflowError(Code.UNAVAILABLE, `the task store cannot write (${this.health.error}); nothing was accepted, retry later`, {
        reason: Reason.STORE,
      });
    }
    const limits = { maxPayloadBytes: this.config.control.maxPayloadBytes };
    for (let i = 0; i < specs.length; i++) validateSpec(specs[i]!, limits, specs.length > 1 ? i : -1);
    if (deriveId) {
      const repeated = await this.repeatedRequest(specs, deriveId);
      if (repeated) return repeated;
    }

    const ids: string[] = new Array(specs.length);
    const deduplicated: boolean[] = new Array(specs.length).fill(false);
    const fresh: TaskRecord[] = [];
    const seenKeys = new Map<string, number>();
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      if (spec.idempotencyKey) {
        const existing = this.liveByKey.get(spec.idempotencyKey)?.rec ?? (await this.store.findByIdempotencyKey(spec.idempotencyKey));
        const earlier = seenKeys.get(spec.idempotencyKey);
        if (existing || earlier !== undefined) {
          ids[i] = existing ? existing.id : ids[earlier!]!;
          deduplicated[i] = true;
          continue;
        }
        seenKeys.set(spec.idempotencyKey, i);
      }
      const rec = this.newRecord(spec, clientId, deriveId ? deriveId(i) : randomUUID());
      ids[i] = rec.id;
      fresh.push(rec);
    }
    if (fresh.length === 0) return { ids, deduplicated };
    // Every unfinished task counts, also one parked, running, or waiting out a retry backoff
    // outside the heap: each may go back into it at any moment and must find room.
    const unfinished = this.live.size;
    if (unfinished + fresh.length > this.heap.capacity) {
      throw new TaskflowError(
        Code.RESOURCE_EXHAUSTED,
        `the task queue is full (${unfinished} of ${this.heap.capacity} unfinished tasks; control.taskHeapCapacity); retry later`,
        { reason: Reason.HEAP_FULL, metadata: { capacity: String(this.heap.capacity) } },
      );
    }
    try {
      await this.store.insert(fresh);
    } catch (err) {
      throw TaskflowError.from(err, Code.UNAVAILABLE);
    }
    this.stateCounts.queued += fresh.length;
    for (const rec of fresh) {
      const live = this.track(rec);
      this.enqueue(live);
      this.emit(rec);
    }
    this.hooks.queued();
    return { ids, deduplicated };
  }

  async get(taskId: string): Promise<TaskRecord> {
    const live = this.live.get(taskId);
    if (live) {
      if (live.rec.state === "queued" && live.handle >= 0) live.rec.waitingReason = this.hooks.explainWait(live);
      return live.rec;
    }
    const rec = await this.store.get(taskId);
    if (!rec) {
      throw new TaskflowError(Code.NOT_FOUND, `task ${taskId} not found (unknown, or finished longer ago than control.resultRetentionMs)`, {
        reason: Reason.TASK_NOT_FOUND,
        metadata: { taskId },
      });
    }
    return rec;
  }

  async cancel(taskId: string, reason: string): Promise<TaskRecord> {
    const rec = await this.get(taskId);
    if (isFinal(rec.state)) {
      throw new TaskflowError(Code.FAILED_PRECONDITION, `task ${taskId} already finished (${rec.state}); nothing to cancel`);
    }
    const live = this.live.get(taskId)!;
    const why = reason || "cancelled by request";
    if (rec.state === "assigned" || rec.state === "running") {
      this.hooks.cancelOnWorker(rec.workerId, rec.id, rec.epoch, why);
      this.hooks.released(rec.workerId, 1);
    }
    this.finish(live, "cancelled", undefined, why);
    return rec;
  }

  async list(query: TaskQuery): Promise<TaskPage> {
    return this.store.list(query);
  }

  async watch(taskId: string, listener: (task: TaskRecord) => void): Promise<() => void> {
    const rec = await this.get(taskId);
    listener(rec);
    if (isFinal(rec.state)) return () => {};
    let set = this.watchers.get(taskId);
    if (!set) this.watchers.set(taskId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(taskId) === set) this.watchers.delete(taskId);
    };
  }

  subscribeResults(clientId: string, listener: (outcomes: readonly TaskOutcome[]) => void): () => void {
    let set = this.resultSubscribers.get(clientId);
    if (!set) this.resultSubscribers.set(clientId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      // Only our own set: unsubscribe may run twice (cancelled, then close), after a newer
      // subscriber of the same client ID made a new one.
      if (set.size === 0 && this.resultSubscribers.get(clientId) === set) this.resultSubscribers.delete(clientId);
    };
  }

  async counts(): Promise<Record<TaskState, number>> {
    return { ...this.stateCounts };
  }

  // ---- scheduler-facing ----------------------------------------------------------------------

  /** The live task behind a task heap id, if it is still live. */
  byHeapId(idx: number): LiveTask | undefined {
    return this.byIdx[idx];
  }

  liveTask(taskId: string): LiveTask | undefined {
    return this.live.get(taskId);
  }

  /** Live tasks currently held by a worker (assigned or running). */
  tasksOf(workerId: string): LiveTask[] {
    return [...(this.held.get(workerId) ?? [])];
  }

  /** Keeps the worker → held tasks index; called whenever a task reaches or leaves a worker. */
  private hold(live: LiveTask, workerId: string): void {
    let set = this.held.get(workerId);
    if (!set) this.held.set(workerId, (set = new Set()));
    set.add(live);
  }

  private unhold(live: LiveTask): void {
    const set = this.held.get(live.rec.workerId);
    if (!set?.delete(live)) return;
    if (set.size === 0) this.held.delete(live.rec.workerId);
  }

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

  /** Records that the scheduler gave a popped task to a worker; returns the new epoch. */
  assign(live: LiveTask, workerId: string): number {
    const rec = live.rec;
    live.handle = -1;
    live.parked = false;
    rec.state = "assigned";
    rec.workerId = workerId;
    this.hold(live, workerId);
    rec.epoch += 1;
    rec.attempt += 1;
    rec.assignedAt = this.clock.now();
    rec.waitingReason = "";
    rec.attempts.push({ attempt: rec.attempt, epoch: rec.epoch, workerId, startedAt: 0, finishedAt: 0, error: "" });
    this.count("queued", "assigned");
    const timeoutMs = rec.timeoutMs || this.config.control.defaultTimeoutMs;
    if (timeoutMs > 0) {
      // The worker aborts the handler at the deadline; this is the backstop when it cannot.
      const epoch = rec.epoch;
      // Clamped: Node fires a timer above 2^31-1 ms at once (a record stored before the limit).
      live.timeoutTimer = setTimeout(() => this.timedOut(live, epoch, timeoutMs), Math.min(timeoutMs + 1000, 2 ** 31 - 1));
      live.timeoutTimer.unref();
    }
    this.changed(rec);
    return rec.epoch;
  }

  /** Puts a popped task aside because no worker can take it now; the reason shows in `get`. */
  park(live: LiveTask, reason: string): void {
    live.handle = -1;
    live.parked = true;
    if (live.rec.waitingReason !== reason) {
      live.rec.waitingReason = reason;
    }
  }

  /** Puts a parked task back into the heap. */
  unpark(live: LiveTask): void {
    if (!live.parked || live.rec.state !== "queued") return;
    live.parked = false;
    live.handle = this.heap.push(live.key, live.idx);
  }

  started(workerId: string, taskId: string, epoch: number): void {
    const live = this.live.get(taskId);
    if (!live || live.rec.epoch !== epoch || live.rec.workerId !== workerId || live.rec.state !== "assigned") return;
    live.rec.state = "running";
    this.stamp(live.rec);
    this.count("assigned", "running");
    this.changed(live.rec);
  }

  completed(workerId: string, results: readonly WorkerResult[]): void {
    let released = 0;
    for (const result of results) {
      const live = this.live.get(result.taskId);
      const rec = live?.rec;
      // Fencing: only the current attempt's worker may finish a task.
      if (!live || !rec || rec.epoch !== result.epoch || rec.workerId !== workerId) {
        this.logger.debug({ taskId: result.taskId, epoch: result.epoch, workerId }, "dropped a stale result");
        continue;
      }
      if (rec.state !== "assigned" && rec.state !== "running") continue;
      released++;
      // No start notice: it started and finished within one worker flush (the worker then
      // sends none), so it started at most that long ago. Better than a startedAt of 0.
      if (rec.state === "assigned") this.stamp(rec);
      if (result.ok) {
        this.finish(live, "succeeded", result.result, "");
      } else {
        this.failAttempt(live, result.error || "handler failed", result.unrecoverable === true);
      }
    }
    if (released) this.hooks.released(workerId, released);
  }

  /** Sets the start time of a task's current attempt to now. */
  private stamp(rec: TaskRecord): void {
    const now = this.clock.now();
    rec.startedAt = now;
    const attempt = rec.attempts[rec.attempts.length - 1];
    if (attempt) attempt.startedAt = now;
  }

  /** The task went back to the queue or failed for good (no attempts left, or `unrecoverable`). */
  private failAttempt(live: LiveTask, error: string, unrecoverable = false): void {
    const rec = live.rec;
    const maxAttempts = rec.maxAttempts || this.config.control.defaultMaxAttempts;
    this.closeAttempt(rec, error);
    if (unrecoverable || rec.attempt >= maxAttempts) {
      this.finish(live, "failed", undefined, error);
      return;
    }
    const delay = backoffMs(rec.attempt);
    rec.error = error;
    this.toQueue(live, `retrying after attempt ${rec.attempt} failed: ${error}`, delay);
  }

  /**
   * A worker said hello listing every task it holds. Tasks it holds that are still its own stay;
   * tasks it held before a control node restart are re-adopted; tasks we gave it that it no
   * longer holds run again. Returns what it must stop (`stale`) and how its load changed.
   */
  reconcile(workerId: string, held: readonly { taskId: string; epoch: number }[]): { adopted: number; lost: number; stale: { taskId: string; epoch: number }[] } {
    const heldIds = new Set<string>();
    const stale: { taskId: string; epoch: number }[] = [];
    let adopted = 0;
    for (const h of held) {
      const live = this.live.get(h.taskId);
      const rec = live?.rec;
      if (live && rec && rec.workerId === workerId && rec.epoch === h.epoch) {
        if (rec.state === "assigned" || rec.state === "running") {
          heldIds.add(h.taskId);
          continue;
        }
        if (this.awaitingAdoption.delete(h.taskId)) {
          this.count("queued", "running");
          rec.state = "running";
          rec.waitingReason = "";
          heldIds.add(h.taskId);
          this.changed(rec);
          this.hold(live, workerId);
          adopted++;
          continue;
        }
      }
      stale.push(h);
    }
    const lost = this.requeueWorkerTasks(workerId, "the worker no longer holds it (it restarted, or the assignment was lost)", heldIds);
    if (adopted) this.logger.info({ workerId, adopted }, "re-adopted tasks a worker kept running across a control node restart");
    return { adopted, lost, stale };
  }

  /** A draining worker hands back tasks it never started: they run elsewhere, not counted as an attempt. */
  release(workerId: string, tasks: readonly { taskId: string; epoch: number }[]): number {
    let released = 0;
    for (const t of tasks) {
      const live = this.live.get(t.taskId);
      const rec = live?.rec;
      if (!live || !rec || rec.workerId !== workerId || rec.epoch !== t.epoch || rec.state !== "assigned") continue;
      rec.attempt -= 1;
      rec.attempts.pop();
      this.toQueue(live, `handed back by draining worker ${workerId}`, 0);
      released++;
    }
    if (released) this.hooks.released(workerId, released);
    return released;
  }

  private giveUpAdoption(): void {
    for (const live of this.awaitingAdoption.values()) {
      if (live.rec.state !== "queued") continue;
      live.rec.waitingReason = "its worker did not come back after the control node restarted; runs again";
      live.rec.workerId = "";
      this.enqueue(live);
    }
    if (this.awaitingAdoption.size) this.logger.warn({ tasks: this.awaitingAdoption.size }, "requeued tasks no worker re-adopted after the restart");
    this.awaitingAdoption.clear();
    this.hooks.queued();
  }

  requeueWorkerTasks(workerId: string, reason: string, keep?: ReadonlySet<string>): number {
    let count = 0;
    for (const live of this.tasksOf(workerId)) {
      if (keep?.has(live.rec.id)) continue;
      this.closeAttempt(live.rec, reason);
      const decision = this.policy.onRequeue?.(this.policyView(live));
      if (decision?.priority !== undefined && Number.isFinite(decision.priority)) live.rec.priority = decision.priority;
      const maxAttempts = live.rec.maxAttempts || this.config.control.defaultMaxAttempts;
      if (live.rec.attempt >= maxAttempts) {
        this.finish(live, "failed", undefined, `${reason} (after ${live.rec.attempt} attempts)`);
      } else {
        this.toQueue(live, `requeued: ${reason}`, 0);
      }
      count++;
    }
    if (count) this.logger.warn({ workerId, tasks: count, reason }, "requeued a lost worker's tasks");
    return count;
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * The answer to a request already accepted, or undefined. A call is stored all or none, so its
   * first task without an idempotency key tells: if it exists, every task of the call does.
   */
  private async repeatedRequest(specs: readonly TaskSpec[], deriveId: (index: number) => string): Promise<SubmitResult | undefined> {
    const probe = specs.findIndex((s) => !s.idempotencyKey);
    if (probe < 0) return undefined; // every task is deduplicated by its own key
    const probeId = deriveId(probe);
    if (!this.live.has(probeId) && !(await this.store.get(probeId))) return undefined;
    const ids: string[] = [];
    for (let i = 0; i < specs.length; i++) {
      const key = specs[i]!.idempotencyKey;
      const existing = key ? (this.liveByKey.get(key)?.rec ?? (await this.store.findByIdempotencyKey(key))) : undefined;
      ids.push(existing ? existing.id : deriveId(i));
    }
    return { ids, deduplicated: ids.map(() => true) };
  }

  private newRecord(spec: TaskSpec, clientId: string, id: string): TaskRecord {
    const now = this.clock.now();
    // Every field spelled out: a spread here makes V8 build slow dictionary-mode objects (~25x slower).
    return {
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
      clientId,
      state: "queued",
      attempt: 0,
      epoch: 0,
      workerId: "",
      createdAt: now,
      assignedAt: 0,
      startedAt: 0,
      finishedAt: 0,
      notBefore: 0,
      result: undefined,
      error: "",
      waitingReason: "",
      attempts: [],
    };
  }

  private track(rec: TaskRecord): LiveTask {
    const idx = this.freeIdx.length ? this.freeIdx.pop()! : this.byIdx.length;
    const live: LiveTask = {
      rec,
      idx,
      handle: -1,
      key: 0,
      enqueuedAt: 0,
      parked: false,
      retryTimer: undefined,
      timeoutTimer: undefined,
    };
    this.byIdx[idx] = live;
    this.live.set(rec.id, live);
    if (rec.idempotencyKey) this.liveByKey.set(rec.idempotencyKey, live);
    return live;
  }

  private untrack(live: LiveTask): void {
    this.live.delete(live.rec.id);
    this.byIdx[live.idx] = undefined;
    this.freeIdx.push(live.idx);
    if (live.rec.idempotencyKey && this.liveByKey.get(live.rec.idempotencyKey) === live) {
      this.liveByKey.delete(live.rec.idempotencyKey);
    }
  }

  private enqueue(live: LiveTask): void {
    live.enqueuedAt = this.clock.now();
    live.key = this.policy.taskKey(this.policyView(live));
    live.parked = false;
    live.handle = this.heap.push(live.key, live.idx);
  }

  private toQueue(live: LiveTask, reason: string, delayMs: number): void {
    const rec = live.rec;
    clearTimeout(live.timeoutTimer);
    live.timeoutTimer = undefined;
    this.unhold(live);
    this.count(rec.state, "queued");
    rec.state = "queued";
    rec.workerId = "";
    rec.waitingReason = reason;
    rec.notBefore = delayMs ? this.clock.now() + delayMs : 0;
    this.changed(rec);
    if (delayMs > 0) {
      live.retryTimer = setTimeout(() => {
        live.retryTimer = undefined;
        if (rec.state !== "queued" || this.closed) return;
        rec.notBefore = 0;
        this.enqueue(live);
        this.hooks.queued();
      }, delayMs);
      live.retryTimer.unref();
    } else {
      this.enqueue(live);
      this.hooks.queued();
    }
  }

  private timedOut(live: LiveTask, epoch: number, timeoutMs: number): void {
    const rec = live.rec;
    if (rec.epoch !== epoch || (rec.state !== "assigned" && rec.state !== "running")) return;
    const workerId = rec.workerId;
    const reason = `timed out after ${timeoutMs} ms`;
    this.hooks.cancelOnWorker(workerId, rec.id, epoch, reason);
    this.hooks.released(workerId, 1);
    this.failAttempt(live, reason);
  }

  private closeAttempt(rec: TaskRecord, error: string): void {
    const attempt = rec.attempts[rec.attempts.length - 1];
    if (attempt && !attempt.finishedAt) {
      attempt.finishedAt = this.clock.now();
      attempt.error = error;
    }
  }

  private finish(live: LiveTask, state: "succeeded" | "failed" | "cancelled", result: Uint8Array | undefined, error: string): void {
    const rec = live.rec;
    if (live.handle >= 0) this.heap.remove(live.handle);
    live.handle = -1;
    live.parked = false;
    clearTimeout(live.retryTimer);
    clearTimeout(live.timeoutTimer);
    this.unhold(live);
    this.closeAttempt(rec, state === "succeeded" ? "" : error);
    this.count(rec.state, state);
    rec.state = state;
    rec.result = result;
    rec.error = error;
    rec.waitingReason = "";
    rec.finishedAt = this.clock.now();
    this.untrack(live);
    this.changed(rec);
    if (rec.clientId && this.resultSubscribers.has(rec.clientId)) {
      let batch = this.pendingOutcomes.get(rec.clientId);
      if (!batch) this.pendingOutcomes.set(rec.clientId, (batch = []));
      batch.push({ taskId: rec.id, state, result, error, attempt: rec.attempt, workerId: rec.workerId });
    }
  }

  private count(from: TaskState, to: TaskState): void {
    this.stateCounts[from]--;
    this.stateCounts[to]++;
  }

  /** A task changed: persist it, tell its watchers, publish an event. Batched per tick. */
  private changed(rec: TaskRecord): void {
    // A store that keeps our record objects has this change already; others get it per tick.
    if (!this.store.keepsRecords) this.pendingUpdates.set(rec.id, rec);
    this.emit(rec);
    const watchers = this.watchers.get(rec.id);
    if (watchers) {
      for (const listener of watchers) listener(rec);
      if (isFinal(rec.state)) this.watchers.delete(rec.id);
    }
    this.scheduleFlush();
  }

  private emit(rec: TaskRecord): void {
    if (this.events.hasSubscribers) this.events.publish({ kind: "task", time: this.clock.now(), task: rec });
  }

  /**
   * Runs `callback` once every change made so far is durable in the store: the server uses it to
   * tell a worker that its results are stored, so the worker may forget them.
   */
  afterDurable(callback: () => void): void {
    this.pendingDurable.push(callback);
    this.scheduleFlush();
  }

  /**
   * True with a durable store: assignments go out once stored, so after a crash every task a
   * worker holds is one the restarted node knows it gave that worker (and re-adopts).
   */
  get assignmentsWaitForStore(): boolean {
    return this.store.durable && !this.store.keepsRecords;
  }

  /** False while store writes fail: the scheduler then assigns nothing. */
  get storeWritable(): boolean {
    return this.health.writable;
  }

  /** Whether the store takes writes now. */
  storeHealth(): StoreHealth {
    return { ...this.health };
  }

  /** Calls `listener` whenever the store stops or starts taking writes; returns the unsubscribe. */
  onStoreHealth(listener: (health: StoreHealth) => void): () => void {
    this.healthListeners.add(listener);
    return () => this.healthListeners.delete(listener);
  }

  private scheduleFlush(): void {
    // A failed write waits for its retry timer, which flushes everything pending since.
    if (this.flushScheduled || this.retryFlushTimer) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flushNow());
  }

  /**
   * Writes changed records in one store call, then delivers results and runs `afterDurable`
   * callbacks: durable before visible. A failed write keeps all of it pending and is retried
   * with backoff; meanwhile the node takes no new work (see storeHealth).
   */
  private async flushNow(): Promise<void> {
    this.flushScheduled = false;
    const updates = this.pendingUpdates;
    const outcomes = this.pendingOutcomes;
    const durable = this.pendingDurable;
    this.pendingUpdates = new Map();
    this.pendingOutcomes = new Map();
    this.pendingDurable = [];
    if (updates.size) {
      try {
        await this.store.update([...updates.values()]);
      } catch (err) {
        this.writeFailed(err, updates, outcomes, durable);
        return;
      }
      if (!this.health.writable) this.setHealth({ writable: true, error: "" });
    }
    for (const [clientId, batch] of outcomes) {
      const subscribers = this.resultSubscribers.get(clientId);
      if (!subscribers) continue;
      for (const listener of subscribers) listener(batch);
    }
    for (const callback of durable) callback();
  }

  /** Puts a failed write's changes, results and callbacks back in front, and retries it later. */
  private writeFailed(err: unknown, updates: Map<string, TaskRecord>, outcomes: Map<string, TaskOutcome[]>, durable: (() => void)[]): void {
    this.health.failedWrites++;
    // Records are the live objects: one that changed again since is written in its newest state.
    for (const [id, rec] of this.pendingUpdates) updates.set(id, rec);
    this.pendingUpdates = updates;
    for (const [clientId, batch] of this.pendingOutcomes) {
      const earlier = outcomes.get(clientId);
      if (earlier) earlier.push(...batch);
      else outcomes.set(clientId, batch);
    }
    this.pendingOutcomes = outcomes;
    this.pendingDurable = durable.concat(this.pendingDurable);
    const message = err instanceof Error ? err.message : String(err);
    if (this.health.writable) {
      this.logger.error(
        { err, tasks: updates.size, retryInMs: this.retryDelayMs },
        "the task store cannot save task updates; results are held back and no new work is taken until it can",
      );
      this.setHealth({ writable: false, error: message });
    } else {
      this.health.error = message;
    }
    if (this.closed) return;
    clearTimeout(this.retryFlushTimer);
    this.retryFlushTimer = setTimeout(() => {
      this.retryFlushTimer = undefined;
      void this.flushNow();
    }, this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, STORE_RETRY_MAX_MS);
  }

  private setHealth(change: { writable: boolean; error: string }): void {
    this.health = { ...this.health, ...change, since: this.clock.now() };
    if (change.writable) {
      this.retryDelayMs = STORE_RETRY_MIN_MS;
      this.logger.warn({}, "the task store takes writes again; held results go out and work resumes");
    }
    for (const listener of this.healthListeners) listener(this.storeHealth());
    if (change.writable) this.hooks.queued();
  }

  private async purge(retentionMs: number): Promise<void> {
    try {
      const removed = await this.store.purgeFinished(this.clock.now() - retentionMs);
      if (removed) this.logger.debug({ removed }, "purged finished tasks past their retention");
    } catch (err) {
      this.logger.error({ err }, "purging finished tasks failed");
    }
  }
}

/**
 * Task IDs for a submit with a request ID: UUID-shaped (version 8, "custom"), from a hash of the
 * client and request IDs plus the task's index, so a retried call names the same tasks. Random
 * IDs are version 4, so the two kinds never collide.
 */
export function idDeriver(clientId: string, requestId: string): (index: number) => string {
  const base = createHash("sha256").update(clientId).update("\n").update(requestId).digest().subarray(0, 16);
  base[6] = (base[6]! & 0x0f) | 0x80;
  base[8] = (base[8]! & 0x3f) | 0x80;
  const low = base.readUInt32BE(12);
  return (index) => {
    base.writeUInt32BE((low + index) >>> 0, 12);
    const hex = base.toString("hex");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}

/** Exponential backoff with full jitter: 100 ms, 200 ms, 400 ms … capped at 30 s. */
export function backoffMs(attempt: number): number {
  const ceiling = Math.min(30_000, 100 * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
