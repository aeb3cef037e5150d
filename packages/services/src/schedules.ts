/**
 * Recurring schedules (ADR 0025): the schedule API (create, get, list, pause, resume, delete)
 * and their firings. Every schedule lives in memory and is written through to the
 * `ScheduleStore` (the task store's own database); a due-time heap of (next firing time,
 * schedule) with one timer through the injected Timers fires them. A firing submits one task per
 * firing time through the PLM, like any client, with the idempotency key
 * `schedule:<id>:<firing ms>`: a firing repeated after a crash (the schedule's progress was not
 * saved yet) finds the task it made instead of making a second one. Firing times that passed
 * while the node was down follow the schedule's missed-firings policy when it starts again.
 *
 * Layer: above the PLM (it submits through it), below the edge (the gRPC server calls it).
 */
import { inject, injectable } from "tsyringe";
import {
  Code,
  DEFAULT_CATCH_UP_MAX,
  MAX_CATCH_UP,
  Reason,
  SCHEDULE_ID_PATTERN,
  TOKENS,
  TaskflowError,
  firingKey,
  scheduleClientId,
  type Clock,
  type Logger,
  type MissedPolicy,
  type Plm,
  type ScheduleRecord,
  type ScheduleStore,
  type TaskSpec,
  type TaskflowConfig,
  type TimerHandle,
  type Timers,
} from "@taskflow/core";
import { checkTiming, planFirings, timingOf, type Timing } from "./schedule-timing.js";
import { invalid, validateSpec } from "./validation.js";

/** Node fires a timer above 2^31-1 ms at once; a later firing is reached in steps this long. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How soon a firing the PLM refused (quota, a full queue, a store that cannot write) is tried again. */
export const FIRING_RETRY_MS = 1000;
/** The most on-time firings one turn submits (a per-second cron after a long stall); older ones count as dropped. */
const MAX_ON_TIME = 1000;

/** What a client gives to create a schedule; the rest of a {@link ScheduleRecord} is the server's. */
export interface ScheduleInput {
  id: string;
  template: TaskSpec;
  /** A cron expression, or "" with `intervalMs`. */
  cron: string;
  /** The IANA zone of `cron`; "" = UTC. */
  timezone: string;
  /** A fixed interval in ms, or 0 with `cron`. */
  intervalMs: number;
  /** @defaultValue "run-once" */
  missed?: MissedPolicy;
  /** With `catch-up`; 0 means {@link DEFAULT_CATCH_UP_MAX}. @defaultValue 10 */
  catchUpMax?: number;
  /** Create it paused. @defaultValue false */
  paused?: boolean;
}

interface Entry {
  rec: ScheduleRecord;
  timing: Timing;
  /** Raised whenever the schedule's place in the due heap changes: older heap items are stale. */
  version: number;
  /** Every change and firing of this schedule runs after the previous one (they await the store). */
  chain: Promise<void>;
  /** Firing times the PLM refused, tried again before anything new; `next` is where the schedule goes on after them. */
  retry: { times: number[]; next: number } | undefined;
  deleted: boolean;
}

interface DueItem {
  at: number;
  entry: Entry;
  version: number;
}

/** What the schedules use of the task API, and nothing more. */
type Submits = Pick<Plm, "submit">;

@injectable()
export class Schedules {
  /** By `<tenant>\n<id>` (tenant names hold no newline). */
  private readonly entries = new Map<string, Entry>();
  /** A binary min-heap by `at`; items whose version is stale are skipped when they come up. */
  private readonly due: DueItem[] = [];
  private timer: TimerHandle | undefined;
  private armedFor = Infinity;
  private closed = false;
  /** Firings submitted (tasks created or found) since the start, for tests and metrics. */
  private fired = 0;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.ScheduleStore) private readonly store: ScheduleStore,
    @inject(TOKENS.Plm) private readonly plm: Submits,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {}

  /** Loads every schedule; those whose firing time passed meanwhile fire at once, by their missed-firings policy. */
  async start(): Promise<void> {
    const stored = await this.store.loadSchedules();
    let overdue = 0;
    for (const rec of stored) {
      let timing: Timing;
      try {
        timing = timingOf(rec);
      } catch (err) {
        // A zone the platform's time zone data no longer knows: keep the schedule (to update or delete), never fire it.
        const why = (err as Error).message;
        this.logger.error({ scheduleId: rec.id, tenant: rec.tenant, err: why }, "a stored schedule's timing no longer parses; it does not fire until it is updated");
        timing = NEVER;
        rec.lastError = `its timing no longer parses: ${why}`;
      }
      const entry: Entry = { rec, timing, version: 0, chain: Promise.resolve(), retry: undefined, deleted: false };
      this.entries.set(keyOf(rec.tenant, rec.id), entry);
      if (timing !== NEVER && !rec.paused && rec.nextFireAt > 0) {
        if (rec.nextFireAt <= this.clock.now()) overdue++;
        this.enqueue(entry, rec.nextFireAt);
      }
    }
    if (stored.length) this.logger.info({ schedules: stored.length, overdue }, "loaded schedules");
  }

  stop(): void {
    this.closed = true;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /** Schedules held. */
  get size(): number {
    return this.entries.size;
  }

  /** Firings submitted since the start. */
  get firings(): number {
    return this.fired;
  }

  // ---- the API --------------------------------------------------------------------------------

  /**
   * Validates and stores a new schedule of `tenant`; its first firing is its timing's first time
   * after now. INVALID_ARGUMENT naming the field, ALREADY_EXISTS for an ID the tenant uses,
   * RESOURCE_EXHAUSTED past `schedules.maxSchedules`.
   */
  async create(input: ScheduleInput, tenant: string): Promise<ScheduleRecord> {
    const rec = this.validate(input, tenant);
    const key = keyOf(tenant, rec.id);
    if (this.entries.has(key)) {
      throw new TaskflowError(Code.ALREADY_EXISTS, `schedule ${rec.id} already exists in tenant ${tenant}; delete it first, or choose another ID`, {
        reason: Reason.SCHEDULE_EXISTS,
        metadata: { scheduleId: rec.id, tenant },
      });
    }
    const max = this.config.schedules.maxSchedules;
    if (this.entries.size >= max) {
      throw new TaskflowError(Code.RESOURCE_EXHAUSTED, `the cluster holds ${this.entries.size} schedules, its limit (schedules.maxSchedules); delete some first`, {
        reason: Reason.QUOTA,
        metadata: { key: "schedules.maxSchedules", limit: String(max) },
      });
    }
    const entry: Entry = { rec, timing: timingOf(rec), version: 0, chain: Promise.resolve(), retry: undefined, deleted: false };
    if (!rec.paused) rec.nextFireAt = entry.timing.after(this.clock.now());
    // In the map before the store answers: a second create of the same ID meanwhile is refused.
    this.entries.set(key, entry);
    try {
      await this.store.saveSchedule(rec);
    } catch (err) {
      this.entries.delete(key);
      throw TaskflowError.from(err, Code.UNAVAILABLE);
    }
    if (!rec.paused) this.enqueue(entry, rec.nextFireAt);
    return copyOf(rec);
  }

  /**
   * Replaces the schedule's template, timing and policy (checked as a create's; `paused` is
   * ignored); an unpaused schedule goes on from its new timing's first time after now.
   */
  async update(input: ScheduleInput, tenant: string): Promise<ScheduleRecord> {
    const entry = this.entryOf(input.id, tenant);
    const next = this.validate(input, tenant);
    return this.serially(entry, async () => {
      if (entry.deleted) throw notFound(input.id, tenant);
      const rec = entry.rec;
      const updated: ScheduleRecord = { ...rec, template: next.template, cron: next.cron, timezone: next.timezone, intervalMs: next.intervalMs, missed: next.missed, catchUpMax: next.catchUpMax };
      const timing = timingOf(updated);
      if (!rec.paused) updated.nextFireAt = finite(timing.after(this.clock.now()));
      await this.save(updated, true);
      Object.assign(rec, updated);
      entry.timing = timing;
      entry.retry = undefined;
      entry.version++;
      if (!rec.paused && rec.nextFireAt > 0) this.enqueue(entry, rec.nextFireAt);
    });
  }

  /** NOT_FOUND for an unknown ID in `tenant` (another tenant's is unknown there too). */
  get(id: string, tenant: string): ScheduleRecord {
    return copyOf(this.entryOf(id, tenant).rec);
  }

  /** One tenant's schedules, or every tenant's (`null`), by tenant then ID. */
  list(tenant: string | null): ScheduleRecord[] {
    const out: ScheduleRecord[] = [];
    for (const { rec } of this.entries.values()) if (tenant === null || rec.tenant === tenant) out.push(copyOf(rec));
    return out.sort((a, b) => (a.tenant === b.tenant ? compare(a.id, b.id) : compare(a.tenant, b.tenant)));
  }

  /** Stops its firings; a firing under way finishes first. Pausing a paused schedule changes nothing. */
  async pause(id: string, tenant: string): Promise<ScheduleRecord> {
    const entry = this.entryOf(id, tenant);
    return this.serially(entry, async () => {
      if (entry.rec.paused) return;
      entry.rec.paused = true;
      entry.rec.nextFireAt = 0;
      entry.retry = undefined;
      entry.version++;
      await this.save(entry.rec, true);
    });
  }

  /** Fires again from its next firing time after now: what the pause passed over is not made up. */
  async resume(id: string, tenant: string): Promise<ScheduleRecord> {
    const entry = this.entryOf(id, tenant);
    return this.serially(entry, async () => {
      if (!entry.rec.paused) return;
      entry.rec.paused = false;
      entry.rec.nextFireAt = finite(entry.timing.after(this.clock.now()));
      await this.save(entry.rec, true);
      this.enqueue(entry, entry.rec.nextFireAt);
    });
  }

  /** Deletes it (after a firing under way); returns it as it was. Its tasks stay. */
  async delete(id: string, tenant: string): Promise<ScheduleRecord> {
    const entry = this.entryOf(id, tenant);
    const rec = await this.serially(entry, async () => {
      if (entry.deleted) throw notFound(id, tenant);
      await this.store.deleteSchedule(tenant, id).catch((err: unknown) => {
        throw TaskflowError.from(err, Code.UNAVAILABLE);
      });
      entry.deleted = true;
      entry.version++;
      this.entries.delete(keyOf(tenant, id));
    });
    return rec;
  }

  // ---- firing ---------------------------------------------------------------------------------

  private entryOf(id: string, tenant: string): Entry {
    if (!id) throw invalid("schedule_id is required");
    const entry = this.entries.get(keyOf(tenant, id));
    if (!entry || entry.deleted) throw notFound(id, tenant);
    return entry;
  }

  /** Runs `fn` after every earlier change or firing of the schedule; answers the schedule as it then is. */
  private serially(entry: Entry, fn: () => Promise<void>): Promise<ScheduleRecord> {
    const run = entry.chain.then(fn);
    entry.chain = run.catch(() => {});
    return run.then(() => copyOf(entry.rec));
  }

  /** Writes the schedule through; an API change fails with the store, a firing's progress only logs (a later one saves again). */
  private async save(rec: ScheduleRecord, byRequest: boolean): Promise<void> {
    try {
      await this.store.saveSchedule(rec);
    } catch (err) {
      if (byRequest) throw TaskflowError.from(err, Code.UNAVAILABLE);
      this.logger.warn({ err, scheduleId: rec.id, tenant: rec.tenant }, "could not save a schedule's progress; its firings go on, and a restart re-fires (and deduplicates) the unsaved ones");
    }
  }

  /** One turn of a schedule: submit what is due, by its policy, and go on from its next firing time. */
  private async fire(entry: Entry): Promise<void> {
    const rec = entry.rec;
    if (entry.deleted || rec.paused || this.closed) return;
    const now = this.clock.now();
    let times: number[];
    let next: number;
    if (entry.retry) {
      ({ times, next } = entry.retry);
    } else {
      const plan = planFirings(entry.timing, rec.nextFireAt, now, this.config.schedules.missedAfterMs, rec.missed, rec.catchUpMax);
      times = plan.times;
      next = plan.next;
      let dropped = plan.dropped;
      if (times.length > MAX_ON_TIME) {
        dropped += times.length - MAX_ON_TIME;
        times = times.slice(-MAX_ON_TIME);
      }
      if (dropped > 0) {
        this.logger.warn({ scheduleId: rec.id, tenant: rec.tenant, dropped, policy: rec.missed, running: times.length }, "schedule missed firings while the control node could not fire them");
      }
    }
    if (times.length) {
      const specs = times.map((at): TaskSpec => ({ ...rec.template, idempotencyKey: firingKey(rec.id, at), schedule: { id: rec.id, at } }));
      try {
        // All or none, each firing deduplicated by its key: a repeated firing answers the task it made.
        const { ids } = await this.plm.submit(specs, scheduleClientId(rec.id), "", rec.tenant);
        entry.retry = undefined;
        rec.lastFireAt = times[times.length - 1]!;
        rec.lastTaskId = ids[ids.length - 1]!;
        rec.lastError = "";
        this.fired += times.length;
      } catch (err) {
        if (entry.deleted || rec.paused || this.closed) return;
        const e = TaskflowError.from(err);
        entry.retry = { times, next };
        if (rec.lastError !== e.message) this.logger.warn({ scheduleId: rec.id, tenant: rec.tenant, err: e.message }, "a schedule's firing was refused; trying again every second");
        rec.lastError = e.message;
        this.enqueue(entry, now + FIRING_RETRY_MS);
        return;
      }
    }
    if (entry.deleted || rec.paused) return;
    rec.nextFireAt = finite(next);
    await this.save(rec, false);
    if (rec.nextFireAt > 0) this.enqueue(entry, rec.nextFireAt);
  }

  private enqueue(entry: Entry, at: number): void {
    entry.version++;
    heapPush(this.due, { at, entry, version: entry.version });
    if (at < this.armedFor) this.arm(at);
  }

  private arm(at: number): void {
    if (this.closed) return;
    this.timers.clear(this.timer);
    this.armedFor = at;
    this.timer = this.timers.setTimeout(() => this.onTimer(), Math.min(Math.max(0, at - this.clock.now()), MAX_TIMER_MS));
  }

  /** Fires every schedule now due (each in its own turn, after its earlier changes), then arms for the next. */
  private onTimer(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.closed) return;
    const now = this.clock.now();
    while (this.due.length > 0 && this.due[0]!.at <= now) {
      const { entry, version } = heapPop(this.due)!;
      if (entry.deleted || version !== entry.version) continue;
      // Not due again until this firing moves it: its version is already stale for other items.
      entry.version++;
      entry.chain = entry.chain.then(() => this.fire(entry)).catch((err: unknown) => this.logger.error({ err, scheduleId: entry.rec.id }, "schedule firing failed"));
    }
    if (this.due.length > 0) this.arm(this.due[0]!.at);
  }

  /** The stored record of a create, validated; INVALID_ARGUMENT names the field. */
  private validate(input: ScheduleInput, tenant: string): ScheduleRecord {
    if (!input.id) throw invalid("schedule.id is required: a name unique in the tenant, such as \"nightly-report\"");
    if (!SCHEDULE_ID_PATTERN.test(input.id)) {
      throw invalid(`schedule.id "${input.id.slice(0, 80)}" must be 1-64 characters of letters, digits and _ . -, starting with a letter or digit`);
    }
    const t = input.template;
    if (t.idempotencyKey) throw invalid("schedule.template.idempotency_key must be empty: each firing gets the key schedule:<id>:<firing time>");
    if (t.delayMs || t.runAt) throw invalid("schedule.template.delay_ms and schedule.template.run_at_ms must be 0: a firing's task runs at its firing time");
    validateSpec(t, { maxPayloadBytes: this.config.control.maxPayloadBytes, now: this.clock.now() }, "schedule.template");
    checkTiming(input, "schedule.");
    const catchUpMax = input.catchUpMax || DEFAULT_CATCH_UP_MAX;
    if (!Number.isInteger(catchUpMax) || catchUpMax < 0 || catchUpMax > MAX_CATCH_UP) {
      throw invalid(`schedule.catch_up_max must be 0 (meaning ${DEFAULT_CATCH_UP_MAX}) … ${MAX_CATCH_UP}, got ${input.catchUpMax}`);
    }
    return {
      id: input.id,
      tenant,
      template: { ...t, idempotencyKey: "" },
      cron: input.cron,
      timezone: input.cron ? input.timezone : "",
      intervalMs: input.intervalMs,
      missed: input.missed ?? "run-once",
      catchUpMax,
      paused: input.paused ?? false,
      nextFireAt: 0,
      lastFireAt: 0,
      lastTaskId: "",
      createdAt: this.clock.now(),
      lastError: "",
    };
  }
}

/** The timing of a stored schedule whose timing no longer parses. */
const NEVER: Timing = { after: () => Infinity, latestIn: () => [] };

function keyOf(tenant: string, id: string): string {
  return `${tenant}\n${id}`;
}

/** A cron with no firing left keeps its schedule, which then never fires (0 = none). */
function finite(t: number): number {
  return Number.isFinite(t) ? t : 0;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Callers get copies: the part's records change as schedules fire. */
function copyOf(rec: ScheduleRecord): ScheduleRecord {
  return { ...rec, template: { ...rec.template } };
}

function notFound(id: string, tenant: string): TaskflowError {
  return new TaskflowError(Code.NOT_FOUND, `schedule ${id} not found in tenant ${tenant}`, {
    reason: Reason.SCHEDULE_NOT_FOUND,
    metadata: { scheduleId: id, tenant },
  });
}

function heapPush(heap: DueItem[], item: DueItem): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]!.at <= item.at) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = item;
}

function heapPop(heap: DueItem[]): DueItem | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (top === undefined || last === undefined || heap.length === 0) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= heap.length) break;
    const r = l + 1;
    const child = r < heap.length && heap[r]!.at < heap[l]!.at ? r : l;
    if (heap[child]!.at >= last.at) break;
    heap[i] = heap[child]!;
    i = child;
  }
  heap[i] = last;
  return top;
}
