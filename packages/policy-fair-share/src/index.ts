/**
 * `fair-share`: weighted fair share of task starts across tenants, FIFO or priority order within
 * a tenant; workers least-loaded first, as in `least-loaded`. See docs/adr/0022-fair-share.md.
 *
 * ## Deficit round robin as start-time fair queueing
 * Deficit round robin serves the active tenants in turn, each `weight` tasks per round. Task keys
 * are computed once, on enqueue, so the round is written into the key instead: a tenant's tasks
 * get consecutive virtual start times `S = max(V, F_t)`, `F_t = S + 1 / weight_t`, where `F_t` is
 * the virtual finish of the tenant's last queued task and `V`, the global virtual time, is the
 * key of the last task the scheduler started (advanced by `onAssigned`). Popping the smallest key
 * serves, per unit of virtual time, `weight_t` tasks of every backlogged tenant: DRR's rounds, one
 * task at a time (start-time fair queueing, Goyal et al. 1996).
 *
 * ## Starvation bound
 * Every queued key is at least `V` (the heap pops the smallest, and new keys start at `V`), and a
 * tenant with nothing queued forgets its `F_t` (DRR resets an emptied queue's deficit). So a
 * newly active tenant's first task gets key `V`, behind only tasks whose key is exactly `V` —
 * at most one of each other backlogged tenant — and tasks the scheduler parked earlier. With two
 * tenants: at most one position behind. In `priority` mode, a task `p` levels above its tenant's
 * others moves `(p + ½) / weight` earlier in virtual time, so it may also pass a newcomer.
 *
 * ## State and restarts
 * Hook state is a function of what is queued: when nothing is queued, `V` and every `F_t` return
 * to zero, and `onAssigned` of a task the policy never keyed (the restart replay) changes
 * nothing. A restart re-keys queued tasks in seq order from a fresh state, which keeps each
 * tenant's order and the interleaving of backlogged tenants, but forgets the credit a
 * tenant had earned in the current backlog.
 */
import { definePolicy, type PolicyOutcome, type PolicyTask, type SchedulingPolicy } from "@taskflow/core";
import { leastLoadedWorkerKey } from "@taskflow/policy-least-loaded";

export interface FairShareOptions {
  /**
   * Weight of each tenant, by name: a backlogged tenant gets task starts in proportion to its
   * weight. Tenants not listed get `defaultWeight`. Each weight is more than 0 and at most 1000.
   * @defaultValue `{}`
   */
  weights: Readonly<Record<string, number>>;
  /**
   * Weight of a tenant not listed in `weights`; more than 0, at most 1000.
   * @defaultValue 1
   */
  defaultWeight: number;
  /**
   * Order within a tenant: `"fifo"` (submission order) or `"priority"` (a task `p` levels higher
   * goes ahead of up to `p` of its tenant's queued tasks; the tenant's share is unchanged).
   * @defaultValue "fifo"
   */
  within: "fifo" | "priority";
}

export const FAIR_SHARE_DEFAULTS: Readonly<FairShareOptions> = Object.freeze({ weights: Object.freeze({}), defaultWeight: 1, within: "fifo" });

/** Largest weight accepted: keeps a step of virtual time (1 / weight) well above float64 noise. */
export const MAX_WEIGHT = 1000;

/** What the policy remembers of a queued task: its key, its tenant to count it out, and which enqueue. */
interface Queued {
  readonly key: number;
  readonly tenant: string;
  readonly enqueuedAt: number;
}

/**
 * The fair-share state machine, apart from the plugin wrapper so the simulator and tests can
 * drive it directly.
 */
export class FairShare {
  /** Global virtual time: the key of the last task started since the queue was last empty. */
  private virtualTime = 0;
  /** Each tenant's virtual finish: where its next task starts, while it has tasks queued. */
  private readonly finish = new Map<string, number>();
  /** Queued tasks per tenant. */
  private readonly queuedOf = new Map<string, number>();
  /** Keys given to queued tasks, by task ID: the same enqueue asked again gets the same key. */
  private readonly queued = new Map<string, Queued>();

  constructor(private readonly options: FairShareOptions) {}

  weightOf(tenant: string): number {
    return Object.hasOwn(this.options.weights, tenant) ? this.options.weights[tenant]! : this.options.defaultWeight;
  }

  taskKey(task: PolicyTask): number {
    const known = this.queued.get(task.id);
    if (known) {
      if (known.enqueuedAt === task.enqueuedAt) return known.key;
      // Enqueued again without leaving (not something the scheduler does): the old place goes.
      this.leave({ id: task.id, enqueuedAt: known.enqueuedAt });
    }
    const step = 1 / this.weightOf(task.tenant);
    const start = Math.max(this.virtualTime, this.finish.get(task.tenant) ?? 0);
    this.finish.set(task.tenant, start + step);
    const priority = this.options.within === "priority" && Number.isFinite(task.priority) ? task.priority : 0;
    // Half a step more, so `p` levels pass exactly `p` of the tenant's tasks rather than tie with the p-th.
    const shift = priority === 0 ? 0 : priority + Math.sign(priority) * 0.5;
    const key = start - shift * step;
    this.queued.set(task.id, { key, tenant: task.tenant, enqueuedAt: task.enqueuedAt });
    this.queuedOf.set(task.tenant, (this.queuedOf.get(task.tenant) ?? 0) + 1);
    return key;
  }

  onAssigned(task: PolicyTask): void {
    const entry = this.leave(task);
    if (entry && entry.key > this.virtualTime) this.virtualTime = entry.key;
    this.resetWhenIdle();
  }

  onFinished(task: PolicyTask, outcome: PolicyOutcome): void {
    // Only a cancel while queued concerns the order; a start already counted for its tenant.
    if (outcome === "cancelled" && this.leave(task)) this.resetWhenIdle();
  }

  /** Tasks queued now, for tests. */
  get queuedCount(): number {
    return this.queued.size;
  }

  private leave(task: Pick<PolicyTask, "id" | "enqueuedAt">): Queued | undefined {
    const entry = this.queued.get(task.id);
    if (!entry || entry.enqueuedAt !== task.enqueuedAt) return undefined;
    this.queued.delete(task.id);
    const left = (this.queuedOf.get(entry.tenant) ?? 1) - 1;
    if (left > 0) {
      this.queuedOf.set(entry.tenant, left);
    } else {
      // DRR: a tenant whose queue empties keeps no credit or debt for its next task.
      this.queuedOf.delete(entry.tenant);
      this.finish.delete(entry.tenant);
    }
    return entry;
  }

  /** Nothing queued: nothing to be fair between, so virtual time starts over (and stays small). */
  private resetWhenIdle(): void {
    if (this.queued.size === 0) this.virtualTime = 0;
  }
}

export const fairSharePolicy = definePolicy<FairShareOptions>({
  name: "fair-share",
  coreVersions: "^0.1.0",
  defaults: { ...FAIR_SHARE_DEFAULTS, weights: {} },
  validate: (options) => {
    for (const [tenant, weight] of Object.entries(options.weights)) {
      if (typeof weight !== "number" || !(weight > 0 && weight <= MAX_WEIGHT)) {
        return `option "weights": the weight of tenant "${tenant}" must be a number more than 0 and at most ${MAX_WEIGHT}, got ${JSON.stringify(weight)}`;
      }
    }
    if (!(options.defaultWeight > 0 && options.defaultWeight <= MAX_WEIGHT)) {
      return `option "defaultWeight" must be more than 0 and at most ${MAX_WEIGHT}, got ${options.defaultWeight}`;
    }
    if (options.within !== "fifo" && options.within !== "priority") {
      return `option "within" must be "fifo" or "priority", got ${JSON.stringify(options.within)}`;
    }
    return undefined;
  },
  create: (options): SchedulingPolicy => {
    const state = new FairShare(options);
    return {
      name: "fair-share",
      // Every start is a fair-share decision only if no task waits in a worker's prefetch buffer.
      lateBinding: true,
      taskKey: (task) => state.taskKey(task),
      workerKey: leastLoadedWorkerKey,
      onAssigned: (task) => state.onAssigned(task),
      onFinished: (task, outcome) => state.onFinished(task, outcome),
    };
  },
});

export default fairSharePolicy;
