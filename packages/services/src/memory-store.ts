/**
 * The in-memory task store: fastest, and gone when the process stops. Records are kept by
 * reference, so an update costs nothing; `durable` is false so callers know. A queued task the
 * task table keeps cold (docs/adr/0030-off-heap-queued-tasks.md) is held here by its ref only,
 * and read from the table when asked for: the store does not keep an object per queued task.
 */
import { Code, TASK_STATES, TaskflowError, isFinal, isPlainQueuedRecord, type ScheduleRecord, type ScheduleStore, type TaskCounts, type TaskPage, type TaskQuery, type TaskRecord, type TaskStore, type UnfinishedPageFilter } from "@taskflow/core";
import type { ColdRecords, RecordKeeper } from "./cold-tasks.js";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

export interface MemoryTaskStoreOptions {
  /**
   * Most finished tasks kept; `purgeFinished` (which the PLM runs at least once a minute) also
   * drops the oldest beyond this, so a busy node's memory stays bounded whatever the retention.
   * @defaultValue 1000000
   */
  maxFinishedTasks?: number;
}

export class MemoryTaskStore implements TaskStore, ScheduleStore, RecordKeeper {
  readonly kind = "memory";
  readonly durable = false;
  readonly keepsRecords = true;
  private readonly maxFinished: number;

  constructor(options: MemoryTaskStoreOptions = {}) {
    this.maxFinished = options.maxFinishedTasks ?? 1_000_000;
  }

  private readonly byId = new Map<string, TaskRecord>();
  /** By `<tenant>\n<idempotency key>`: keys are scoped per tenant (tenant names hold no newline). */
  private readonly byKey = new Map<string, TaskRecord>();
  /**
   * Insertion order = seq order, which is what list and loadUnfinished walk. A number is the ref
   * of a cold task (`cold` has its record).
   */
  private readonly ordered: (TaskRecord | number)[] = [];
  private highestSeq = 0;
  private cold: ColdRecords | undefined;

  /** The task table's cold tasks: the records of the refs in `ordered`. */
  attachCold(source: ColdRecords): void {
    this.cold = source;
  }

  /** `rec` went cold under `ref`: only the ref stays here. */
  released(rec: TaskRecord, ref: number): void {
    if (this.byId.get(rec.id) !== rec) return;
    this.byId.delete(rec.id);
    const i = firstAtOrAfter(this.ordered, rec.seq, this.cold);
    if (this.ordered[i] === rec) this.ordered[i] = ref;
  }

  /** The cold task `ref` is a record object again. */
  adopted(rec: TaskRecord, ref: number): void {
    const i = firstAtOrAfter(this.ordered, rec.seq, this.cold);
    if (this.ordered[i] !== ref) return;
    this.ordered[i] = rec;
    this.byId.set(rec.id, rec);
  }

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async insert(tasks: readonly TaskRecord[]): Promise<void> {
    for (const task of tasks) {
      this.byId.set(task.id, task);
      if (task.idempotencyKey) this.byKey.set(keyOf(task.tenant, task.idempotencyKey), task);
      this.ordered.push(task);
      if (task.seq > this.highestSeq) this.highestSeq = task.seq;
    }
  }

  async update(tasks: readonly TaskRecord[]): Promise<void> {
    for (const task of tasks) {
      const existing = this.byId.get(task.id);
      if (existing && existing !== task) Object.assign(existing, task);
    }
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    const rec = this.byId.get(id);
    if (rec || !this.cold) return rec;
    const ref = this.cold.find(id);
    return ref < 0 ? undefined : this.cold.record(ref);
  }

  async findByIdempotencyKey(tenant: string, key: string): Promise<TaskRecord | undefined> {
    return key ? this.byKey.get(keyOf(tenant, key)) : undefined;
  }

  async list(query: TaskQuery): Promise<TaskPage> {
    const pageSize = Math.min(Math.max(query.pageSize || DEFAULT_PAGE, 1), MAX_PAGE);
    if (!query.states?.length && !query.type && !query.clientId && !query.tenant) return this.unfilteredPage(query.pageToken, pageSize);
    const states = query.states?.length ? new Set(query.states) : undefined;
    const matches = (t: TaskRecord) =>
      (!states || states.has(t.state)) &&
      (!query.type || t.type === query.type) &&
      (!query.clientId || t.clientId === query.clientId) &&
      (!query.tenant || t.tenant === query.tenant);
    // A cold task (a ref) is queued and matched on its interned fields: a record is built only
    // for the page, not for each of millions scanned.
    const cold = this.cold;
    const coldMatches = (ref: number) =>
      (!states || states.has("queued")) &&
      (!query.type || cold!.field(ref, "type") === query.type) &&
      (!query.clientId || cold!.field(ref, "clientId") === query.clientId) &&
      (!query.tenant || cold!.field(ref, "tenant") === query.tenant);
    const before = query.pageToken ? seqOfToken(query.pageToken) : Infinity;
    const tasks: TaskRecord[] = [];
    let totalSize = 0;
    let nextPageToken = "";
    for (let i = this.ordered.length - 1; i >= 0; i--) {
      const t = this.ordered[i]!;
      if (typeof t === "number" ? !coldMatches(t) : !matches(t)) continue;
      totalSize++;
      if ((typeof t === "number" ? cold!.seqOf(t) : t.seq) >= before) continue;
      if (tasks.length < pageSize) tasks.push(typeof t === "number" ? cold!.record(t) : t);
      else if (!nextPageToken) nextPageToken = String(tasks[tasks.length - 1]!.seq);
    }
    return { tasks, nextPageToken, totalSize };
  }

  /**
   * Newest first without a filter: a binary search for the token and a slice, not a scan (the
   * dashboard lists this way while a busy node may hold a million tasks). `ordered` is in seq
   * order: records are appended as inserted and a purge keeps the order.
   */
  private unfilteredPage(pageToken: string | undefined, pageSize: number): TaskPage {
    const ordered = this.ordered;
    // First index whose seq is at or past the token: the page is what lies before it.
    const end = pageToken ? firstAtOrAfter(ordered, seqOfToken(pageToken), this.cold) : ordered.length;
    const start = Math.max(0, end - pageSize);
    const tasks: TaskRecord[] = [];
    for (let i = end - 1; i >= start; i--) tasks.push(recordAt(ordered, i, this.cold));
    const nextPageToken = start > 0 ? String(tasks[tasks.length - 1]!.seq) : "";
    return { tasks, nextPageToken, totalSize: ordered.length };
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    return this.loadUnfinishedPage(-Infinity, Infinity);
  }

  async loadUnfinishedPage(afterSeq: number, limit: number, filter: UnfinishedPageFilter = {}): Promise<TaskRecord[]> {
    const out: TaskRecord[] = [];
    for (let i = firstAtOrAfter(this.ordered, afterSeq + 1, this.cold); i < this.ordered.length && out.length < limit; i++) {
      const t = recordAt(this.ordered, i, this.cold);
      if (!isFinal(t.state) && !(filter.skipPlainQueued && isPlainQueuedRecord(t))) out.push(t);
    }
    return out;
  }

  async maxSeq(): Promise<number> {
    return this.highestSeq;
  }

  async purgeFinished(beforeMs: number): Promise<number> {
    let finished = 0;
    // A ref (a cold task) is queued: unfinished.
    for (const t of this.ordered) if (typeof t !== "number" && isFinal(t.state)) finished++;
    // Oldest first: past the cap, finished tasks go even inside their retention.
    let excess = finished - this.maxFinished;
    let removed = 0;
    let write = 0;
    for (let read = 0; read < this.ordered.length; read++) {
      const t = this.ordered[read]!;
      if (typeof t !== "number" && isFinal(t.state) && (t.finishedAt < beforeMs || excess-- > 0)) {
        this.byId.delete(t.id);
        if (t.idempotencyKey) {
          const key = keyOf(t.tenant, t.idempotencyKey);
          if (this.byKey.get(key) === t) this.byKey.delete(key);
        }
        removed++;
      } else {
        this.ordered[write++] = t;
      }
    }
    this.ordered.length = write;
    return removed;
  }

  async counts(): Promise<TaskCounts> {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as TaskCounts;
    for (const t of this.byId.values()) counts[t.state]++;
    counts.queued += this.cold?.size ?? 0;
    return counts;
  }

  // ---- schedules: copies, so the Schedules part's later changes are saved only when it says so

  /** By `<tenant>\n<id>`. */
  private readonly schedules = new Map<string, ScheduleRecord>();

  async loadSchedules(): Promise<ScheduleRecord[]> {
    return [...this.schedules.values()].map(copySchedule);
  }

  async saveSchedule(schedule: ScheduleRecord): Promise<void> {
    this.schedules.set(keyOf(schedule.tenant, schedule.id), copySchedule(schedule));
  }

  async deleteSchedule(tenant: string, id: string): Promise<boolean> {
    return this.schedules.delete(keyOf(tenant, id));
  }
}

function copySchedule(s: ScheduleRecord): ScheduleRecord {
  return structuredClone(s);
}

/** The record at `ordered[i]`, read from the cold tasks when it is a ref. */
function recordAt(ordered: readonly (TaskRecord | number)[], i: number, cold: ColdRecords | undefined): TaskRecord {
  const t = ordered[i]!;
  return typeof t === "number" ? cold!.record(t) : t;
}

/** The first index of `ordered` (in seq order) whose seq is at or past `seq`. */
function firstAtOrAfter(ordered: readonly (TaskRecord | number)[], seq: number, cold: ColdRecords | undefined): number {
  let lo = 0;
  let hi = ordered.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const t = ordered[mid]!;
    if ((typeof t === "number" ? cold!.seqOf(t) : t.seq) < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function keyOf(tenant: string, idempotencyKey: string): string {
  return `${tenant}\n${idempotencyKey}`;
}

/**
 * Tokens are the decimal `seq` of the last task of the previous page. Anything else did not come
 * from this store, and paging on from it would silently return a wrong (often empty) page.
 */
function seqOfToken(token: string): number {
  // 15 digits always make a safe integer.
  if (!/^\d{1,15}$/.test(token)) throw new TaskflowError(Code.INVALID_ARGUMENT, "page_token is not one this server gave out");
  return Number(token);
}
