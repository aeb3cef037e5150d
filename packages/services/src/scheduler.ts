/**
 * The Main Scheduler: pops the task heap, asks the policy which worker fits, records the
 * assignment with a new epoch and batches assignments per worker into one message per turn.
 *
 * The worker heap holds only workers that take tasks and have a free slot, keyed by the policy;
 * a worker's key is recomputed in O(log n) whenever its load changes. A task no free worker can
 * take is parked by its shape (type + required labels) until a worker that could take it gets
 * a free slot, so it never blocks the tasks behind it; one the policy's filter refused is tried
 * again after FILTER_RETRY_MS too, since what the policy decides by may change without any worker
 * changing. The contract's other hooks (score, onAssigned, late binding) live in policy-hooks.ts.
 */
import { inject, injectable } from "tsyringe";
import {
  SCORE_CANDIDATES,
  TOKENS,
  type Durability,
  type Logger,
  type PolicyTask,
  type PolicyWorker,
  type Scheduler,
  type SchedulingPolicy,
  type TaskflowConfig,
  type TimerHandle,
  type Timers,
} from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { type WaitReasons } from "./plm.js";
import { FILTER_RETRY_MS } from "./policy-hooks.js";
import { type WorkerRegister } from "./register.js";
import { type WorkerEntry, type WorkerIndex } from "./worker-index.js";
import { type Limits } from "./limits.js";
import { type LoopInbox } from "./scheduler-inbox.js";
import { type TaskLifecycle } from "./task-lifecycle.js";
import { policyView as taskView, type LiveTask, type TaskTable } from "./task-table.js";

/** What the scheduler uses of each part, and nothing more. */
type QueuedTasks = Pick<TaskTable, "popQueued" | "park" | "unpark" | "inHeap" | "assigned" | "hooks">;
type Assigner = Pick<TaskLifecycle, "assign">;
type Workers = Pick<WorkerRegister, "schedulable" | "assigned" | "released" | "sentAssignments">;
type Directory = Pick<WorkerIndex, "get" | "byHeapId" | "entries">;
type Inbox = Pick<LoopInbox, "drive" | "halt" | "wake" | "takeFreed" | "takeChanged">;

@injectable()
export class MainScheduler implements Scheduler, WaitReasons {
  readonly policyName: string;
  private running = false;
  private assignCounter = 0;
  /** Parked tasks by shape. */
  private readonly parked = new Map<string, LiveTask[]>();
  /** Parked because the policy's filter refused every free worker that could take them. */
  private refused: LiveTask[] = [];
  private refusedTimer: TimerHandle | undefined;
  private readonly dirty = new Set<WorkerEntry>();
  private readonly maxPerTurn: number;
  /** Time spent in loop turns, for monitoring. */
  readonly stats = { turns: 0, assigned: 0, busyNs: 0n };

  constructor(
    @inject(TOKENS.Config) config: TaskflowConfig,
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.WorkerHeap) private readonly workerHeap: IndexedHeap,
    @inject(TOKENS.TaskTable) private readonly table: QueuedTasks,
    @inject(TOKENS.TaskLifecycle) private readonly lifecycle: Assigner,
    @inject(TOKENS.Register) private readonly register: Workers,
    @inject(TOKENS.StoreWriteBehind) private readonly durability: Durability,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: Inbox,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Limits) private readonly limits: Pick<Limits, "admit">,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.WorkerIndex) private readonly index: Directory,
  ) {
    this.policyName = policy.name;
    this.maxPerTurn = config.scheduler.maxAssignmentsPerTurn;
  }

  start(): void {
    this.running = true;
    this.inbox.drive(() => this.turn());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.inbox.halt();
    this.timers.clear(this.refusedTimer);
    this.policy.close?.();
    this.logger.debug({ ...this.stats, busyNs: String(this.stats.busyNs) }, "scheduler stopped");
  }

  /** Number of tasks parked because no worker can take them now. */
  parkedCount(): number {
    let n = 0;
    for (const list of this.parked.values()) n += list.length;
    return n + this.refused.length;
  }

  /** One loop turn: take in what changed, then assign until out of tasks, free workers, or the per-turn budget. */
  private turn(): void {
    // First, always: freed slots and worker changes keep the worker heap true, and a drained
    // worker is let go even while the store cannot write.
    this.applyChanges();
    // Assignments would be changes the store cannot save; store write-behind wakes us when it can again.
    if (!this.running || !this.durability.storeWritable) return;
    const started = process.hrtime.bigint();
    let assigned = 0;
    let held = 0;
    while (assigned < this.maxPerTurn && this.workerHeap.size > 0) {
      const live = this.table.popQueued();
      if (live === null) break;
      if (!live) continue;
      // Rate and concurrency limits (ADR 0026): a task they hold back is parked by them.
      if (live.limits !== undefined && !this.limits.admit(live)) {
        if (++held >= this.maxPerTurn) break;
        continue;
      }
      const worker = this.pickWorker(live);
      if (!worker) continue;
      const epoch = this.lifecycle.assign(live, worker.record.id);
      const rec = live.rec;
      worker.outbox.push({
        taskId: rec.id,
        epoch,
        type: rec.type,
        payload: rec.payload,
        attempt: rec.attempt,
        timeoutMs: rec.timeoutMs || 0,
        dependencyResults: live.dependencyResults,
        metadata: rec.metadata,
      });
      this.register.assigned(worker);
      worker.lastAssignedSeq = ++this.assignCounter;
      this.table.assigned(live, worker);
      this.dirty.add(worker);
      this.rekey(worker);
      assigned++;
    }
    for (const worker of this.dirty) {
      const session = worker.link.port;
      const outbox = worker.outbox;
      worker.outbox = [];
      if (!outbox.length || !session) continue;
      const send = () => {
        // A session that broke meanwhile gets nothing: its hello requeued these tasks.
        if (worker.link.port !== session) return;
        session.assign(outbox);
        this.register.sentAssignments(worker, outbox.length);
      };
      // Write-ahead: a worker never runs an assignment a restarted control node would not know
      // of (it would run the task again, under the same epoch).
      if (this.durability.assignmentsWaitForStore) this.durability.afterDurable(send);
      else send();
    }
    this.dirty.clear();
    this.stats.turns++;
    this.stats.assigned += assigned;
    this.stats.busyNs += process.hrtime.bigint() - started;
    if ((assigned >= this.maxPerTurn || held >= this.maxPerTurn) && this.table.inHeap > 0) this.inbox.wake();
  }

  /** Slots freed and workers changed since the last turn. */
  private applyChanges(): void {
    for (const [workerId, count] of this.inbox.takeFreed()) {
      const worker = this.index.get(workerId);
      if (worker) this.register.released(worker, count);
    }
    for (const worker of this.inbox.takeChanged()) this.capacityChanged(worker);
  }

  /**
   * The first worker, in the policy's order, that passes every filter (with `score`: the best of
   * the first SCORE_CANDIDATES that pass); parks the task if none.
   */
  private pickWorker(live: LiveTask): WorkerEntry | undefined {
    const rejected: WorkerEntry[] = [];
    const feasible: WorkerEntry[] = [];
    let chosen: WorkerEntry | undefined;
    let reason = "";
    let refusedByPolicy = false;
    // Only a policy with its own filter needs the task's view: build it once, and only then.
    let task: PolicyTask | undefined;
    while (this.workerHeap.size > 0) {
      const idx = this.workerHeap.pop();
      const worker = this.index.byHeapId(idx);
      if (!worker) continue;
      worker.handle = -1;
      const why = this.builtinFilter(live, worker);
      const verdict = why || !this.policy.filter ? undefined : this.policy.filter((task ??= taskView(live)), this.policyView(worker));
      if (!why && (!verdict || verdict.fits)) {
        feasible.push(worker);
        if (!this.policy.score || feasible.length >= SCORE_CANDIDATES) break;
        continue;
      }
      if (verdict && !verdict.fits) refusedByPolicy = true;
      reason ||= why || (verdict && !verdict.fits ? `filtered out by policy ${this.policyName}: ${verdict.reason}` : "");
      rejected.push(worker);
    }
    if (feasible.length) {
      chosen = this.table.hooks.best((task ??= taskView(live)), feasible, (w) => this.policyView(w));
      for (const worker of feasible) if (worker !== chosen) rejected.push(worker);
    }
    for (const worker of rejected) this.pushWorker(worker);
    if (!chosen) this.park(live, this.waitingReason(live, reason), refusedByPolicy);
    return chosen;
  }

  private builtinFilter(live: LiveTask, worker: WorkerEntry): string {
    const rec = live.rec;
    if (!worker.record.taskTypes.has(rec.type)) return `no free worker serves task type "${rec.type}"`;
    for (const key in rec.requiredLabels) {
      if (worker.record.labels[key] !== rec.requiredLabels[key]) return `no free worker has label ${key}=${rec.requiredLabels[key]}`;
    }
    return "";
  }

  /** Why no worker takes the task now, from the workers' side; `fallback` when they all could. */
  waitingReason(live: LiveTask, fallback: string): string {
    const rec = live.rec;
    // One pass, nothing copied: a task parks with every worker of the wrong shape, at any count of workers.
    let serving = 0;
    let labelled = 0;
    for (const w of this.index.entries()) {
      if (w.record.state === "dead" || !w.record.taskTypes.has(rec.type)) continue;
      serving++;
      if (this.builtinFilter(live, w)) continue;
      labelled++;
      if (this.register.schedulable(w)) return fallback || "waiting for a worker";
    }
    if (serving === 0) return `no worker serves task type "${rec.type}"`;
    if (labelled === 0) {
      const wanted = Object.entries(rec.requiredLabels).map(([k, v]) => `${k}=${v}`).join(", ");
      return `no worker serving "${rec.type}" has the required labels ${wanted}`;
    }
    return `all ${labelled} worker(s) that can take it are busy or unavailable`;
  }

  private park(live: LiveTask, reason: string, refusedByPolicy: boolean): void {
    this.table.park(live, reason);
    if (refusedByPolicy) {
      // Not by shape: a worker of the right shape changing is not the only thing the policy's
      // verdict may wait for (its clock, its own state); see unparkRefused.
      this.refused.push(live);
      this.refusedTimer ??= this.timers.setTimeout(() => {
        this.refusedTimer = undefined;
        this.unparkRefused();
      }, FILTER_RETRY_MS);
      return;
    }
    const shape = shapeOf(live);
    let list = this.parked.get(shape);
    if (!list) this.parked.set(shape, (list = []));
    list.push(live);
  }

  /** Puts back every task the policy's filter refused: on any worker change, and after FILTER_RETRY_MS. */
  private unparkRefused(): void {
    if (this.refused.length === 0) return;
    const list = this.refused;
    this.refused = [];
    for (const live of list) this.table.unpark(live);
    this.inbox.wake();
  }

  /** Put back parked tasks this worker might take. */
  private unparkFor(worker: WorkerEntry): void {
    this.unparkRefused();
    if (this.parked.size === 0) return;
    let any = false;
    for (const [shape, list] of this.parked) {
      const sample = list.find((l) => l.parked && l.rec.state === "queued");
      if (!sample) {
        this.parked.delete(shape);
        continue;
      }
      if (this.builtinFilter(sample, worker)) continue;
      for (const live of list) this.table.unpark(live);
      this.parked.delete(shape);
      any = true;
    }
    if (any) this.inbox.wake();
  }

  private capacityChanged(worker: WorkerEntry): void {
    if (!this.admits(worker)) {
      this.dropFromHeap(worker);
      return;
    }
    this.rekey(worker);
    this.unparkFor(worker);
    this.inbox.wake();
  }

  /** Re-key a worker after its load changed, or take it out of the heap when it is full. */
  private rekey(worker: WorkerEntry): void {
    if (!this.admits(worker)) {
      this.dropFromHeap(worker);
      return;
    }
    const key = this.policy.workerKey(this.policyView(worker));
    if (worker.handle >= 0 && this.workerHeap.update(worker.handle, key)) return;
    worker.handle = this.workerHeap.push(key, worker.idx);
  }

  /**
   * True when the worker takes another task now: it is schedulable (a free slot or prefetch room)
   * and, under a policy that needs late binding, has a free slot, so no task waits in its buffer
   * out of the policy's hands.
   */
  private admits(worker: WorkerEntry): boolean {
    if (!this.register.schedulable(worker)) return false;
    return !this.policy.lateBinding || worker.record.running < worker.record.slots;
  }

  private pushWorker(worker: WorkerEntry): void {
    worker.handle = this.workerHeap.push(this.policy.workerKey(this.policyView(worker)), worker.idx);
  }

  private dropFromHeap(worker: WorkerEntry): void {
    if (worker.handle >= 0) this.workerHeap.remove(worker.handle);
    worker.handle = -1;
  }

  private policyView(worker: WorkerEntry): PolicyWorker {
    return this.table.hooks.worker(worker);
  }
}

function shapeOf(live: LiveTask): string {
  const labels = Object.keys(live.rec.requiredLabels);
  if (labels.length === 0) return live.rec.type;
  return `${live.rec.type}\u0000${labels
    .sort()
    .map((k) => `${k}=${live.rec.requiredLabels[k]}`)
    .join("\u0000")}`;
}
