/**
 * The Process Lifecycle Manager's client-facing API: submit (all or none, deduplicated by
 * idempotency key and request ID), get (with why a queued task waits), cancel, list, watch and
 * result subscriptions. The PLM's work is done by its parts, each owning its own facts
 * (docs/adr/0015-the-control-plane.md): the task table (task-table.ts), the task lifecycle
 * (task-lifecycle.ts), result delivery (result-delivery.ts), store write-behind
 * (store-write-behind.ts) and recovery (recovery.ts). Every call acts for a tenant: submits are
 * checked against its quota (tenants.ts), reads see only the caller's scope
 * (docs/adr/0013-tenants.md).
 */
import { createHash, randomUUID } from "node:crypto";
import { inject, injectable } from "tsyringe";
import {
  Code,
  DEFAULT_TENANT,
  Reason,
  TOKENS,
  TaskflowError,
  isFinal,
  MAX_DEPENDENCIES,
  type BulkOptions,
  type FlowNode,
  type TaskGraphView,
  type Clock,
  type Durability,
  type Plm,
  type SchedulingPolicy,
  type SubmitResult,
  type TaskflowConfig,
  type TaskFilter,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskSpec,
  type TaskState,
  type TaskStore,
  type TenantScope,
  type TenantUsage,
} from "@taskflow/core";
import { checkIds, matches, maxTasksOf, resolveFilter } from "./bulk-filter.js";
import { finishedById, finishedMatching, notRetryable, retriedDependencies } from "./retry-lookup.js";
import { type DelayedTasks } from "./delayed-tasks.js";
import { checkFlow, validateDependencies, type Dependencies, type DependencyOutcome } from "./dependencies.js";
import { type MemoryAdmission } from "./memory-admission.js";
import { delayedUntil } from "./due-time.js";
import { type Limits } from "./limits.js";
import { type ResultDelivery } from "./result-delivery.js";
import { type TaskLifecycle } from "./task-lifecycle.js";
import { type LiveTask, type TaskTable } from "./task-table.js";
import { type ResultListener, type TenantAccount, type Tenants } from "./tenants.js";
import { invalid, validateSpec } from "./validation.js";

/** Why a task that no worker takes now waits, from the scheduler's side (the Scheduler answers). */
export interface WaitReasons {
  /** Which workers could take it and why none does now; "" when nothing stands in its way. */
  waitingReason(live: LiveTask, fallback: string): string;
}

/** explainWait counts the tasks ahead of one up to this many, then says "100,000+". */
const AHEAD_LIMIT = 100_000;

/** What the task API uses of each part, and nothing more. */
type Tasks = Pick<TaskTable, "get" | "byIdempotencyKey" | "tally" | "size" | "capacity" | "countAhead" | "liveTasks">;
type Transitions = Pick<TaskLifecycle, "admit" | "cancel" | "retry">;
type Subscriptions = Pick<ResultDelivery, "watch" | "subscribeResults">;
type Accounts = Pick<Tenants, "account" | "admit" | "settle" | "usage">;
type Delays = Pick<DelayedTasks, "holds">;
type Memory = Pick<MemoryAdmission, "admit">;
type Graph = Pick<Dependencies, "lookUp" | "lookUpForRetry" | "plan" | "drop" | "reasonFor" | "waitingOn" | "dependentsOf">;

@injectable()
export class ProcessLifecycleManager implements Plm {
  /** Submits with a request ID now being stored, so a retry that overtakes one waits for it. */
  private readonly inflightRequests = new Map<string, Promise<SubmitResult>>();
  private closed = false;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.TaskStore) private readonly store: TaskStore,
    @inject(TOKENS.SchedulingPolicy) private readonly policy: SchedulingPolicy,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.Tenants) private readonly tenants: Accounts,
    @inject(TOKENS.TaskLifecycle) private readonly lifecycle: Transitions,
    @inject(TOKENS.ResultDelivery) private readonly delivery: Subscriptions,
    @inject(TOKENS.StoreWriteBehind) private readonly durability: Durability,
    @inject(TOKENS.Scheduler) private readonly waits: WaitReasons,
    @inject(TOKENS.DelayedTasks) private readonly delayed: Delays,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.MemoryAdmission) private readonly memory: Memory,
    @inject(TOKENS.Dependencies) private readonly graph: Graph,
    @inject(TOKENS.Limits) private readonly limits: Pick<Limits, "waitingReason">,
  ) {}

  /** Takes no more submits. */
  stop(): void {
    this.closed = true;
  }

  // ---- client-facing -------------------------------------------------------------------------

  async submit(specs: readonly TaskSpec[], clientId: string, requestId = "", tenant = DEFAULT_TENANT): Promise<SubmitResult> {
    return this.submitRequest(specs, undefined, clientId, requestId, tenant);
  }

  async submitFlow(nodes: readonly FlowNode[], clientId: string, requestId = "", tenant = DEFAULT_TENANT): Promise<SubmitResult> {
    if (nodes.length === 0) throw invalid("nodes is empty; a flow holds 1 to 10,000 tasks");
    checkFlow(nodes.map((n) => n.dependsOnNodes));
    return this.submitRequest(
      nodes.map((n) => n.spec),
      nodes.map((n) => n.dependsOnNodes),
      clientId,
      requestId,
      tenant,
    );
  }

  graphOf(taskId: string): TaskGraphView {
    const { ids, count } = this.graph.dependentsOf(taskId);
    return { waitingOn: this.graph.waitingOn(taskId), dependents: ids, dependentCount: count };
  }

  /** `local[i]`, for a flow: the indices of the specs spec i waits for. */
  private async submitRequest(
    specs: readonly TaskSpec[],
    local: readonly (readonly number[])[] | undefined,
    clientId: string,
    requestId: string,
    tenant: string,
  ): Promise<SubmitResult> {
    const account = this.tenants.account(tenant);
    if (!requestId) return this.submitOnce(specs, local, clientId, account, undefined);
    if (requestId.length > 128) throw invalid(`request_id must be at most 128 characters, got ${requestId.length}`);
    const key = `${tenant}\n${clientId}\n${requestId}`;
    const inflight = this.inflightRequests.get(key);
    if (inflight) {
      const { ids } = await inflight;
      return { ids, deduplicated: ids.map(() => true) };
    }
    const attempt = this.submitOnce(specs, local, clientId, account, idDeriver(tenant, clientId, requestId));
    this.inflightRequests.set(key, attempt);
    try {
      return await attempt;
    } finally {
      this.inflightRequests.delete(key);
    }
  }

  /** `deriveId` is set for a submit with a request ID: task i gets `deriveId(i)`, the same on a retry. */
  private async submitOnce(
    specs: readonly TaskSpec[],
    local: readonly (readonly number[])[] | undefined,
    clientId: string,
    account: TenantAccount,
    deriveId: ((index: number) => string) | undefined,
  ): Promise<SubmitResult> {
    if (this.closed) throw new TaskflowError(Code.UNAVAILABLE, "the control node is shutting down");
    if (!this.durability.storeWritable) {
      throw new TaskflowError(Code.UNAVAILABLE, `the task store cannot write (${this.durability.storeHealth().error}); nothing was accepted, retry later`, {
        reason: Reason.STORE,
      });
    }
    const limits = { maxPayloadBytes: this.config.control.maxPayloadBytes, now: this.clock.now() };
    const where = (i: number) => (local ? `nodes[${i}].spec` : specs.length > 1 ? `specs[${i}]` : "spec");
    let graphed = local !== undefined;
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      validateSpec(spec, limits, local ? -1 : specs.length > 1 ? i : -1);
      if (spec.dependsOn || spec.onDependencyFailure) {
        validateDependencies(spec, where(i));
        graphed = true;
      }
    }
    if (deriveId) {
      const repeated = await this.repeatedRequest(specs, account.name, deriveId);
      if (repeated) return repeated;
    }

    const ids: string[] = new Array(specs.length);
    const deduplicated: boolean[] = new Array(specs.length).fill(false);
    const fresh: TaskRecord[] = [];
    /** The spec index of each of `fresh`. */
    const freshIndex: number[] = [];
    const seenKeys = new Map<string, number>();
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      if (spec.idempotencyKey) {
        const existing = this.table.byIdempotencyKey(account.name, spec.idempotencyKey)?.rec ?? (await this.store.findByIdempotencyKey(account.name, spec.idempotencyKey));
        const earlier = seenKeys.get(spec.idempotencyKey);
        if (existing || earlier !== undefined) {
          ids[i] = existing ? existing.id : ids[earlier!]!;
          deduplicated[i] = true;
          continue;
        }
        seenKeys.set(spec.idempotencyKey, i);
      }
      const rec = this.table.tally.newRecord(spec, account.name, clientId, deriveId ? deriveId(i) : randomUUID());
      ids[i] = rec.id;
      fresh.push(rec);
      if (graphed) freshIndex.push(i);
    }
    if (fresh.length === 0) return { ids, deduplicated };
    const known = graphed ? await this.linkDependencies(specs, local, ids, fresh, freshIndex, where, account.name) : undefined;
    // Every unfinished task counts, also one parked, running, or waiting out a retry backoff
    // outside the heap: each may go back into it at any moment and must find room.
    const unfinished = this.table.size;
    if (unfinished + fresh.length > this.table.capacity) {
      throw new TaskflowError(
        Code.RESOURCE_EXHAUSTED,
        `the task queue is full (${unfinished} of ${this.table.capacity} unfinished tasks; control.taskHeapCapacity); retry later`,
        { reason: Reason.HEAP_FULL, metadata: { capacity: String(this.table.capacity) } },
      );
    }
    if (known) {
      // Dependents start collecting outcomes before the insert, so none finishing meanwhile is missed.
      for (let missing = this.graph.plan(fresh, known); missing.length; missing = this.graph.plan(fresh, known)) {
        for (const [id, rec] of await this.graph.lookUp(fresh, (f) => where(freshIndex[f]!), account.name)) known.set(id, rec);
      }
    }
    let payloadBytes = 0;
    for (const rec of fresh) payloadBytes += rec.payload.byteLength;
    // Checked and reserved synchronously: concurrent submits cannot overshoot while the store commits.
    try {
      this.memory.admit(fresh.length, payloadBytes);
      this.tenants.admit(account, fresh.length);
    } catch (err) {
      if (known) this.graph.drop(fresh);
      throw err;
    }
    try {
      await this.store.insert(fresh);
    } catch (err) {
      this.tenants.settle(account, fresh.length, false);
      if (known) this.graph.drop(fresh);
      throw TaskflowError.from(err, Code.UNAVAILABLE);
    }
    this.tenants.settle(account, fresh.length, true);
    this.lifecycle.admit(fresh, account);
    return { ids, deduplicated };
  }

  /**
   * Sets `dependsOn` on the fresh records of a submit with dependencies: the spec's IDs, then a
   * flow node's nodes by their task IDs. Checks every ID (the record's own, unknown ones, other
   * tenants'), and returns the finished dependencies read from the store.
   */
  private async linkDependencies(
    specs: readonly TaskSpec[],
    local: readonly (readonly number[])[] | undefined,
    ids: readonly string[],
    fresh: readonly TaskRecord[],
    freshIndex: readonly number[],
    where: (i: number) => string,
    tenant: string,
  ): Promise<Map<string, DependencyOutcome>> {
    for (let f = 0; f < fresh.length; f++) {
      const i = freshIndex[f]!;
      const spec = specs[i]!;
      const nodes = local?.[i];
      if (!spec.dependsOn?.length && !nodes?.length) continue;
      const rec = fresh[f]!;
      const deps = spec.dependsOn ? [...spec.dependsOn] : [];
      if (nodes) {
        const seen = new Set(deps);
        for (const k of nodes) if (!seen.has(ids[k]!)) deps.push(ids[k]!);
      }
      if (deps.length > MAX_DEPENDENCIES) throw invalid(`${where(i)} waits for ${deps.length} tasks (depends_on and depends_on_nodes); at most ${MAX_DEPENDENCIES}`);
      const self = deps.indexOf(rec.id);
      if (self >= 0) throw invalid(`${where(i)}.depends_on[${self}] names the task itself: ${rec.id}`);
      rec.dependsOn = deps;
      rec.onDependencyFailure = spec.onDependencyFailure ?? "cancel";
    }
    return this.graph.lookUp(fresh, (f) => where(freshIndex[f]!), tenant);
  }

  /** Another tenant's task answers the same NOT_FOUND as an unknown one: its existence stays hidden. */
  async get(taskId: string, scope: TenantScope): Promise<TaskRecord> {
    const live = this.table.get(taskId);
    if (live) {
      const rec = live.rec;
      if (scope !== null && rec.tenant !== scope) throw notFound(taskId);
      if (rec.state === "queued" && live.handle >= 0) rec.waitingReason = this.explainWait(live);
      // Held back by a rate or concurrency limit: say so as of now (the next token's time moves).
      else if (live.limits?.waitingOn) rec.waitingReason = this.limits.waitingReason(live)!;
      // A retry waiting out its backoff after a restart keeps its own reason.
      else if (rec.attempt === 0 && this.delayed.holds(live)) rec.waitingReason = delayedUntil(rec.notBefore, this.clock.now());
      else if (rec.dependsOn && rec.state === "queued") rec.waitingReason = this.graph.reasonFor(rec.id) || rec.waitingReason;
      return rec;
    }
    // Finished, its final state maybe not stored yet: the store would answer the one before,
    // and a watch opened on it would never hear the end (its change came before the watch).
    const rec = this.durability.unsaved?.(taskId) ?? (await this.store.get(taskId));
    if (!rec || (scope !== null && rec.tenant !== scope)) throw notFound(taskId);
    return rec;
  }

  async cancel(taskId: string, reason: string, scope: TenantScope): Promise<TaskRecord> {
    const rec = await this.get(taskId, scope);
    if (isFinal(rec.state)) {
      throw new TaskflowError(Code.FAILED_PRECONDITION, `task ${taskId} already finished (${rec.state}); nothing to cancel`);
    }
    this.lifecycle.cancel(this.table.get(taskId)!, reason || "cancelled by request");
    return rec;
  }

  async retry(target: readonly string[] | TaskFilter, options: BulkOptions, scope: TenantScope): Promise<TaskRecord[]> {
    this.checkWritable();
    const byId = Array.isArray(target);
    const found = byId ? await finishedById(checkIds(target as readonly string[]), (id) => this.get(id, scope)) : await finishedMatching(this.store, target as TaskFilter, maxTasksOf(options), scope);
    if (options.dryRun) return found;
    const graphed = found.filter((rec) => rec.dependsOn?.length);
    const retried = new Set(found.map((rec) => rec.id));
    const known = graphed.length ? await retriedDependencies(this.graph, graphed, retried) : undefined;
    // Synchronous from here on: no other retry, submit or finish interleaves with the checks.
    this.checkWritable();
    const recs: TaskRecord[] = [];
    for (const rec of found) {
      // Retried (or, for the memory store, the same record) since it was read.
      if (this.table.get(rec.id) || !isFinal(rec.state)) {
        if (byId) throw notRetryable(rec.id, "queued");
        retried.delete(rec.id);
        continue;
      }
      recs.push(rec);
    }
    if (this.table.size + recs.length > this.table.capacity) {
      throw new TaskflowError(
        Code.RESOURCE_EXHAUSTED,
        `the task queue has room for ${this.table.capacity - this.table.size} more unfinished tasks (control.taskHeapCapacity), this retry adds ${recs.length}; nothing was retried`,
        { reason: Reason.HEAP_FULL },
      );
    }
    const perTenant = new Map<string, TaskRecord[]>();
    for (const rec of recs) {
      const tasks = perTenant.get(rec.tenant);
      if (tasks) tasks.push(rec);
      else perTenant.set(rec.tenant, [rec]);
    }
    // A retried task counts against its tenant's quota as a submitted one does; all or none.
    const admitted: [TenantAccount, number][] = [];
    try {
      for (const [tenant, tasks] of perTenant) {
        const account = this.tenants.account(tenant);
        this.tenants.admit(account, tasks.length);
        admitted.push([account, tasks.length]);
      }
    } finally {
      for (const [account, n] of admitted) this.tenants.settle(account, n, false);
    }
    // A retried dependent waits again for its dependencies (those retried with it too), as a
    // submitted one does: planned now, so none finishing from here on is missed.
    if (known) {
      const dependents = recs.filter((rec) => rec.dependsOn?.length);
      const missing = this.graph.plan(dependents, known, retried);
      // Finished between the look-up and here; the retry is all or none, so it is refused whole.
      if (missing.length) throw new TaskflowError(Code.ABORTED, `dependency ${missing[0]} finished while the retry was checked; nothing was retried, try again`);
    }
    for (const [tenant, tasks] of perTenant) {
      const account = this.tenants.account(tenant);
      for (const rec of tasks) this.lifecycle.retry(rec, account, `retried by request after it ${rec.state === "failed" ? `failed: ${rec.error}` : "was cancelled"}`);
    }
    return recs;
  }

  async cancelMany(filter: TaskFilter, reason: string, options: BulkOptions, scope: TenantScope): Promise<TaskRecord[]> {
    const f = resolveFilter(filter, "cancel", scope);
    const max = maxTasksOf(options);
    const found: LiveTask[] = [];
    for (const live of this.table.liveTasks((rec) => matches(rec, f))) found.push(live);
    found.sort((a, b) => a.rec.seq - b.rec.seq);
    found.length = Math.min(found.length, max);
    if (!options.dryRun) for (const live of found) this.lifecycle.cancel(live, reason || "cancelled by request (bulk)");
    return found.map((live) => live.rec);
  }

  async list(query: TaskQuery, scope: TenantScope): Promise<TaskPage> {
    return this.store.list(scope === null ? query : { ...query, tenant: scope });
  }

  async watch(taskId: string, listener: (task: TaskRecord) => void, scope: TenantScope): Promise<() => void> {
    const rec = await this.get(taskId, scope);
    listener(rec);
    if (isFinal(rec.state)) return () => {};
    return this.delivery.watch(taskId, listener);
  }

  subscribeResults(clientId: string, listener: ResultListener, tenant = DEFAULT_TENANT): () => void {
    return this.delivery.subscribeResults(this.tenants.account(tenant), clientId, listener);
  }

  async counts(): Promise<Record<TaskState, number>> {
    return this.table.tally.counts();
  }

  tenantUsage(): TenantUsage[] {
    return this.tenants.usage();
  }

  /**
   * Why a task in the heap waits: the workers that could take it are busy (or there are none),
   * and how many tasks the policy puts before it. The count walks only the part of the heap
   * ahead of the task, up to {@link AHEAD_LIMIT}: `get` stays cheap with a million queued.
   */
  private explainWait(live: LiveTask): string {
    const counted = this.table.countAhead(live, AHEAD_LIMIT);
    const ahead = counted >= AHEAD_LIMIT ? `${AHEAD_LIMIT.toLocaleString("en-US")}+` : counted > 0 ? String(counted) : "";
    const order = this.policy.name;
    const behind = ahead ? `; ${ahead} task(s) ahead of it in ${order} order` : "";
    const why = this.waits.waitingReason(live, "");
    if (why) return `${why}${behind}`;
    return ahead ? `behind ${ahead} task(s) in ${order} order` : "next in line";
  }

  // ---- internals -----------------------------------------------------------------------------

  private checkWritable(): void {
    if (this.closed) throw new TaskflowError(Code.UNAVAILABLE, "the control node is shutting down");
    if (!this.durability.storeWritable) {
      throw new TaskflowError(Code.UNAVAILABLE, `the task store cannot write (${this.durability.storeHealth().error}); nothing was changed, retry later`, {
        reason: Reason.STORE,
      });
    }
  }

  /**
   * The answer to a request already accepted, or undefined. A call is stored all or none, so its
   * first task without an idempotency key tells: if it exists, every task of the call does.
   */
  private async repeatedRequest(specs: readonly TaskSpec[], tenant: string, deriveId: (index: number) => string): Promise<SubmitResult | undefined> {
    const probe = specs.findIndex((s) => !s.idempotencyKey);
    if (probe < 0) return undefined; // every task is deduplicated by its own key
    const probeId = deriveId(probe);
    const earlier = this.table.get(probeId)?.rec ?? (await this.store.get(probeId));
    // The tenant is part of the hash; checked again so that no path answers another tenant's IDs.
    if (!earlier || earlier.tenant !== tenant) return undefined;
    const ids: string[] = [];
    for (let i = 0; i < specs.length; i++) {
      const key = specs[i]!.idempotencyKey;
      const existing = key ? (this.table.byIdempotencyKey(tenant, key)?.rec ?? (await this.store.findByIdempotencyKey(tenant, key))) : undefined;
      ids.push(existing ? existing.id : deriveId(i));
    }
    return { ids, deduplicated: ids.map(() => true) };
  }
}

/**
 * Task IDs for a submit with a request ID: UUID-shaped (version 8, "custom"), from a hash of the
 * tenant, client and request IDs plus the task's index, so a retried call names the same tasks
 * and two tenants' equal request IDs name different ones. Random IDs are version 4, so the two
 * kinds never collide.
 *
 * The default tenant hashes as IDs did before tenants existed (client and request ID only), so a
 * retry across the upgrade still finds its tasks. Other tenants' input starts with the byte 0xFF
 * and holds the tenant between two such bytes: UTF-8 text never contains 0xFF, so no tenant,
 * client ID and request ID hash the same input as another triple.
 */
export function idDeriver(tenant: string, clientId: string, requestId: string): (index: number) => string {
  const hash = createHash("sha256");
  if (tenant !== DEFAULT_TENANT) hash.update(TENANT_MARK).update(tenant).update(TENANT_MARK);
  const base = hash.update(clientId).update("\n").update(requestId).digest().subarray(0, 16);
  base[6] = (base[6]! & 0x0f) | 0x80;
  base[8] = (base[8]! & 0x3f) | 0x80;
  const low = base.readUInt32BE(12);
  return (index) => {
    base.writeUInt32BE((low + index) >>> 0, 12);
    const hex = base.toString("hex");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}

const TENANT_MARK = Buffer.from([0xff]);

function notFound(taskId: string): TaskflowError {
  return new TaskflowError(Code.NOT_FOUND, `task ${taskId} not found (unknown, or finished longer ago than control.resultRetentionMs)`, {
    reason: Reason.TASK_NOT_FOUND,
    metadata: { taskId },
  });
}
