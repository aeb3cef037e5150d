/**
 * The task lifecycle: the state machine of a task (queued → assigned → running → succeeded,
 * failed or cancelled), fenced by epoch. It admits new tasks, records assignments, starts and
 * results, retries failed attempts after a backoff, times out attempts a worker does not finish,
 * and requeues — the one word for putting a task back in the queue — what a lost or draining
 * worker held. Every change goes to store write-behind, watchers and the event bus.
 */
import { inject, injectable } from "tsyringe";
import {
  TOKENS,
  type Clock,
  type EventBus,
  type LostWorkerTasks,
  type Logger,
  type SchedulerInbox,
  type SchedulingPolicy,
  type TaskRecord,
  type TaskReports,
  type TaskflowConfig,
  type Timers,
  type WorkerPorts,
  type WorkerResult,
} from "@taskflow/core";
import { type DelayedTasks } from "./delayed-tasks.js";
import { type Dependencies, type Doomed } from "./dependencies.js";
import { type Limits } from "./limits.js";
import { type ResultDelivery } from "./result-delivery.js";
import { type StoreWriteBehind } from "./store-write-behind.js";
import { policyView, type LiveTask, type TaskTable } from "./task-table.js";
import { type TenantAccount } from "./tenants.js";

/** What the lifecycle uses of each part, and nothing more. */
type Tasks = Pick<
  TaskTable,
  "get" | "track" | "untrack" | "enqueue" | "compact" | "held" | "unhold" | "liveTasks" | "tally"
>;
type Writes = Pick<StoreWriteBehind, "changed" | "outcome">;
type Watchers = Pick<ResultDelivery, "changed" | "wantsOutcomes">;
type Delays = Pick<DelayedTasks, "holdUntilDue" | "remove">;
type Graph = Pick<Dependencies, "hold" | "settled">;
type TaskLimits = Pick<Limits, "active" | "bind" | "assigned" | "left" | "finished">;

@injectable()
export class TaskLifecycle implements TaskReports, LostWorkerTasks {
  private closed = false;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.StoreWriteBehind) private readonly writer: Writes,
    @inject(TOKENS.ResultDelivery) private readonly delivery: Watchers,
    @inject(TOKENS.WorkerPorts) private readonly ports: WorkerPorts,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.EventBus) private readonly events: EventBus,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.DelayedTasks) private readonly delayed: Delays,
    @inject(TOKENS.Dependencies) private readonly graph: Graph,
    @inject(TOKENS.Limits) private readonly limits: TaskLimits,
  ) {}

  /** Stops every retry and timeout timer; no task is requeued after this. */
  stop(): void {
    this.closed = true;
    for (const live of this.table.liveTasks("hot")) {
      this.timers.clear(live.retryTimer);
      this.timers.clear(live.timeoutTimer);
    }
  }

  /**
   * New tasks of one tenant (its `account`), just inserted in the store, enter the queue (a
   * delayed one at its due time, a dependent once its dependencies finished; one whose
   * dependency already failed is cancelled).
   */
  admit(fresh: readonly TaskRecord[], account: TenantAccount): void {
    this.table.tally.countNew(fresh.length);
    let doomed: Doomed[] | undefined;
    const limited = this.limits.active;
    for (const rec of fresh) {
      const live = this.table.track(rec, account);
      if (limited) this.limits.bind(live);
      const readiness = rec.dependsOn ? this.graph.hold(live) : undefined;
      if (readiness?.kind === "cancel") (doomed ??= []).push({ live, why: readiness.why });
      else if (readiness?.kind !== "waits" && !(rec.notBefore && this.delayed.holdUntilDue(live))) this.table.enqueue(live);
      this.emit(rec);
      // Last: a plain queued task goes cold here (its record and live task are let go).
      this.table.compact(live);
    }
    if (doomed) for (const d of doomed) if (d.live.rec.state === "queued") this.cancel(d.live, d.why);
    this.inbox.wake();
  }

  /**
   * A failed or cancelled task goes back to the queue (a dead-letter retry, ADR 0020): it keeps
   * its ID, epoch and attempt history; `attempt` restarts at 0, so it gets a fresh budget of
   * `maxAttempts`. It counts as unfinished again (state counts, its tenant's account); the
   * change is written through the normal write path, so every store sees it queued.
   */
  retry(rec: TaskRecord, account: TenantAccount, why: string): LiveTask {
    this.table.tally.count(rec.state, "queued");
    rec.state = "queued";
    rec.attempt = 0;
    rec.workerId = "";
    rec.result = undefined;
    rec.error = "";
    rec.finishedAt = 0;
    rec.assignedAt = 0;
    rec.startedAt = 0;
    rec.notBefore = 0;
    rec.waitingReason = why;
    const live = this.table.track(rec, account);
    this.limits.bind(live);
    // A dependent waits for its dependencies again (the PLM planned it), or goes at once.
    const readiness = rec.dependsOn ? this.graph.hold(live) : undefined;
    if (readiness?.kind !== "waits" && readiness?.kind !== "cancel") this.table.enqueue(live);
    this.changed(rec);
    if (readiness?.kind === "cancel") this.cancel(live, readiness.why);
    this.inbox.wake();
    return live;
  }

  /** Records that the scheduler gave a popped task to a worker; returns the new epoch. */
  assign(live: LiveTask, workerId: string): number {
    const rec = live.rec;
    live.handle = -1;
    live.parked = false;
    rec.state = "assigned";
    rec.workerId = workerId;
    this.table.held.add(live, workerId);
    rec.epoch += 1;
    rec.attempt += 1;
    rec.assignedAt = this.clock.now();
    rec.waitingReason = "";
    rec.attempts.push({ attempt: rec.attempt, epoch: rec.epoch, workerId, startedAt: 0, finishedAt: 0, error: "" });
    if (live.limits !== undefined) this.limits.assigned(live);
    this.table.tally.count("queued", "assigned");
    const timeoutMs = rec.timeoutMs || this.config.control.defaultTimeoutMs;
    if (timeoutMs > 0) {
      // The worker aborts the handler at the deadline; this is the backstop when it cannot.
      const epoch = rec.epoch;
      // Clamped: Node fires a timer above 2^31-1 ms at once (a record stored before the limit).
      live.timeoutTimer = this.timers.setTimeout(() => this.timedOut(live, epoch, timeoutMs), Math.min(timeoutMs + 1000, 2 ** 31 - 1));
    }
    this.changed(rec);
    return rec.epoch;
  }

  started(workerId: string, taskId: string, epoch: number): void {
    const live = this.table.get(taskId);
    if (!live || live.rec.epoch !== epoch || live.rec.workerId !== workerId || live.rec.state !== "assigned") return;
    live.rec.state = "running";
    this.stamp(live.rec);
    this.table.tally.count("assigned", "running");
    this.changed(live.rec);
  }

  completed(workerId: string, results: readonly WorkerResult[]): void {
    let released = 0;
    for (const result of results) {
      const live = this.table.get(result.taskId);
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
    if (released) this.inbox.released(workerId, released);
  }

  /** Cancels an unfinished task; one with a worker is stopped there and its slot freed. */
  cancel(live: LiveTask, why: string): void {
    const rec = live.rec;
    if (rec.state === "assigned" || rec.state === "running") {
      this.ports.cancel(rec.workerId, rec.id, rec.epoch, why);
      this.inbox.released(rec.workerId, 1);
    }
    this.finish(live, "cancelled", undefined, why);
  }

  handBack(workerId: string, tasks: readonly { taskId: string; epoch: number }[]): number {
    let handedBack = 0;
    for (const t of tasks) {
      const live = this.table.get(t.taskId);
      const rec = live?.rec;
      if (!live || !rec || rec.workerId !== workerId || rec.epoch !== t.epoch || rec.state !== "assigned") continue;
      rec.attempt -= 1;
      rec.attempts.pop();
      this.requeue(live, `handed back by draining worker ${workerId}`, 0);
      handedBack++;
    }
    if (handedBack) this.inbox.released(workerId, handedBack);
    return handedBack;
  }

  requeueWorkerTasks(workerId: string, reason: string, keep?: ReadonlySet<string>): number {
    let count = 0;
    for (const live of this.table.held.of(workerId)) {
      if (keep?.has(live.rec.id)) continue;
      this.closeAttempt(live.rec, reason);
      const decision = this.policy.onRequeue?.(policyView(live));
      if (decision?.priority !== undefined && Number.isFinite(decision.priority)) live.rec.priority = decision.priority;
      const maxAttempts = live.rec.maxAttempts || this.config.control.defaultMaxAttempts;
      if (live.rec.attempt >= maxAttempts) {
        this.finish(live, "failed", undefined, `${reason} (after ${live.rec.attempt} attempts)`);
      } else {
        this.requeue(live, `requeued: ${reason}`, 0);
      }
      count++;
    }
    if (count) this.logger.warn({ workerId, tasks: count, reason }, "requeued a lost worker's tasks");
    return count;
  }

  /** A task changed: persist it, tell its watchers, publish an event. */
  changed(rec: TaskRecord): void {
    this.writer.changed(rec);
    this.emit(rec);
    this.delivery.changed(rec);
  }

  emit(rec: TaskRecord): void {
    if (this.events.hasSubscribers) this.events.publish({ kind: "task", time: this.clock.now(), task: rec });
  }

  /** Puts a task back in the queue, after `delayMs` (a retry's backoff) or now. */
  private requeue(live: LiveTask, reason: string, delayMs: number): void {
    const rec = live.rec;
    this.timers.clear(live.timeoutTimer);
    live.timeoutTimer = undefined;
    this.table.unhold(live);
    if (live.limits !== undefined) this.limits.left(live);
    this.table.tally.count(rec.state, "queued");
    rec.state = "queued";
    rec.workerId = "";
    rec.waitingReason = reason;
    rec.notBefore = delayMs ? this.clock.now() + delayMs : 0;
    this.changed(rec);
    if (delayMs > 0) {
      live.retryTimer = this.timers.setTimeout(() => {
        live.retryTimer = undefined;
        if (rec.state !== "queued" || this.closed) return;
        rec.notBefore = 0;
        this.table.enqueue(live);
        this.inbox.wake();
      }, delayMs);
    } else {
      this.table.enqueue(live);
      this.inbox.wake();
    }
  }

  /** Sets the start time of a task's current attempt to now. */
  private stamp(rec: TaskRecord): void {
    const now = this.clock.now();
    rec.startedAt = now;
    const attempt = rec.attempts[rec.attempts.length - 1];
    if (attempt) attempt.startedAt = now;
  }

  /**
   * The task goes back to the queue after a backoff, or fails for good: no attempts left, or
   * the handler threw an `UnrecoverableError` (`unrecoverable`), which no retry can fix.
   */
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
    this.requeue(live, `retrying after attempt ${rec.attempt} failed: ${error}`, delay);
  }

  private timedOut(live: LiveTask, epoch: number, timeoutMs: number): void {
    const rec = live.rec;
    if (rec.epoch !== epoch || (rec.state !== "assigned" && rec.state !== "running")) return;
    const workerId = rec.workerId;
    const reason = `timed out after ${timeoutMs} ms`;
    this.ports.cancel(workerId, rec.id, epoch, reason);
    this.inbox.released(workerId, 1);
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
    this.timers.clear(live.retryTimer);
    this.timers.clear(live.timeoutTimer);
    this.delayed.remove(live);
    this.closeAttempt(rec, state === "succeeded" ? "" : error);
    this.table.tally.count(rec.state, state);
    rec.state = state;
    rec.result = result;
    rec.error = error;
    rec.waitingReason = "";
    rec.finishedAt = this.clock.now();
    this.table.untrack(live);
    live.dependencyResults = undefined;
    if (live.limits !== undefined) this.limits.finished(live);
    this.changed(rec);
    // Its dependents that cancel on a failure go too, naming it (and theirs, through here).
    const doomed = this.graph.settled(rec);
    if (doomed.length) for (const d of doomed) if (d.live.rec.state === "queued") this.cancel(d.live, d.why);
    // Results go to subscribers of the task's own tenant with its client ID, no one else.
    if (rec.clientId && this.delivery.wantsOutcomes(live.account, rec.clientId)) {
      this.writer.outcome(live.account, rec.clientId, { taskId: rec.id, state, result, error, attempt: rec.attempt, workerId: rec.workerId });
    }
  }
}

/** Exponential backoff with full jitter: 100 ms, 200 ms, 400 ms … capped at 30 s. */
export function backoffMs(attempt: number): number {
  const ceiling = Math.min(30_000, 100 * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
