/**
 * Task graphs (docs/adr/0027-task-graphs.md): a task submitted with `dependsOn` waits here, out
 * of the task heap, until every dependency finished. Then it enters the queue (or the due-time
 * heap, when it is also delayed) carrying their outcomes for its handler; or, when one failed or
 * was cancelled and it did not ask to run anyway, the lifecycle cancels it, naming the dependency
 * (and its own dependents in turn, through the same path). Nothing here is durable of its own:
 * the dependents' records keep `dependsOn`, and after a restart {@link Dependencies.restore}
 * rebuilds who waits on whom from the unfinished tasks and the store's finished ones.
 */
import { inject, injectable } from "tsyringe";
import {
  MAX_DEPENDENCIES,
  TOKENS,
  isFinal,
  type Clock,
  type Durability,
  type SchedulerInbox,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TaskStore,
  type TaskflowConfig,
} from "@taskflow/core";
import { TaskStateSchema, enumNames } from "@taskflow/proto";
import { encodeDependencyResults } from "@taskflow/proto/fast";
import { type DelayedTasks } from "./delayed-tasks.js";
import { type LiveTask, type TaskTable } from "./task-table.js";
import { invalid } from "./validation.js";

/** A finished dependency as its dependents see it. */
export interface DependencyOutcome {
  readonly state: TaskState;
  readonly result: Uint8Array | undefined;
  readonly error: string;
}

/** What a dependent does now: waits here, enters the queue, or is cancelled (`why`). */
export type Readiness = { readonly kind: "waits" } | { readonly kind: "ready" } | { readonly kind: "cancel"; readonly why: string };

const WAITS: Readiness = { kind: "waits" };
const READY: Readiness = { kind: "ready" };

/** A dependent to cancel because a dependency failed. */
export interface Doomed {
  readonly live: LiveTask;
  readonly why: string;
}

const NONE: readonly Doomed[] = [];
const NO_IDS: ReadonlySet<string> = new Set();

/** A dependency gone from the store (purged past `control.resultRetentionMs`) counts as this. */
const PURGED: DependencyOutcome = { state: "cancelled", result: undefined, error: "no longer known (purged from the store)" };

/** One dependent waiting for its dependencies. */
interface Waiter {
  readonly rec: TaskRecord;
  /** Set once it is admitted (after its store insert); until then it only collects outcomes. */
  live: LiveTask | undefined;
  /** Dependencies not finished yet. */
  readonly pending: Set<string>;
  readonly outcomes: Map<string, DependencyOutcome>;
  /** Why it must be cancelled (a dependency failed and it does not run anyway); "" while none did. */
  doomed: string;
}

/** The IDs a waiting reason lists before "… and N more". */
const LISTED_IDS = 5;
/** `Task.dependents` lists at most this many. */
const LISTED_DEPENDENTS = 1_000;

const wireStates = new Map([...enumNames(TaskStateSchema)].map(([n, name]) => [name, n]));

/** What the dependencies use of each part, and nothing more. */
type Tasks = Pick<TaskTable, "get" | "enqueue">;
type Delays = Pick<DelayedTasks, "holdUntilDue">;

@injectable()
export class Dependencies {
  /** Dependents waiting, by their task ID. */
  private readonly waiters = new Map<string, Waiter>();
  /** Unfinished dependencies → the dependents waiting for them. */
  private readonly waitersOf = new Map<string, Set<Waiter>>();

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.TaskStore) private readonly store: TaskStore,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.DelayedTasks) private readonly delayed: Delays,
    @inject(TOKENS.StoreWriteBehind) private readonly durability: Pick<Durability, "afterDurable">,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.Clock) private readonly clock: Clock,
  ) {}

  /** Dependents waiting now. */
  get size(): number {
    return this.waiters.size;
  }

  // ---- submit --------------------------------------------------------------------------------

  /**
   * The finished dependencies of `fresh` tasks (about to be stored for `tenant`), read from the
   * store; each dependency must be one of `fresh`, an unfinished task or a stored one of the
   * same tenant, else INVALID_ARGUMENT names the field (`where(i)`) and the ID. Another tenant's
   * task answers as an unknown one does.
   */
  async lookUp(
    fresh: readonly TaskRecord[],
    where: (i: number) => string,
    tenant: string,
    ids: ReadonlySet<string> = new Set(fresh.map((r) => r.id)),
    lenient = false,
  ): Promise<Map<string, DependencyOutcome>> {
    const known = new Map<string, DependencyOutcome>();
    for (let i = 0; i < fresh.length; i++) {
      const deps = fresh[i]!.dependsOn;
      if (!deps) continue;
      for (let j = 0; j < deps.length; j++) {
        const id = deps[j]!;
        if (ids.has(id) || known.has(id)) continue;
        const live = this.table.get(id);
        if (live) {
          if (live.rec.tenant !== tenant) throw unknownDependency(where(i), j, id);
          continue;
        }
        let rec = await this.store.get(id);
        // Finished a moment ago: its final state is in the write batch the store has not taken yet.
        if (rec && !isFinal(rec.state) && !this.table.get(id)) {
          await new Promise<void>((resolve) => this.durability.afterDurable(resolve));
          rec = await this.store.get(id);
        }
        if (this.table.get(id)) continue;
        if (!rec || rec.tenant !== tenant || !isFinal(rec.state)) {
          // A retried task's dependency may have been purged since: it counts as cancelled, as after a restart.
          if (!lenient) throw unknownDependency(where(i), j, id);
          known.set(id, PURGED);
          continue;
        }
        known.set(id, rec);
      }
    }
    return known;
  }

  /**
   * {@link lookUp} for finished tasks put back in the queue (a dead-letter retry, ADR 0020): a
   * dependency purged from the store since counts as cancelled rather than refusing the retry;
   * `retried` are the IDs of every task of the retry (they count as live).
   */
  lookUpForRetry(recs: readonly TaskRecord[], tenant: string, retried: ReadonlySet<string>): Promise<Map<string, DependencyOutcome>> {
    return this.lookUp(recs, (i) => `task ${recs[i]!.id}`, tenant, retried, true);
  }

  /**
   * Just before `fresh` is stored: its dependents start collecting their dependencies' outcomes,
   * so that none finishing while the store writes is missed. Returns the IDs of dependencies
   * neither live nor in `known` (they finished since {@link lookUp}; look them up and plan again);
   * then nothing was planned.
   */
  plan(fresh: readonly TaskRecord[], known: ReadonlyMap<string, DependencyOutcome>, alsoFresh: ReadonlySet<string> = NO_IDS): string[] {
    const ids = new Set<string>(alsoFresh);
    for (const rec of fresh) ids.add(rec.id);
    const missing: string[] = [];
    for (const rec of fresh) {
      const deps = rec.dependsOn;
      if (!deps?.length) continue;
      for (const id of deps) if (!ids.has(id) && !this.table.get(id) && !known.has(id)) missing.push(id);
    }
    if (missing.length) return missing;
    for (const rec of fresh) {
      if (!rec.dependsOn?.length) continue;
      const waiter = this.waiterOf(rec, undefined);
      for (const id of rec.dependsOn) {
        if (ids.has(id) || this.table.get(id)) this.waitFor(waiter, id);
        else this.record(waiter, id, known.get(id)!);
      }
      rec.waitingReason = waitingReason(waiter);
    }
    return missing;
  }

  /** The store refused `fresh`: its dependents wait for nothing. */
  drop(fresh: readonly TaskRecord[]): void {
    for (const rec of fresh) if (rec.dependsOn) this.forget(rec.id);
  }

  /** A planned task was stored and enters the table: whether it waits here, is ready, or is cancelled. */
  hold(live: LiveTask): Readiness {
    const waiter = this.waiters.get(live.rec.id);
    if (!waiter) return READY;
    waiter.live = live;
    return this.evaluate(waiter);
  }

  // ---- while tasks finish ----------------------------------------------------------------------

  /**
   * A task finished (any final state). Its dependents that now have every outcome enter the
   * queue; those to cancel are returned, for the lifecycle to cancel (which comes back here for
   * their own dependents). A finished dependent stops waiting.
   */
  settled(rec: TaskRecord): readonly Doomed[] {
    if (this.waiters.size === 0) return NONE;
    if (rec.dependsOn) this.forget(rec.id);
    const waiting = this.waitersOf.get(rec.id);
    if (!waiting) return NONE;
    this.waitersOf.delete(rec.id);
    let doomed: Doomed[] | undefined;
    let woke = false;
    for (const waiter of waiting) {
      waiter.pending.delete(rec.id);
      this.record(waiter, rec.id, rec);
      if (!waiter.live) continue; // not stored yet: hold() decides
      const readiness = this.evaluate(waiter);
      if (readiness.kind === "cancel") (doomed ??= []).push({ live: waiter.live, why: readiness.why });
      else if (readiness.kind === "ready") {
        if (!(waiter.rec.notBefore && this.delayed.holdUntilDue(waiter.live))) this.table.enqueue(waiter.live);
        woke = true;
      }
    }
    if (woke) this.inbox.wake();
    return doomed ?? NONE;
  }

  // ---- restart ---------------------------------------------------------------------------------

  /**
   * After a restart, with every unfinished task back in the table: who waits on whom again.
   * Each dependent's finished dependencies are read from the store (one gone from it, purged
   * past `control.resultRetentionMs`, counts as cancelled). Returns what each queued dependent
   * does now; one that was with a worker gets its results back in case it runs again.
   */
  async restore(lives: readonly LiveTask[]): Promise<Map<LiveTask, Readiness>> {
    const verdicts = new Map<LiveTask, Readiness>();
    // A dependency many dependents share is read once.
    const stored = new Map<string, TaskRecord | undefined>();
    for (const live of lives) {
      const rec = live.rec;
      if (!rec.dependsOn?.length) continue;
      const waiter = this.waiterOf(rec, undefined);
      for (const id of rec.dependsOn) {
        if (this.table.get(id)) {
          this.waitFor(waiter, id);
          continue;
        }
        let dep = stored.get(id);
        if (!stored.has(id)) stored.set(id, (dep = await this.store.get(id)));
        this.record(waiter, id, dep && dep.tenant === rec.tenant ? dep : PURGED);
      }
      waiter.live = live;
      if (rec.state !== "queued" || rec.workerId) {
        // It had already started: whatever it waited for has finished.
        this.forget(rec.id);
        live.dependencyResults = this.encode(waiter);
        continue;
      }
      const readiness = this.evaluate(waiter);
      if (readiness.kind === "waits") rec.waitingReason = waitingReason(waiter);
      verdicts.set(live, readiness);
    }
    return verdicts;
  }

  // ---- reads -----------------------------------------------------------------------------------

  /** The dependencies a task still waits for; empty when it waits for none. */
  waitingOn(taskId: string): string[] {
    const waiter = this.waiters.get(taskId);
    return waiter ? [...waiter.pending] : [];
  }

  /** Tasks waiting for this one now (at most 1,000), and how many there are. */
  dependentsOf(taskId: string): { ids: string[]; count: number } {
    const waiting = this.waitersOf.get(taskId);
    if (!waiting) return { ids: [], count: 0 };
    const ids: string[] = [];
    for (const waiter of waiting) {
      if (ids.length >= LISTED_DEPENDENTS) break;
      ids.push(waiter.rec.id);
    }
    return { ids, count: waiting.size };
  }

  /** Why a waiting dependent waits ("waiting for 2 of 3 dependencies: …"); "" when it does not. */
  reasonFor(taskId: string): string {
    const waiter = this.waiters.get(taskId);
    return waiter ? waitingReason(waiter) : "";
  }

  // ---- internals -------------------------------------------------------------------------------

  private waiterOf(rec: TaskRecord, live: LiveTask | undefined): Waiter {
    const waiter: Waiter = { rec, live, pending: new Set(), outcomes: new Map(), doomed: "" };
    this.waiters.set(rec.id, waiter);
    return waiter;
  }

  private waitFor(waiter: Waiter, id: string): void {
    waiter.pending.add(id);
    let set = this.waitersOf.get(id);
    if (!set) this.waitersOf.set(id, (set = new Set()));
    set.add(waiter);
  }

  private record(waiter: Waiter, id: string, dep: DependencyOutcome): void {
    waiter.outcomes.set(id, { state: dep.state, result: dep.result, error: dep.error });
    if (dep.state !== "succeeded" && !waiter.doomed && waiter.rec.onDependencyFailure !== "run") {
      waiter.doomed = `dependency ${id} ${dep.state === "failed" ? "failed" : "was cancelled"}${dep.error ? `: ${dep.error}` : ""}`;
    }
  }

  /** Whether an admitted waiter waits, is ready (its results attached, it stops waiting) or is cancelled. */
  private evaluate(waiter: Waiter): Readiness {
    const live = waiter.live!;
    if (waiter.doomed) {
      this.forget(waiter.rec.id);
      return { kind: "cancel", why: waiter.doomed };
    }
    if (waiter.pending.size > 0) {
      waiter.rec.waitingReason = waitingReason(waiter);
      return WAITS;
    }
    this.forget(waiter.rec.id);
    live.dependencyResults = this.encode(waiter);
    // The stored reason ("waiting for …") stays true of the past; `get` explains the heap now.
    waiter.rec.waitingReason = waiter.rec.notBefore > this.clock.now() ? waiter.rec.waitingReason : "";
    return READY;
  }

  /**
   * The outcomes in `dependsOn` order, their results within `control.maxPayloadBytes` together:
   * past it, later results are left out (flagged) so the assignment stays within the worker's
   * message limit.
   */
  private encode(waiter: Waiter): Uint8Array {
    let budget = this.config.control.maxPayloadBytes;
    const results = [];
    for (const id of waiter.rec.dependsOn ?? []) {
      const o = waiter.outcomes.get(id);
      if (!o) continue;
      const size = o.result?.byteLength ?? 0;
      const fits = size <= budget;
      if (fits) budget -= size;
      results.push({
        taskId: id,
        state: wireStates.get(o.state) ?? 0,
        result: fits && o.result ? o.result : new Uint8Array(0),
        error: o.error,
        resultOmitted: !fits,
      });
    }
    return encodeDependencyResults(results);
  }

  /** The dependent stops waiting (ready, cancelled, finished or dropped). */
  private forget(taskId: string): void {
    const waiter = this.waiters.get(taskId);
    if (!waiter) return;
    this.waiters.delete(taskId);
    for (const id of waiter.pending) {
      const set = this.waitersOf.get(id);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.waitersOf.delete(id);
    }
  }
}

/**
 * The submit-time checks of one spec's `dependsOn` (`where` names it, such as `specs[2]`):
 * at most {@link MAX_DEPENDENCIES}, each a non-empty ID of at most 200 characters, no repeats.
 */
export function validateDependencies(spec: TaskSpec, where: string): void {
  const deps = spec.dependsOn;
  if (spec.onDependencyFailure !== undefined && spec.onDependencyFailure !== "cancel" && spec.onDependencyFailure !== "run") {
    throw invalid(`${where}.on_dependency_failure must be CANCEL or RUN_ANYWAY`);
  }
  if (!deps) return;
  if (deps.length > MAX_DEPENDENCIES) throw invalid(`${where}.depends_on has ${deps.length} IDs; at most ${MAX_DEPENDENCIES}`);
  const seen = new Set<string>();
  for (let j = 0; j < deps.length; j++) {
    const id = deps[j]!;
    if (!id || id.length > 200) throw invalid(`${where}.depends_on[${j}] must be a task ID (1-200 characters)`);
    if (seen.has(id)) throw invalid(`${where}.depends_on[${j}] repeats ${id}`);
    seen.add(id);
  }
}

/**
 * A flow's nodes by index: each `local[i]` lists the nodes node i waits for. INVALID_ARGUMENT
 * for an index out of range, a node waiting for itself, a repeat, or a cycle (naming its nodes).
 */
export function checkFlow(local: readonly (readonly number[])[]): void {
  const n = local.length;
  for (let i = 0; i < n; i++) {
    const seen = new Set<number>();
    const deps = local[i]!;
    if (deps.length > MAX_DEPENDENCIES) throw invalid(`nodes[${i}].depends_on_nodes has ${deps.length} entries; at most ${MAX_DEPENDENCIES}`);
    for (let j = 0; j < deps.length; j++) {
      const k = deps[j]!;
      if (!Number.isInteger(k) || k < 0 || k >= n) throw invalid(`nodes[${i}].depends_on_nodes[${j}] is ${k}, not a node of this flow (0 … ${n - 1})`);
      if (k === i) throw invalid(`nodes[${i}].depends_on_nodes[${j}] names the node itself`);
      if (seen.has(k)) throw invalid(`nodes[${i}].depends_on_nodes[${j}] repeats node ${k}`);
      seen.add(k);
    }
  }
  // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done. A path back to a node on
  // the path is a cycle, reported from that node.
  const mark = new Uint8Array(n);
  const parent = new Int32Array(n).fill(-1);
  for (let start = 0; start < n; start++) {
    if (mark[start]) continue;
    const stack: [number, number][] = [[start, 0]];
    mark[start] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [node, next] = top;
      const deps = local[node]!;
      if (next >= deps.length) {
        mark[node] = 2;
        stack.pop();
        continue;
      }
      top[1] = next + 1;
      const k = deps[next]!;
      if (mark[k] === 1) {
        const cycle = [k];
        for (let at = node; at !== k && at >= 0; at = parent[at]!) cycle.push(at);
        cycle.push(k);
        throw invalid(`nodes[${node}].depends_on_nodes forms a cycle: ${cycle.reverse().join(" → ")} (each waits for the next)`);
      }
      if (mark[k] === 0) {
        mark[k] = 1;
        parent[k] = node;
        stack.push([k, 0]);
      }
    }
  }
}

function waitingReason(waiter: Waiter): string {
  const total = waiter.rec.dependsOn?.length ?? 0;
  const ids: string[] = [];
  for (const id of waiter.pending) {
    if (ids.length >= LISTED_IDS) break;
    ids.push(id);
  }
  const more = waiter.pending.size > ids.length ? ` and ${waiter.pending.size - ids.length} more` : "";
  return `waiting for ${waiter.pending.size} of ${total} dependencies: ${ids.join(", ")}${more}`;
}

function unknownDependency(where: string, j: number, id: string) {
  return invalid(`${where}.depends_on[${j}] names no task of this tenant: ${id} (unknown, or finished longer ago than control.resultRetentionMs)`);
}
