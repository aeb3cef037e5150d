/**
 * The in-memory task store: fastest, and gone when the process stops. Records are kept by
 * reference, so an update costs nothing; `durable` is false so callers know.
 */
import { Code, TASK_STATES, TaskflowError, isFinal, type ScheduleRecord, type ScheduleStore, type TaskCounts, type TaskPage, type TaskQuery, type TaskRecord, type TaskStore } from "@taskflow/core";

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

export class MemoryTaskStore implements TaskStore, ScheduleStore {
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
  /** Insertion order = seq order, which is what list and loadUnfinished walk. */
  private readonly ordered: TaskRecord[] = [];
  private highestSeq = 0;

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
    return this.byId.get(id);
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
    const before = query.pageToken ? seqOfToken(query.pageToken) : Infinity;
    const tasks: TaskRecord[] = [];
    let totalSize = 0;
    let nextPageToken = "";
    for (let i = this.ordered.length - 1; i >= 0; i--) {
      const t = this.ordered[i]!;
      if (!matches(t)) continue;
      totalSize++;
      if (t.seq >= before) continue;
      if (tasks.length < pageSize) tasks.push(t);
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
    let end = ordered.length;
    if (pageToken) {
      // First index whose seq is at or past the token: the page is what lies before it.
      const before = seqOfToken(pageToken);
      let lo = 0;
      let hi = ordered.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ordered[mid]!.seq < before) lo = mid + 1;
        else hi = mid;
      }
      end = lo;
    }
    const start = Math.max(0, end - pageSize);
    const tasks = ordered.slice(start, end).reverse();
    const nextPageToken = start > 0 ? String(tasks[tasks.length - 1]!.seq) : "";
    return { tasks, nextPageToken, totalSize: ordered.length };
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    return this.ordered.filter((t) => !isFinal(t.state));
  }

  async maxSeq(): Promise<number> {
    return this.highestSeq;
  }

  async purgeFinished(beforeMs: number): Promise<number> {
    let finished = 0;
    for (const t of this.ordered) if (isFinal(t.state)) finished++;
    // Oldest first: past the cap, finished tasks go even inside their retention.
    let excess = finished - this.maxFinished;
    let removed = 0;
    let write = 0;
    for (let read = 0; read < this.ordered.length; read++) {
      const t = this.ordered[read]!;
      if (isFinal(t.state) && (t.finishedAt < beforeMs || excess-- > 0)) {
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
