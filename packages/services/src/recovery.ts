/**
 * Recovery: after a restart, the store's unfinished tasks come back into the task table. Those
 * that were with a worker wait outside the queue for that worker to reconnect and re-adopt them
 * (it may still run them); a task its worker comes back without runs again at once, and whatever
 * nobody re-adopts within the grace runs again then. On every hello, reconcile matches what a
 * worker says it holds against what the table says it gave it.
 */
import { inject, injectable } from "tsyringe";
import { TOKENS, type Logger, type SchedulerInbox, type TaskStore, type TaskRecord, type TaskflowConfig, type TimerHandle, type Timers, type UnfinishedPageFilter } from "@taskflow/core";
import { type DelayedTasks } from "./delayed-tasks.js";
import { type Dependencies } from "./dependencies.js";
import { type Limits } from "./limits.js";
import { type TaskLifecycle } from "./task-lifecycle.js";
import { type LiveTask, type TaskTable } from "./task-table.js";
import { type Tenants } from "./tenants.js";

/** What reconcile found: tasks re-adopted, tasks the worker lost (requeued), tasks it must stop. */
export interface Reconciled {
  adopted: number;
  lost: number;
  stale: { taskId: string; epoch: number }[];
}

/**
 * A task the second walk queues as it reads it: queued, no worker, no dependencies, no delay.
 * Every such task with no other attributes is one the store leaves out of the first walk
 * (isPlainQueuedRecord); one with, say, metadata comes back in both and is skipped in the first.
 */
function isPlainQueued(rec: TaskRecord): boolean {
  return rec.state === "queued" && !rec.workerId && !rec.dependsOn?.length && !rec.notBefore;
}

/** Unfinished tasks read from the store at a time when it can page them (`loadUnfinishedPage`). */
export const RECOVERY_PAGE = 10_000;

/** What recovery uses of each part, and nothing more. */
type Tasks = Pick<TaskTable, "tally" | "track" | "enqueue" | "compact" | "get" | "held" | "assigned">;
type Transitions = Pick<TaskLifecycle, "changed" | "requeueWorkerTasks" | "cancel">;
type Delays = Pick<DelayedTasks, "holdUntilDue">;

@injectable()
export class Recovery {
  /** After a restart: tasks that were with a worker, kept out of the queue until it comes back. */
  private readonly awaitingAdoption = new Map<string, LiveTask>();
  /**
   * The same tasks by the worker they wait for, each with whether its last attempt ever started:
   * an assignment written ahead (ADR 0011) that the worker never reported starting, and does not
   * hold when it comes back, never reached it, so it does not count as an attempt.
   */
  private readonly awaitingByWorker = new Map<string, Map<LiveTask, boolean>>();
  private adoptionTimer: TimerHandle | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.TaskStore) private readonly store: TaskStore,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.Tenants) private readonly tenants: Pick<Tenants, "account">,
    @inject(TOKENS.TaskLifecycle) private readonly lifecycle: Transitions,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.DelayedTasks) private readonly delayed: Delays,
    @inject(TOKENS.Dependencies) private readonly graph: Pick<Dependencies, "restore">,
    @inject(TOKENS.Limits) private readonly limits: Pick<Limits, "bind" | "recovered" | "left">,
  ) {}

  /**
   * Loads the store's unfinished tasks back into the table and the queue, a page at a time when
   * the store can (`loadUnfinishedPage`), so that a restart on millions of queued tasks never
   * holds them all as objects: a plain queued task (no worker, dependencies or delay) goes into
   * the queue and, past `control.hotQueueDepth`, cold, as its page is read. The policy's hook
   * state is rebuilt first, deterministically (ADR 0004): a first pass tracks every other task
   * and replays `onAssigned` for those that were with a worker, in `seq` order; a second pass
   * queues the plain ones in `seq` order; then dependents find which of their dependencies still
   * run and the remaining queued tasks enter the queue.
   */
  async start(): Promise<void> {
    this.table.tally.restore(await this.store.maxSeq(), await this.store.counts());
    const unfinished = this.unfinishedPages();
    const others: LiveTask[] = [];
    // The store leaves the plain queued tasks out of the first walk (on a deep queue, nearly all).
    for await (const recs of unfinished({ skipPlainQueued: true })) {
      for (const rec of recs) if (!isPlainQueued(rec)) others.push(this.track(rec));
    }
    let loaded = others.length;
    const waiting = this.awaitWorkers(others);
    for await (const recs of unfinished()) {
      for (const rec of recs) {
        if (!isPlainQueued(rec)) continue;
        loaded++;
        const live = this.track(rec);
        this.table.enqueue(live);
        this.table.compact(live);
      }
    }
    await this.queueTheRest(others);
    if (waiting.length) {
      await this.store.update(waiting);
      // Workers reconnect within their backoff; whatever nobody re-adopts by then runs again.
      const grace = this.config.liveness.heartbeatTimeoutMs * 2;
      this.adoptionTimer = this.timers.setTimeout(() => this.giveUpAdoption(), grace);
    }
    if (loaded) {
      this.logger.info({ tasks: loaded, awaitingWorkers: waiting.length }, "resumed unfinished tasks from the store");
      this.inbox.wake();
    }
  }

  /** The store's unfinished tasks in `seq` order, a page at a time; each call walks them again. */
  private unfinishedPages(): (filter?: UnfinishedPageFilter) => AsyncGenerator<TaskRecord[]> {
    const page = this.store.loadUnfinishedPage?.bind(this.store);
    if (!page) {
      // A store that cannot page: everything at once, read once for both passes (the filter is
      // only a saving: each pass picks its own tasks).
      const store = this.store;
      let all: Promise<TaskRecord[]> | undefined;
      return async function* () {
        yield await (all ??= store.loadUnfinished().then((recs) => recs.sort((a, b) => a.seq - b.seq)));
      };
    }
    return async function* (filter: UnfinishedPageFilter = {}) {
      for (let after = 0, recs = await page(after, RECOVERY_PAGE, filter); recs.length; recs = await page(after, RECOVERY_PAGE, filter)) {
        yield recs;
        after = recs[recs.length - 1]!.seq;
      }
    };
  }

  private track(rec: TaskRecord): LiveTask {
    // Tasks stored before tenants existed read back as the default tenant's (the stores' column default).
    const live = this.table.track(rec, this.tenants.account(rec.tenant));
    this.limits.bind(live);
    return live;
  }

  /**
   * Tasks that were with a worker when the control node stopped: that worker may still run them
   * and will list them when it reconnects (see reconcile); until then they wait outside the heap,
   * and the policy hears `onAssigned` for each, in `seq` order. Returns their records, to store.
   */
  private awaitWorkers(lives: readonly LiveTask[]): TaskRecord[] {
    const waiting: TaskRecord[] = [];
    const held: LiveTask[] = [];
    for (const live of lives) {
      const rec = live.rec;
      // Queued without a worker ID: queueTheRest's. Queued with one: it already waited for its
      // worker after an earlier restart.
      if (rec.state === "queued" && !rec.workerId) continue;
      if (rec.state !== "queued") this.table.tally.count(rec.state, "queued");
      // It may still be running: it counts against its concurrency key until it is settled.
      this.limits.recovered(live);
      // From the attempt, not the state: a task already waiting for its worker after an earlier
      // restart was stored as queued, and read "started" from that it cost an attempt when the
      // worker came back without it after a second restart.
      const neverStarted = rec.state !== "running" && (rec.attempts.at(-1)?.startedAt ?? 0) === 0;
      let ofWorker = this.awaitingByWorker.get(rec.workerId);
      if (!ofWorker) this.awaitingByWorker.set(rec.workerId, (ofWorker = new Map()));
      ofWorker.set(live, neverStarted);
      rec.state = "queued";
      rec.waitingReason = `control node restarted; waiting for worker ${rec.workerId} to reconnect and re-adopt it`;
      waiting.push(rec);
      held.push(live);
      this.awaitingAdoption.set(rec.id, live);
    }
    for (const live of held) this.table.assigned(live, live.rec.workerId);
    return waiting;
  }

  /**
   * The queued tasks of `lives` (every unfinished task is tracked by now): dependents find which
   * of their dependencies still run, a delayed task (or a retry in its backoff) not yet due waits
   * for its time again, the rest enter the queue.
   */
  private async queueTheRest(lives: readonly LiveTask[]): Promise<void> {
    const graph = await this.graph.restore(lives);
    const doomed: [LiveTask, string][] = [];
    for (const live of lives) {
      const rec = live.rec;
      if (rec.state !== "queued" || this.awaitingAdoption.has(rec.id)) continue;
      const readiness = graph.get(live);
      if (readiness?.kind === "waits") continue;
      if (readiness?.kind === "cancel") doomed.push([live, readiness.why]);
      else if (!(rec.notBefore && this.delayed.holdUntilDue(live))) {
        this.table.enqueue(live);
        this.table.compact(live);
      }
    }
    // A dependency failed while the node was down (or just before): its dependents go as they would have.
    for (const [live, why] of doomed) if (live.rec.state === "queued") this.lifecycle.cancel(live, why);
  }

  stop(): void {
    this.timers.clear(this.adoptionTimer);
  }

  /**
   * A worker said hello listing every task it holds. Tasks it holds that are still its own stay;
   * tasks it held before a control node restart are re-adopted; tasks we gave it that it no
   * longer holds run again. Returns what it must stop (`stale`) and how its load changed.
   */
  reconcile(workerId: string, held: readonly { taskId: string; epoch: number }[]): Reconciled {
    const heldIds = new Set<string>();
    const stale: { taskId: string; epoch: number }[] = [];
    let adopted = 0;
    for (const h of held) {
      const live = this.table.get(h.taskId);
      const rec = live?.rec;
      if (live && rec && rec.workerId === workerId && rec.epoch === h.epoch) {
        if (rec.state === "assigned" || rec.state === "running") {
          heldIds.add(h.taskId);
          continue;
        }
        if (this.awaitingAdoption.delete(h.taskId)) {
          this.table.tally.count("queued", "running");
          rec.state = "running";
          rec.waitingReason = "";
          heldIds.add(h.taskId);
          this.lifecycle.changed(rec);
          this.table.held.add(live, workerId);
          adopted++;
          continue;
        }
      }
      stale.push(h);
    }
    const lost = this.lifecycle.requeueWorkerTasks(workerId, "the worker no longer holds it (it restarted, or the assignment was lost)", heldIds) + this.notAdopted(workerId);
    if (adopted) this.logger.info({ workerId, adopted }, "re-adopted tasks a worker kept running across a control node restart");
    return { adopted, lost, stale };
  }

  /**
   * Tasks that waited for `workerId` since the restart and that it came back without: they run
   * again now rather than after the grace. One it never started gives its attempt back, so a
   * control node crash between writing an assignment and sending it costs no attempt.
   */
  private notAdopted(workerId: string): number {
    const waiting = this.awaitingByWorker.get(workerId);
    if (!waiting) return 0;
    this.awaitingByWorker.delete(workerId);
    let requeued = 0;
    for (const [live, neverStarted] of waiting) {
      const rec = live.rec;
      if (!this.awaitingAdoption.delete(rec.id) || rec.state !== "queued") continue;
      if (neverStarted && rec.attempt > 0) {
        rec.attempts.pop();
        rec.attempt -= 1;
        rec.waitingReason = `worker ${workerId} came back without it (the assignment never reached it before the control node restarted); queued again, not counted as an attempt`;
      } else {
        rec.waitingReason = `worker ${workerId} came back without it after the control node restarted; runs again`;
      }
      rec.workerId = "";
      this.lifecycle.changed(rec);
      if (live.limits) this.limits.left(live);
      this.table.enqueue(live);
      requeued++;
    }
    if (requeued) this.inbox.wake();
    return requeued;
  }

  private giveUpAdoption(): void {
    for (const live of this.awaitingAdoption.values()) {
      if (live.rec.state !== "queued") continue;
      live.rec.waitingReason = "its worker did not come back after the control node restarted; runs again";
      live.rec.workerId = "";
      if (live.limits) this.limits.left(live);
      this.table.enqueue(live);
    }
    if (this.awaitingAdoption.size) this.logger.warn({ tasks: this.awaitingAdoption.size }, "requeued tasks no worker re-adopted after the restart");
    this.awaitingAdoption.clear();
    this.awaitingByWorker.clear();
    this.inbox.wake();
  }
}
