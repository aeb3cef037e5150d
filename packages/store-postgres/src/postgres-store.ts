/**
 * The task store on a PostgreSQL server (node-postgres), written through group commit
 * (`group-commit.ts`): every call's promise settles after its COMMIT, writes apply in call order,
 * and reads go through the same pool and see every acknowledged write. The schedules live in the
 * same database (`schedules`, a `PostgresScheduleStore` on the same connections and fence).
 */
import {
  TASK_STATES,
  listPageSize,
  seqOfPageToken,
  seqPageToken,
  type TaskCounts,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskState,
  type TaskStore,
  type UnfinishedPageFilter,
} from "@taskflow/core";
import { FINAL_STATES_SQL, SELECT_COLUMNS, insertArrays, toRecord, type ColumnArrays } from "./columns.js";
import { notOpen, toStoreError } from "./pg-errors.js";
import { resolveOptions, type PostgresStoreStats, type PostgresTaskStoreOptions } from "./connection.js";
import { PostgresDatabase } from "./database.js";
import { GroupCommit } from "./group-commit.js";
import { PostgresScheduleStore } from "./schedule-store.js";

/**
 * A {@link TaskStore} on PostgreSQL: durable, shared by every host that reaches the server. Its
 * `schedules` keep the recurring schedules in the same database.
 *
 * @example
 * ```ts
 * const store = new PostgresTaskStore({ url: "postgres://taskflow@db.internal/taskflow", ssl: { ca } });
 * await store.open();
 * await store.schedules.loadSchedules();
 * ```
 */
export class PostgresTaskStore implements TaskStore {
  readonly kind = "postgres";
  readonly durable = true;
  /** The schedules, in this store's database, through its connections and leader fence; usable while it is open. */
  readonly schedules: PostgresScheduleStore;
  private readonly db: PostgresDatabase;
  private readonly writes: GroupCommit;

  /** @throws TaskflowError INVALID_ARGUMENT for a bad option. */
  constructor(options: PostgresTaskStoreOptions) {
    this.db = new PostgresDatabase(resolveOptions(options));
    this.writes = new GroupCommit(this.db);
    this.schedules = new PostgresScheduleStore(this.db);
  }

  /** The Postgres schema holding the tables. */
  get schema(): string {
    return this.db.options.schema;
  }

  /** The server's URL without its password. */
  get location(): string {
    return this.db.location;
  }

  /** Connects, and brings the schema up to date. */
  open(): Promise<void> {
    return this.db.open();
  }

  /** Commits what is queued, then closes the connections. Later calls fail with UNAVAILABLE. */
  close(): Promise<void> {
    // From here on new writes are refused; the queued ones still commit.
    return this.db.close(() => this.writes.drain());
  }

  /**
   * Queues the tasks for the next group commit; resolves after it. All records of one call are
   * stored or none: an `id`, `seq` or non-empty `idempotencyKey` that exists already rejects the
   * call with ALREADY_EXISTS and leaves the other calls of the group unaffected.
   *
   * The records' fields are read when `insert` is called; the bytes of `payload` and `result`
   * when the group is sent, so do not change the contents of those arrays meanwhile.
   */
  insert(tasks: readonly TaskRecord[]): Promise<void> {
    if (!this.db.isOpen) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    let inserted: ColumnArrays;
    try {
      inserted = insertArrays(tasks);
    } catch (err) {
      return Promise.reject(toStoreError(err, "insert"));
    }
    return this.writes.enqueue({ inserted, updated: null, rows: tasks.length });
  }

  /**
   * Queues new versions of existing tasks for the next group commit; resolves after it. The
   * fields fixed at submission (`seq`, `type`, `clientId`, `idempotencyKey`, `createdAt`,
   * `payload`) keep their inserted values. An id that is not stored (purged meanwhile) is skipped.
   *
   * The records are read when their group is sent, and a task updated by several calls of one
   * group is written once, as the newest call has it. A group applies its inserts before its
   * updates, so an update of a task inserted in the same group lands on it.
   */
  update(tasks: readonly TaskRecord[]): Promise<void> {
    if (!this.db.isOpen) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    return this.writes.enqueue({ inserted: null, updated: tasks, rows: tasks.length });
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    const rows = await this.db.read("get", { name: "tf_get", text: `SELECT ${SELECT_COLUMNS} FROM tasks WHERE id = $1`, values: [id] });
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Keys are scoped per tenant: another tenant's equal key is not this one's. */
  async findByIdempotencyKey(tenant: string, key: string): Promise<TaskRecord | undefined> {
    // No key means no deduplication: the empty string matches nothing.
    if (key === "") return undefined;
    const rows = await this.db.read("findByIdempotencyKey", {
      name: "tf_by_key",
      text: `SELECT ${SELECT_COLUMNS} FROM tasks WHERE tenant = $1 AND idempotency_key = $2 AND idempotency_key <> ''`,
      values: [tenant, key],
    });
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * Newest first. The page token is the last `seq` returned, so tasks submitted while a client
   * pages neither shift nor repeat the rows it has not seen yet.
   */
  async list(query: TaskQuery): Promise<TaskPage> {
    const pageSize = listPageSize(query.pageSize);
    const before = query.pageToken ? seqOfPageToken(query.pageToken) : Number.MAX_SAFE_INTEGER;
    const states = query.states?.length ? [...new Set(query.states)] : [];
    const filters: string[] = [];
    const values: unknown[] = [];
    if (states.length) filters.push(`state = ANY($${values.push(states)}::text[])`);
    if (query.type) filters.push(`type = $${values.push(query.type)}`);
    if (query.clientId) filters.push(`client_id = $${values.push(query.clientId)}`);
    if (query.tenant) filters.push(`tenant = $${values.push(query.tenant)}`);
    const shape = `${states.length ? 1 : 0}${query.type ? 1 : 0}${query.clientId ? 1 : 0}${query.tenant ? 1 : 0}`;
    const where = filters.length ? `WHERE ${filters.join(" AND ")}` : "";
    const pageWhere = `${where ? `${where} AND` : "WHERE"} seq < $${values.length + 1}`;
    // One row more than asked tells whether another page exists, so the last page says so.
    const [rows, count] = await Promise.all([
      this.db.read("list", {
        name: `tf_list_${shape}`,
        text: `SELECT ${SELECT_COLUMNS} FROM tasks ${pageWhere} ORDER BY seq DESC LIMIT $${values.length + 2}`,
        values: [...values, before, pageSize + 1],
      }),
      this.db.read("list", { name: `tf_count_${shape}`, text: `SELECT count(*) FROM tasks ${where}`, values }),
    ]);
    const more = rows.length > pageSize;
    const tasks = (more ? rows.slice(0, pageSize) : rows).map(toRecord);
    return { tasks, nextPageToken: more ? seqPageToken(tasks[tasks.length - 1]!.seq) : "", totalSize: count[0]![0] as number };
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    return this.unfinished(Number.MIN_SAFE_INTEGER, null, false);
  }

  async loadUnfinishedPage(afterSeq: number, limit: number, filter: UnfinishedPageFilter = {}): Promise<TaskRecord[]> {
    return this.unfinished(afterSeq, limit, filter.skipPlainQueued ?? false);
  }

  /**
   * Unfinished tasks past `afterSeq` through the partial index, at most `limit` (null: all).
   * `skipPlainQueued` leaves out the plain queued tasks (isPlainQueuedRecord in @taskflow/core):
   * the index still walks them, but their rows are not sent.
   */
  private async unfinished(afterSeq: number, limit: number | null, skipPlainQueued: boolean): Promise<TaskRecord[]> {
    const notPlain = skipPlainQueued ? "AND NOT (state = 'queued' AND worker_id = '' AND not_before = 0 AND attributes = '')" : "";
    const rows = await this.db.read("loadUnfinished", {
      name: skipPlainQueued ? "tf_unfinished_not_plain" : "tf_unfinished",
      text: `SELECT ${SELECT_COLUMNS} FROM tasks WHERE unfinished AND seq > $1 ${notPlain} ORDER BY seq LIMIT $2`,
      values: [afterSeq, limit],
    });
    return rows.map(toRecord);
  }

  /** The highest `seq` ever stored, also when that task has been purged since. */
  async maxSeq(): Promise<number> {
    const rows = await this.db.read("maxSeq", {
      name: "tf_max_seq",
      text: "SELECT GREATEST((SELECT max(seq) FROM tasks), (SELECT value FROM taskflow_meta WHERE key = 'max_seq'))",
      values: [],
    });
    return (rows[0]?.[0] as number | null) ?? 0;
  }

  /** Deletes tasks in a final state whose `finishedAt` is before `beforeMs`, in one statement. */
  async purgeFinished(beforeMs: number): Promise<number> {
    const { rows } = await this.db.writeOne("purgeFinished", {
      name: "tf_purge",
      text:
        `WITH gone AS (DELETE FROM tasks WHERE state IN ${FINAL_STATES_SQL} AND finished_at > 0 AND finished_at < $1 RETURNING seq), ` +
        // The highest seq deleted, so maxSeq never goes back.
        "kept AS (INSERT INTO taskflow_meta (key, value) SELECT 'max_seq', max(seq) FROM gone HAVING count(*) > 0 " +
        "ON CONFLICT (key) DO UPDATE SET value = GREATEST(taskflow_meta.value, EXCLUDED.value)) " +
        "SELECT count(*) FROM gone",
      values: [beforeMs],
    });
    return rows[0]![0] as number;
  }

  async counts(): Promise<TaskCounts> {
    const rows = await this.db.read("counts", { name: "tf_counts", text: "SELECT state, count(*) FROM tasks GROUP BY state", values: [] });
    const counts = Object.fromEntries(TASK_STATES.map((state) => [state, 0])) as TaskCounts;
    for (const [state, n] of rows) if ((state as string) in counts) counts[state as TaskState] = n as number;
    return counts;
  }

  /** Group-commit counters since this instance was made. */
  stats(): PostgresStoreStats {
    return this.writes.stats();
  }
}
