/**
 * The scheduler's side of the policy contract v2 (docs/adr/0004-policy-contract.md), kept out of
 * the loop's code: read-only views of workers, the bounded score over feasible candidates, and
 * the lifecycle hooks, called so that a throwing policy is logged and never breaks the loop.
 */
import {
  MAX_SCORE,
  frozenRecord,
  readonlySet,
  type Logger,
  type PolicyOutcome,
  type PolicyTask,
  type PolicyWorker,
  type SchedulingPolicy,
  type WorkerRecord,
} from "@taskflow/core";

/** How long a task a policy's filter refused waits before it is tried again, when nothing else changed. */
export const FILTER_RETRY_MS = 1000;

/** What a worker view is made of: the record plus the scheduler's counters. */
export interface WorkerViewSource {
  readonly record: Pick<WorkerRecord, "id" | "host" | "slots" | "labels" | "taskTypes"> & { running: number };
  readonly lastAssignedSeq: number;
  readonly joinSeq: number;
}

const NO_TYPES = readonlySet([]);

export class PolicyHooks {
  /** Read-only copies of a worker's type set and labels, made once per hello (a hello replaces both). */
  private readonly typeViews = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();
  private readonly labelViews = new WeakMap<object, Readonly<Record<string, string>>>();
  /** Hook failures per hook, so a policy that throws on every call logs once per power of ten. */
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly policy: SchedulingPolicy,
    private readonly logger: Pick<Logger, "warn"> | undefined,
  ) {}

  /** A frozen view of a worker; its labels and types are read-only copies, never the node's own. */
  worker(source: WorkerViewSource): PolicyWorker {
    const r = source.record;
    let types = this.typeViews.get(r.taskTypes);
    if (!types) this.typeViews.set(r.taskTypes, (types = readonlySet(r.taskTypes)));
    let labels = this.labelViews.get(r.labels);
    if (!labels) this.labelViews.set(r.labels, (labels = frozenRecord({ ...r.labels })));
    return Object.freeze({
      id: r.id,
      host: r.host,
      slots: r.slots,
      running: r.running,
      labels,
      taskTypes: types,
      lastAssignedSeq: source.lastAssignedSeq,
      joinSeq: source.joinSeq,
    });
  }

  /** A worker known only by ID: one a recovered task was with, before it reconnected. */
  absentWorker(id: string): PolicyWorker {
    return Object.freeze({ id, host: "", slots: 0, running: 0, labels: frozenRecord(undefined), taskTypes: NO_TYPES, lastAssignedSeq: 0, joinSeq: 0 });
  }

  /**
   * The candidate (feasible workers, in worker-key order) with the highest score for the task;
   * ties go to the earlier one. A score that is not a finite number in 0..100, or a throw, counts 0.
   */
  best<W>(task: PolicyTask, candidates: readonly W[], view: (w: W) => PolicyWorker): W | undefined {
    const score = this.policy.score;
    if (!score || candidates.length < 2) return candidates[0];
    let best = candidates[0];
    let bestScore = -1;
    for (const candidate of candidates) {
      let s = 0;
      try {
        s = score.call(this.policy, task, view(candidate));
      } catch (error) {
        this.failed("score", error);
      }
      if (!(s >= 0 && s <= MAX_SCORE)) s = 0;
      if (s > bestScore) {
        best = candidate;
        bestScore = s;
      }
    }
    return best;
  }

  assigned(task: PolicyTask, worker: PolicyWorker): void {
    if (!this.policy.onAssigned) return;
    try {
      this.policy.onAssigned(task, worker);
    } catch (error) {
      this.failed("onAssigned", error);
    }
  }

  finished(task: PolicyTask, outcome: PolicyOutcome): void {
    if (!this.policy.onFinished) return;
    try {
      this.policy.onFinished(task, outcome);
    } catch (error) {
      this.failed("onFinished", error);
    }
  }

  private failed(hook: string, error: unknown): void {
    const n = (this.failures.get(hook) ?? 0) + 1;
    this.failures.set(hook, n);
    if (Number.isInteger(Math.log10(n))) {
      this.logger?.warn({ policy: this.policy.name, hook, failures: n, err: error instanceof Error ? error.message : String(error) }, "scheduling policy hook threw; ignored");
    }
  }
}
