/**
 * The Main Scheduler: pops the task heap, asks the policy which worker fits, records the
 * assignment with a new epoch and batches assignments per worker into one message per turn.
 *
 * The worker heap holds only workers that take tasks and have a free slot, keyed by the policy;
 * a worker's key is recomputed in O(log n) whenever its load changes. A task no free worker can
 * take is parked by its shape (type + required labels) until a worker that could take it gets
 * a free slot, so it never blocks the tasks behind it.
 */
import { inject, injectable } from "tsyringe";
import { TOKENS, type Logger, type PolicyTask, type PolicyWorker, type Scheduler, type SchedulingPolicy, type TaskflowConfig } from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { type ProcessLifecycleManager, type LiveTask } from "./plm.js";
import { type WorkerRegister, type WorkerEntry } from "./register.js";

/** explainWait counts the tasks ahead of one up to this many, then says "100,000+". */
const AHEAD_LIMIT = 100_000;

@injectable()
export class MainScheduler implements Scheduler {
  readonly policyName: string;
  private scheduled = false;
  private running = false;
  private assignCounter = 0;
  /** Parked tasks by shape. */
  private readonly parked = new Map<string, LiveTask[]>();
  private readonly dirty = new Set<WorkerEntry>();
  private readonly maxPerTurn: number;
  /** Time spent in loop turns, for monitoring. */
  readonly stats = { turns: 0, assigned: 0, busyNs: 0n };

  constructor(
    @inject(TOKENS.Config) config: TaskflowConfig,
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.WorkerHeap) private readonly workerHeap: IndexedHeap,
    @inject(TOKENS.Plm) private readonly plm: ProcessLifecycleManager,
    @inject(TOKENS.Register) private readonly register: WorkerRegister,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.policyName = policy.name;
    this.maxPerTurn = config.scheduler.maxAssignmentsPerTurn;
    plm.hooks = {
      queued: () => this.wake(),
      released: (workerId, count) => this.release(workerId, count),
      cancelOnWorker: (workerId, taskId, epoch, reason) =>
        this.register.entry(workerId)?.session?.cancel([{ taskId, epoch }], reason),
      explainWait: (live) => this.explainWait(live),
    };
    register.hooks = {
      capacity: (worker) => this.capacityChanged(worker),
      lost: (worker, reason) => {
        this.plm.requeueWorkerTasks(worker.record.id, reason);
      },
      unschedulable: (worker) => this.dropFromHeap(worker),
    };
  }

  start(): void {
    this.running = true;
    this.wake();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.policy.close?.();
    this.logger.debug({ ...this.stats, busyNs: String(this.stats.busyNs) }, "scheduler stopped");
  }

  wake(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  /** Number of tasks parked because no worker can take them now. */
  parkedCount(): number {
    let n = 0;
    for (const list of this.parked.values()) n += list.length;
    return n;
  }

  /** One loop turn: assign until out of tasks, free workers, or the per-turn budget. */
  private turn(): void {
    this.scheduled = false;
    // Assignments would be changes the store cannot save; the PLM wakes us when it can again.
    if (!this.running || !this.plm.storeWritable) return;
    const started = process.hrtime.bigint();
    const taskHeap = this.plm.heap;
    let assigned = 0;
    while (assigned < this.maxPerTurn && this.workerHeap.size > 0) {
      const idx = taskHeap.pop();
      if (idx < 0) break;
      const live = this.plm.byHeapId(idx);
      if (!live || live.rec.state !== "queued") continue;
      const worker = this.pickWorker(live);
      if (!worker) continue;
      const epoch = this.plm.assign(live, worker.record.id);
      const rec = live.rec;
      worker.outbox.push({
        taskId: rec.id,
        epoch,
        type: rec.type,
        payload: rec.payload,
        attempt: rec.attempt,
        timeoutMs: rec.timeoutMs || 0,
      });
      worker.record.running++;
      worker.lastAssignedSeq = ++this.assignCounter;
      this.dirty.add(worker);
      this.rekey(worker);
      assigned++;
    }
    for (const worker of this.dirty) {
      const session = worker.session;
      const outbox = worker.outbox;
      worker.outbox = [];
      if (!outbox.length || !session) continue;
      const send = () => {
        // A session that broke meanwhile gets nothing: its hello requeued these tasks.
        if (worker.session !== session) return;
        session.assign(outbox);
        this.register.sentAssignments(worker, outbox.length);
      };
      // Write-ahead: a worker never runs an assignment a restarted control node would not know
      // of (it would run the task again, under the same epoch).
      if (this.plm.assignmentsWaitForStore) this.plm.afterDurable(send);
      else send();
    }
    this.dirty.clear();
    this.stats.turns++;
    this.stats.assigned += assigned;
    this.stats.busyNs += process.hrtime.bigint() - started;
    if (assigned >= this.maxPerTurn && taskHeap.size > 0) this.wake();
  }

  /** The first worker, in the policy's order, that passes every filter; parks the task if none. */
  private pickWorker(live: LiveTask): WorkerEntry | undefined {
    const rejected: WorkerEntry[] = [];
    let chosen: WorkerEntry | undefined;
    let reason = "";
    // Only a policy with its own filter needs the task's view: build it once, and only then.
    let task: PolicyTask | undefined;
    while (this.workerHeap.size > 0) {
      const idx = this.workerHeap.pop();
      const worker = this.register.byHeapId(idx);
      if (!worker) continue;
      worker.handle = -1;
      const why = this.builtinFilter(live, worker);
      const verdict = why || !this.policy.filter ? undefined : this.policy.filter((task ??= this.plm.policyView(live)), this.policyView(worker));
      if (!why && (!verdict || verdict.fits)) {
        chosen = worker;
        break;
      }
      reason ||= why || (verdict && !verdict.fits ? `filtered out by policy ${this.policyName}: ${verdict.reason}` : "");
      rejected.push(worker);
    }
    for (const worker of rejected) this.pushWorker(worker);
    if (!chosen) this.park(live, this.waitingReason(live, reason));
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

  private waitingReason(live: LiveTask, fallback: string): string {
    const rec = live.rec;
    const all = this.register.entriesList().filter((w) => w.record.state !== "dead");
    const serving = all.filter((w) => w.record.taskTypes.has(rec.type));
    if (serving.length === 0) return `no worker serves task type "${rec.type}"`;
    const labelled = serving.filter((w) => !this.builtinFilter(live, w));
    if (labelled.length === 0) {
      const wanted = Object.entries(rec.requiredLabels).map(([k, v]) => `${k}=${v}`).join(", ");
      return `no worker serving "${rec.type}" has the required labels ${wanted}`;
    }
    if (labelled.every((w) => !this.register.schedulable(w))) {
      return `all ${labelled.length} worker(s) that can take it are busy or unavailable`;
    }
    return fallback || "waiting for a worker";
  }

  /**
   * Why a task in the heap waits: the workers that could take it are busy (or there are none),
   * and how many tasks the policy puts before it. The count walks only the part of the heap
   * ahead of the task, up to {@link AHEAD_LIMIT}: `get` stays cheap with a million queued.
   */
  explainWait(live: LiveTask): string {
    const counted = this.plm.heap.countAhead(live.handle, AHEAD_LIMIT);
    const ahead = counted >= AHEAD_LIMIT ? `${AHEAD_LIMIT.toLocaleString("en-US")}+` : counted > 0 ? String(counted) : "";
    const behind = ahead ? `; ${ahead} task(s) ahead of it in ${this.policyName} order` : "";
    const why = this.waitingReason(live, "");
    if (why) return `${why}${behind}`;
    return ahead ? `behind ${ahead} task(s) in ${this.policyName} order` : "next in line";
  }

  private park(live: LiveTask, reason: string): void {
    this.plm.park(live, reason);
    const shape = shapeOf(live);
    let list = this.parked.get(shape);
    if (!list) this.parked.set(shape, (list = []));
    list.push(live);
  }

  /** Put back parked tasks this worker might take. */
  private unparkFor(worker: WorkerEntry): void {
    if (this.parked.size === 0) return;
    let any = false;
    for (const [shape, list] of this.parked) {
      const sample = list.find((l) => l.parked && l.rec.state === "queued");
      if (!sample) {
        this.parked.delete(shape);
        continue;
      }
      if (this.builtinFilter(sample, worker)) continue;
      for (const live of list) this.plm.unpark(live);
      this.parked.delete(shape);
      any = true;
    }
    if (any) this.wake();
  }

  private release(workerId: string, count: number): void {
    const worker = this.register.entry(workerId);
    if (!worker) return;
    worker.record.running = Math.max(0, worker.record.running - count);
    if (worker.record.state === "draining" && worker.record.running === 0) {
      worker.session?.close();
      return;
    }
    this.capacityChanged(worker);
  }

  private capacityChanged(worker: WorkerEntry): void {
    if (!this.register.schedulable(worker)) {
      this.dropFromHeap(worker);
      return;
    }
    this.rekey(worker);
    this.unparkFor(worker);
    this.wake();
  }

  /** Re-key a worker after its load changed, or take it out of the heap when it is full. */
  private rekey(worker: WorkerEntry): void {
    if (!this.register.schedulable(worker)) {
      this.dropFromHeap(worker);
      return;
    }
    const key = this.policy.workerKey(this.policyView(worker));
    if (worker.handle >= 0 && this.workerHeap.update(worker.handle, key)) return;
    worker.handle = this.workerHeap.push(key, worker.idx);
  }

  private pushWorker(worker: WorkerEntry): void {
    worker.handle = this.workerHeap.push(this.policy.workerKey(this.policyView(worker)), worker.idx);
  }

  private dropFromHeap(worker: WorkerEntry): void {
    if (worker.handle >= 0) this.workerHeap.remove(worker.handle);
    worker.handle = -1;
  }

  private policyView(worker: WorkerEntry): PolicyWorker {
    const r = worker.record;
    return {
      id: r.id,
      host: r.host,
      slots: r.slots,
      running: r.running,
      labels: r.labels,
      taskTypes: r.taskTypes,
      lastAssignedSeq: worker.lastAssignedSeq,
      joinSeq: worker.joinSeq,
    };
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
