/** The conformance kit's last check: the scheduler's loop in miniature, run through a policy. */
import { SCORE_CANDIDATES, type PolicyTask, type PolicyWorker, type SchedulingPolicy } from "../policy.js";
import { createPolicyTestContext, makePolicyTask, makePolicyWorker } from "./policy-fixtures.js";
import { BASE_TIME, SAMPLE_TENANTS, builtInFits, describeTask, fail, type Kit } from "./policy-kit.js";
import { prng } from "./random.js";

interface SimTask {
  task: PolicyTask;
  key: number;
  assignments: number;
  completions: number;
  worker: SimWorker | undefined;
}

interface SimWorker {
  id: string;
  slots: number;
  labels: Readonly<Record<string, string>>;
  taskTypes: ReadonlySet<string>;
  joinSeq: number;
  lastAssignedSeq: number;
  running: Set<SimTask>;
  alive: boolean;
}

/**
 * The scheduler's loop in miniature: a task heap ordered by (taskKey, seq), a worker list tried in
 * (workerKey, joinSeq) order among workers with a free slot, the built-in checks, then the
 * policy's filter, then its score over the first SCORE_CANDIDATES feasible workers; onAssigned
 * and onFinished as tasks start, end and come back from a lost worker. A task no worker takes
 * stays queued and the next one is tried.
 */
export class Simulation {
  private readonly random: () => number;
  private readonly context = createPolicyTestContext(BASE_TIME);
  private readonly policy: SchedulingPolicy;
  private readonly tasks: SimTask[] = [];
  private readonly queue: SimTask[] = [];
  private readonly workers: SimWorker[] = [];
  private assignSeq = 0;
  private joinSeq = 0;
  private now = BASE_TIME;

  constructor(
    private readonly kit: Kit,
    seed: number,
    private readonly taskCount: number,
  ) {
    this.random = prng(seed);
    this.policy = kit.instance(this.context);
  }

  run(): void {
    for (const [slots, labels, types] of [
      [1, { zone: "x" }, ["a", "b"]],
      [2, { zone: "y" }, ["a"]],
      [4, { zone: "x" }, ["a", "b"]],
      [3, {}, ["b"]],
    ] as const) {
      this.join(slots, labels, new Set(types));
    }
    let submitted = 0;
    let lostOne = false;
    for (let step = 0; step < 100_000; step++) {
      this.tick(1 + Math.floor(this.random() * 50));
      const burst = Math.min(this.taskCount - submitted, Math.floor(this.random() * 12));
      for (let i = 0; i < burst; i++) this.submit(++submitted);
      this.schedule();
      if (!lostOne && submitted >= this.taskCount / 2) {
        lostOne = this.loseBusiestWorker();
      }
      this.completeSome();
      const done = this.tasks.every((t) => t.completions === 1);
      if (submitted === this.taskCount && done) break;
      if (submitted === this.taskCount && this.queue.length > 0 && this.workers.every((w) => w.running.size === 0)) {
        this.schedule();
        if (this.workers.every((w) => w.running.size === 0)) {
          const stuck = this.queue.slice(0, 3).map((t) => describeTask(t.task));
          fail(`${this.queue.length} task(s) stayed queued with every worker idle, for example ${stuck.join(", ")}`);
        }
      }
    }
    try {
      this.policy.close?.();
    } catch (error) {
      fail(`close() threw: ${(error as Error)?.message ?? String(error)}`, error);
    }
    for (const t of this.tasks) {
      if (t.completions !== 1) fail(`${describeTask(t.task)} completed ${t.completions} times, expected exactly once`);
      if (t.assignments !== t.task.attempt) {
        fail(`${describeTask(t.task)} was assigned ${t.assignments} times in ${t.task.attempt} attempt(s), expected once per attempt`);
      }
    }
    if (this.tasks.length !== this.taskCount) fail(`submitted ${this.tasks.length} tasks, expected ${this.taskCount}`);
  }

  private tick(ms: number): void {
    this.now += ms;
    this.context.setNow(this.now);
  }

  private join(slots: number, labels: Readonly<Record<string, string>>, taskTypes: ReadonlySet<string>): void {
    const joinSeq = ++this.joinSeq;
    this.workers.push({ id: `sim-w${joinSeq}`, slots, labels, taskTypes, joinSeq, lastAssignedSeq: 0, running: new Set(), alive: true });
  }

  private submit(seq: number): void {
    const task = makePolicyTask({
      id: `sim-${seq}`,
      type: this.random() < 0.7 ? "a" : "b",
      priority: Math.floor(this.random() * 4),
      seq,
      tenant: SAMPLE_TENANTS[Math.floor(this.random() * SAMPLE_TENANTS.length)] ?? "default",
      createdAt: this.now,
      enqueuedAt: this.now,
      requiredLabels: this.random() < 0.2 ? { zone: "x" } : {},
      expectedDurationMs: Math.floor(this.random() * 1000),
    });
    const entry: SimTask = { task, key: this.kit.taskKey(this.policy, task), assignments: 0, completions: 0, worker: undefined };
    this.tasks.push(entry);
    this.enqueue(entry);
  }

  private enqueue(entry: SimTask): void {
    this.queue.push(entry);
    this.queue.sort((x, y) => x.key - y.key || x.task.seq - y.task.seq);
  }

  private view(w: SimWorker): PolicyWorker {
    return makePolicyWorker({
      id: w.id,
      host: "sim",
      slots: w.slots,
      running: w.running.size,
      labels: w.labels,
      taskTypes: w.taskTypes,
      lastAssignedSeq: w.lastAssignedSeq,
      joinSeq: w.joinSeq,
    });
  }

  private schedule(): void {
    const free = () =>
      this.workers
        .filter((w) => w.alive && w.running.size < w.slots)
        .map((w) => ({ w, key: this.kit.workerKey(this.policy, this.view(w)) }))
        .sort((x, y) => x.key - y.key || x.w.joinSeq - y.w.joinSeq);
    let candidates = free();
    for (const entry of [...this.queue]) {
      if (candidates.length === 0) break;
      const feasible: SimWorker[] = [];
      for (const { w } of candidates) {
        const view = this.view(w);
        if (builtInFits(entry.task, view) && this.kit.filterResult(this.policy, entry.task, view).fits) feasible.push(w);
        if (feasible.length >= (this.policy.score ? SCORE_CANDIDATES : 1)) break;
      }
      let w = feasible[0];
      if (!w) continue;
      let best = -1;
      for (const candidate of this.policy.score ? feasible : []) {
        const score = this.kit.scoreOf(this.policy, entry.task, this.view(candidate)) ?? 0;
        if (score > best) [w, best] = [candidate, score];
      }
      if (entry.worker !== undefined) fail(`${describeTask(entry.task)} was assigned while already on ${entry.worker.id}`);
      this.queue.splice(this.queue.indexOf(entry), 1);
      w.running.add(entry);
      w.lastAssignedSeq = ++this.assignSeq;
      entry.worker = w;
      entry.assignments++;
      this.hook("onAssigned", entry, () => this.policy.onAssigned?.(entry.task, this.view(w)));
      if (w.running.size > w.slots) fail(`worker ${w.id} runs ${w.running.size} tasks with ${w.slots} slots`);
      candidates = free();
    }
  }

  private hook(name: string, entry: SimTask, call: () => unknown): void {
    try {
      call();
    } catch (error) {
      fail(`${name} threw for ${describeTask(entry.task)}: ${(error as Error)?.message ?? String(error)}`, error);
    }
  }

  private completeSome(): void {
    for (const w of this.workers) {
      for (const entry of [...w.running]) {
        if (this.random() < 0.35) {
          w.running.delete(entry);
          entry.worker = undefined;
          entry.completions++;
          this.hook("onFinished", entry, () => this.policy.onFinished?.(entry.task, "succeeded"));
        }
      }
    }
  }

  /** Takes the busiest worker away and requeues its tasks through onRequeue, then a replacement joins. */
  private loseBusiestWorker(): boolean {
    const victim = this.workers.filter((w) => w.alive).sort((a, b) => b.running.size - a.running.size)[0];
    if (!victim || victim.running.size === 0) return false;
    victim.alive = false;
    for (const entry of victim.running) {
      this.hook("onFinished", entry, () => this.policy.onFinished?.(entry.task, "requeued"));
      const priority = this.kit.requeuePriority(this.policy, entry.task) ?? entry.task.priority;
      const task = makePolicyTask({ ...entry.task, priority, attempt: entry.task.attempt + 1, enqueuedAt: this.now });
      entry.task = task;
      entry.key = this.kit.taskKey(this.policy, task);
      entry.worker = undefined;
      this.enqueue(entry);
    }
    victim.running.clear();
    this.join(victim.slots, victim.labels, victim.taskTypes);
    return true;
  }
}
