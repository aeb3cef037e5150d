/**
 * Store write-behind: task changes are written to the TaskStore in one call per event-loop
 * turn; results, `afterDurable` callbacks (stored acks to workers, write-ahead assignments) wait
 * for that write. A failed write keeps everything pending and is retried with backoff; meanwhile
 * the store is unhealthy and the node takes no new work (ADR 0011). Also the store's
 * housekeeping: purging finished tasks past their retention.
 */
import { inject, injectable } from "tsyringe";
import {
  TOKENS,
  type Clock,
  type Durability,
  type Logger,
  type SchedulerInbox,
  type StoreHealth,
  type TaskOutcome,
  type TaskRecord,
  type TaskStore,
  type TaskflowConfig,
  type TimerHandle,
  type Timers,
} from "@taskflow/core";
import { type PendingOutcomes, type ResultDelivery } from "./result-delivery.js";
import { type TenantAccount } from "./tenants.js";

/** First retry of a failed store write after this long; doubles up to STORE_RETRY_MAX_MS. */
const STORE_RETRY_MIN_MS = 100;
const STORE_RETRY_MAX_MS = 5_000;

@injectable()
export class StoreWriteBehind implements Durability {
  /** Outcomes to deliver after the next store write, by tenant, then client ID. */
  private pendingOutcomes: PendingOutcomes = new Map();
  private pendingUpdates = new Map<string, TaskRecord>();
  /** The changes of the store write in flight, readable (see {@link unsaved}) until it lands. */
  private writing: Map<string, TaskRecord> | undefined;
  /** Called once everything changed before them is durable (see afterDurable). */
  private pendingDurable: (() => void)[] = [];
  private flushScheduled = false;
  /** The flush whose store write is in flight: the next one waits for it (see flushNow). */
  private flushing: Promise<void> | undefined;
  /** Set while a failed store write waits for its retry; no flush runs before it. */
  private retryFlushTimer: TimerHandle | undefined;
  private retryDelayMs = STORE_RETRY_MIN_MS;
  private health: StoreHealth;
  private readonly healthListeners = new Set<(health: StoreHealth) => void>();
  private purgeTimer: TimerHandle | undefined;
  private closed = false;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.TaskStore) private readonly store: TaskStore,
    @inject(TOKENS.ResultDelivery) private readonly delivery: Pick<ResultDelivery, "deliver">,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
  ) {
    this.health = { kind: store.kind, writable: true, error: "", since: 0, failedWrites: 0 };
  }

  /** Starts purging finished tasks past `control.resultRetentionMs`. */
  start(): void {
    const retention = this.config.control.resultRetentionMs;
    this.purgeTimer = this.timers.setInterval(() => void this.purge(retention), Math.min(retention, 60_000));
  }

  /** Stops retrying and purging, and writes what is pending one last time. */
  async stop(): Promise<void> {
    this.closed = true;
    this.timers.clear(this.retryFlushTimer);
    this.retryFlushTimer = undefined;
    this.timers.clear(this.purgeTimer);
    await this.flushNow();
  }

  /** A task changed: write it with this turn's batch. */
  changed(rec: TaskRecord): void {
    // A store that keeps our record objects has this change already; others get it per tick.
    if (!this.store.keepsRecords) this.pendingUpdates.set(rec.id, rec);
    this.scheduleFlush();
  }

  /** A finished task's outcome, delivered to its tenant's client's subscribers once durable. */
  outcome(account: TenantAccount, clientId: string, outcome: TaskOutcome): void {
    let byClient = this.pendingOutcomes.get(account);
    if (!byClient) this.pendingOutcomes.set(account, (byClient = new Map()));
    let batch = byClient.get(clientId);
    if (!batch) byClient.set(clientId, (batch = []));
    batch.push(outcome);
  }

  unsaved(taskId: string): TaskRecord | undefined {
    return this.pendingUpdates.get(taskId) ?? this.writing?.get(taskId);
  }

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

  get storeWritable(): boolean {
    return this.health.writable;
  }

  storeHealth(): StoreHealth {
    return { ...this.health };
  }

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
    // One flush at a time: `afterDurable` promises that everything changed before is stored, so
    // a flush must not run its callbacks (even with nothing of its own to write) while an
    // earlier write is still in flight. flushScheduled stays set meanwhile, so what changes
    // during the wait joins this flush instead of starting another.
    while (this.flushing) await this.flushing;
    const run = this.flushPending();
    this.flushing = run;
    try {
      await run;
    } finally {
      if (this.flushing === run) this.flushing = undefined;
    }
  }

  private async flushPending(): Promise<void> {
    this.flushScheduled = false;
    const updates = this.pendingUpdates;
    const outcomes = this.pendingOutcomes;
    const durable = this.pendingDurable;
    this.pendingUpdates = new Map();
    this.pendingOutcomes = new Map();
    this.pendingDurable = [];
    if (updates.size) {
      this.writing = updates;
      try {
        await this.store.update([...updates.values()]);
      } catch (err) {
        this.writeFailed(err, updates, outcomes, durable);
        return;
      } finally {
        this.writing = undefined;
      }
      if (!this.health.writable) this.setHealth({ writable: true, error: "" });
    }
    this.delivery.deliver(outcomes);
    for (const callback of durable) callback();
  }

  /** Puts a failed write's changes, results and callbacks back in front, and retries it later. */
  private writeFailed(err: unknown, updates: Map<string, TaskRecord>, outcomes: PendingOutcomes, durable: (() => void)[]): void {
    this.health.failedWrites++;
    // Records are the live objects: one that changed again since is written in its newest state.
    for (const [id, rec] of this.pendingUpdates) updates.set(id, rec);
    this.pendingUpdates = updates;
    for (const [account, byClient] of this.pendingOutcomes) {
      let earlierByClient = outcomes.get(account);
      if (!earlierByClient) outcomes.set(account, (earlierByClient = new Map()));
      for (const [clientId, batch] of byClient) {
        const earlier = earlierByClient.get(clientId);
        if (earlier) earlier.push(...batch);
        else earlierByClient.set(clientId, batch);
      }
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
    this.timers.clear(this.retryFlushTimer);
    this.retryFlushTimer = this.timers.setTimeout(() => {
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
    if (change.writable) this.inbox.wake();
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
