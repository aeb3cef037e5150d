/**
 * The task store on a PostgreSQL server (node-postgres), written through group commit.
 *
 * Writes made in the same tick (or within `groupCommitMaxDelayMs`, or while the previous group is
 * committing) go to the server together: all inserts of the group as one `INSERT … SELECT FROM
 * UNNEST(…)`, all updates as one `UPDATE … FROM UNNEST(…)`, in one transaction, and every call's
 * promise settles after its COMMIT. One group is in flight at a time, so writes apply in call
 * order; reads go through the same pool and see every acknowledged write.
 */
import type pg from "pg";
import {
  Code,
  Reason,
  TASK_STATES,
  TaskflowError,
  decodeSchedule,
  encodeSchedule,
  type ScheduleRecord,
  type ScheduleStore,
  type TaskCounts,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskState,
  type TaskStore,
} from "@taskflow/core";
import {
  FINAL_STATES_SQL,
  SELECT_COLUMNS,
  UNFINISHED_STATES_SQL,
  appendArrays,
  insertArrays,
  insertStatements,
  toRecord,
  updateArrays,
  updateStatements,
  type ColumnArrays,
  type Statement,
} from "./columns.js";
import { notOpen, toStoreError } from "./pg-errors.js";
import { migrate } from "./schema.js";
import { makePool, redactUrl, resolveOptions, type PostgresStoreStats, type PostgresTaskStoreOptions, type ResolvedOptions } from "./connection.js";
import { checkFence, fenceEpoch } from "./fencing.js";

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

/** One `insert` or `update` call waiting for its group commit. */
interface PendingWrite {
  /** Inserts: the column arrays, taken when `insert` was called. */
  inserted: ColumnArrays | null;
  /** Updates: the records, read when the group is sent. */
  updated: readonly TaskRecord[] | null;
  rows: number;
  resolve: () => void;
  reject: (err: TaskflowError) => void;
}

/** An error of the connection itself (no SQLSTATE, not one of ours): drop that connection. */
const isBroken = (err: unknown): boolean => !sqlStateOf(err) && !TaskflowError.is(err);

const sqlStateOf = (err: unknown): string => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
};

/**
 * A {@link TaskStore} on PostgreSQL: durable, shared by every host that reaches the server.
 *
 * @example
 * ```ts
 * const store = new PostgresTaskStore({ url: "postgres://taskflow@db.internal/taskflow", ssl: { ca } });
 * await store.open();
 * ```
 */
export class PostgresTaskStore implements TaskStore, ScheduleStore {
  readonly kind = "postgres";
  readonly durable = true;
  private readonly options: ResolvedOptions;
  private pool: pg.Pool | undefined;
  private pending: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** The group being committed; the next one gathers until it is done. */
  private inFlight: Promise<void> | undefined;
  private readonly counters: PostgresStoreStats = { commits: 0, writeCalls: 0, rows: 0, splitGroups: 0 };
  private opening: Promise<void> | undefined;

  /** @throws TaskflowError INVALID_ARGUMENT for a bad option. */
  constructor(options: PostgresTaskStoreOptions) {
    this.options = resolveOptions(options);
  }

  /** The Postgres schema holding the tables. */
  get schema(): string {
    return this.options.schema;
  }

  /** The server's URL without its password. */
  get location(): string {
    return redactUrl(this.options.url);
  }

  /** Connects, and brings the schema up to date. */
  open(): Promise<void> {
    if (this.pool) return Promise.resolve();
    this.opening ??= this.doOpen().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    const pool = makePool(this.options, this.options.poolSize);
    try {
      const client = await pool.connect();
      try {
        await migrate(client, this.options.schema);
      } finally {
        client.release();
      }
      this.pool = pool;
    } catch (err) {
      await pool.end().catch(() => {});
      throw toStoreError(err, `opening ${this.location} (schema ${this.options.schema})`);
    }
  }

  /** Commits what is queued, then closes the connections. Later calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    // From here on new writes are refused; the queued ones still commit.
    this.pool = undefined;
    this.closingPool = pool;
    try {
      for (;;) {
        this.flush();
        if (!this.inFlight) break;
        await this.inFlight;
      }
    } finally {
      this.closingPool = undefined;
      await pool.end().catch((err: unknown) => {
        throw toStoreError(err, "closing");
      });
    }
  }

  /** The pool while closing: the last groups still go through it. */
  private closingPool: pg.Pool | undefined;

  /**
   * Queues the tasks for the next group commit; resolves after it. All records of one call are
   * stored or none: an `id`, `seq` or non-empty `idempotencyKey` that exists already rejects the
   * call with ALREADY_EXISTS and leaves the other calls of the group unaffected.
   *
   * The records' fields are read when `insert` is called; the bytes of `payload` and `result`
   * when the group is sent, so do not change the contents of those arrays meanwhile.
   */
  insert(tasks: readonly TaskRecord[]): Promise<void> {
    if (!this.pool) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    let inserted: ColumnArrays;
    try {
      inserted = insertArrays(tasks);
    } catch (err) {
      return Promise.reject(toStoreError(err, "insert"));
    }
    return this.enqueue({ inserted, updated: null, rows: tasks.length });
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
    if (!this.pool) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    return this.enqueue({ inserted: null, updated: tasks, rows: tasks.length });
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    const rows = await this.read("get", { name: "tf_get", text: `SELECT ${SELECT_COLUMNS} FROM tasks WHERE id = $1`, values: [id] });
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Keys are scoped per tenant: another tenant's equal key is not this one's. */
  async findByIdempotencyKey(tenant: string, key: string): Promise<TaskRecord | undefined> {
    // No key means no deduplication: the empty string matches nothing.
    if (key === "") return undefined;
    const rows = await this.read("findByIdempotencyKey", {
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
    const pageSize = pageSizeOf(query.pageSize);
    const before = query.pageToken ? decodeToken(query.pageToken) : Number.MAX_SAFE_INTEGER;
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
      this.read("list", {
        name: `tf_list_${shape}`,
        text: `SELECT ${SELECT_COLUMNS} FROM tasks ${pageWhere} ORDER BY seq DESC LIMIT $${values.length + 2}`,
        values: [...values, before, pageSize + 1],
      }),
      this.read("list", { name: `tf_count_${shape}`, text: `SELECT count(*) FROM tasks ${where}`, values }),
    ]);
    const more = rows.length > pageSize;
    const tasks = (more ? rows.slice(0, pageSize) : rows).map(toRecord);
    return { tasks, nextPageToken: more ? encodeToken(tasks[tasks.length - 1]!.seq) : "", totalSize: count[0]![0] as number };
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    const rows = await this.read("loadUnfinished", {
      name: "tf_unfinished",
      text: `SELECT ${SELECT_COLUMNS} FROM tasks WHERE state IN ${UNFINISHED_STATES_SQL} ORDER BY seq`,
      values: [],
    });
    return rows.map(toRecord);
  }

  /** The highest `seq` ever stored, also when that task has been purged since. */
  async maxSeq(): Promise<number> {
    const rows = await this.read("maxSeq", {
      name: "tf_max_seq",
      text: "SELECT GREATEST((SELECT max(seq) FROM tasks), (SELECT value FROM taskflow_meta WHERE key = 'max_seq'))",
      values: [],
    });
    return (rows[0]?.[0] as number | null) ?? 0;
  }

  /** Deletes tasks in a final state whose `finishedAt` is before `beforeMs`, in one statement. */
  async purgeFinished(beforeMs: number): Promise<number> {
    const fenced = this.options.leaderEpoch ? fenceEpoch(this.options.leaderEpoch) : undefined;
    const purge = {
      name: "tf_purge",
      text:
        `WITH gone AS (DELETE FROM tasks WHERE state IN ${FINAL_STATES_SQL} AND finished_at > 0 AND finished_at < $1 RETURNING seq), ` +
        // The highest seq deleted, so maxSeq never goes back.
        "kept AS (INSERT INTO taskflow_meta (key, value) SELECT 'max_seq', max(seq) FROM gone HAVING count(*) > 0 " +
        "ON CONFLICT (key) DO UPDATE SET value = GREATEST(taskflow_meta.value, EXCLUDED.value)) " +
        "SELECT count(*) FROM gone",
      values: [beforeMs],
    };
    if (fenced === undefined) return (await this.read("purgeFinished", purge))[0]![0] as number;
    const pool = this.pool;
    if (!pool) throw notOpen();
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      await client.query("BEGIN");
      try {
        await checkFence(client, fenced);
        const { rows } = await client.query<unknown[]>({ ...purge, rowMode: "array" });
        await client.query("COMMIT");
        return rows[0]![0] as number;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    } catch (err) {
      throw toStoreError(err, "purgeFinished");
    } finally {
      client?.release();
    }
  }

  async counts(): Promise<TaskCounts> {
    const rows = await this.read("counts", { name: "tf_counts", text: "SELECT state, count(*) FROM tasks GROUP BY state", values: [] });
    const counts = Object.fromEntries(TASK_STATES.map((state) => [state, 0])) as TaskCounts;
    for (const [state, n] of rows) if ((state as string) in counts) counts[state as TaskState] = n as number;
    return counts;
  }

  async loadSchedules(): Promise<ScheduleRecord[]> {
    const rows = await this.read("loadSchedules", { name: "tf_schedules", text: "SELECT body FROM schedules", values: [] });
    return rows.map((row) => decodeSchedule(row[0] as string));
  }

  async saveSchedule(schedule: ScheduleRecord): Promise<void> {
    await this.writeOne("saveSchedule", {
      name: "tf_save_schedule",
      text: "INSERT INTO schedules (tenant, id, body) VALUES ($1, $2, $3) ON CONFLICT (tenant, id) DO UPDATE SET body = EXCLUDED.body",
      values: [schedule.tenant, schedule.id, encodeSchedule(schedule)],
    });
  }

  async deleteSchedule(tenant: string, id: string): Promise<boolean> {
    return (await this.writeOne("deleteSchedule", { name: "tf_delete_schedule", text: "DELETE FROM schedules WHERE tenant = $1 AND id = $2", values: [tenant, id] })) > 0;
  }

  /** One statement outside the task groups, fenced by the leader epoch as they are; returns the rows it changed. */
  private async writeOne(doing: string, query: { name: string; text: string; values: unknown[] }): Promise<number> {
    const pool = this.pool;
    if (!pool) throw notOpen();
    let client: pg.PoolClient | undefined;
    try {
      const fenced = fenceEpoch(this.options.leaderEpoch);
      client = await pool.connect();
      if (fenced === undefined) return (await client.query(query)).rowCount ?? 0;
      await client.query("BEGIN");
      try {
        await checkFence(client, fenced);
        const { rowCount } = await client.query(query);
        await client.query("COMMIT");
        return rowCount ?? 0;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    } catch (err) {
      throw toStoreError(err, doing);
    } finally {
      client?.release();
    }
  }

  /** Group-commit counters since this instance was made. */
  stats(): PostgresStoreStats {
    return { ...this.counters };
  }

  private async read(doing: string, query: { name: string; text: string; values: unknown[] }): Promise<unknown[][]> {
    const pool = this.pool;
    if (!pool) throw notOpen();
    try {
      const result = await pool.query<unknown[]>({ ...query, rowMode: "array" });
      return result.rows;
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }

  private enqueue(write: Omit<PendingWrite, "resolve" | "reject">): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ...write, resolve, reject });
      if (this.flushTimer === undefined && !this.inFlight) {
        const delay = this.options.groupCommitMaxDelayMs;
        this.flushTimer = delay > 0 ? setTimeout(this.flush, delay) : setImmediate(this.flush);
      }
    });
  }

  /** Sends every queued write as one group, unless a group is committing (then it goes next). */
  private readonly flush = (): void => {
    if (this.flushTimer !== undefined) {
      if (this.options.groupCommitMaxDelayMs > 0) clearTimeout(this.flushTimer as NodeJS.Timeout);
      else clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = undefined;
    }
    if (this.inFlight || this.pending.length === 0) return;
    const pool = this.pool ?? this.closingPool;
    const group = this.pending;
    this.pending = [];
    if (!pool) {
      for (const write of group) write.reject(notOpen());
      return;
    }
    this.inFlight = this.commitGroup(pool, group);
    void this.inFlight.finally(() => {
      this.inFlight = undefined;
      // What gathered meanwhile goes at once: it has waited for a whole commit already.
      if (this.pending.length) this.flush();
    });
  };

  private async commitGroup(pool: pg.Pool, group: PendingWrite[]): Promise<void> {
    let client: pg.PoolClient;
    let fenced: number | undefined;
    try {
      // Read once per group: every call of the group is written under the same epoch.
      fenced = fenceEpoch(this.options.leaderEpoch);
      client = await pool.connect();
    } catch (err) {
      for (const write of group) write.reject(toStoreError(err, write.inserted ? "insert" : "update"));
      return;
    }
    let broken: Error | undefined;
    try {
      try {
        await this.apply(client, group, fenced);
        this.counters.commits++;
        for (const write of group) this.settled(write);
      } catch (err) {
        // A duplicate in one call fails the whole statement: retry call by call, so that only
        // that call fails (rare, so the common path pays for no savepoints).
        if (sqlStateOf(err) === "23505" && group.length > 1) {
          this.counters.splitGroups++;
          for (const write of group) {
            try {
              await this.apply(client, [write], fenced);
              this.counters.commits++;
              this.settled(write);
            } catch (e) {
              if (isBroken(e)) broken = e as Error;
              write.reject(toStoreError(e, write.inserted ? "insert" : "update"));
            }
          }
        } else {
          if (isBroken(err)) broken = err as Error;
          for (const write of group) write.reject(toStoreError(err, write.inserted ? "insert" : "update"));
        }
      }
    } finally {
      // A connection that broke is dropped rather than handed to the next group.
      client.release(broken);
    }
  }

  private settled(write: PendingWrite): void {
    this.counters.writeCalls++;
    this.counters.rows += write.rows;
    write.resolve();
  }

  /**
   * Writes a group: its inserts, then its updates; in one transaction when there are both, or
   * when the writes are fenced (`fenced` is the leader epoch they must carry).
   */
  private async apply(client: pg.PoolClient, group: readonly PendingWrite[], fenced: number | undefined): Promise<void> {
    let inserted: ColumnArrays | undefined;
    for (const write of group) {
      if (!write.inserted) continue;
      if (inserted) appendArrays(inserted, write.inserted);
      else inserted = write.inserted.map((column) => column.slice());
    }
    const updates = latestVersions(group);
    const statements: Statement[] = [];
    if (inserted) statements.push(...insertStatements(inserted));
    if (updates.length) statements.push(...updateStatements(updateArrays(updates)));
    if (statements.length === 1 && fenced === undefined) {
      // One statement is a transaction of its own: no BEGIN and COMMIT round trips.
      await client.query(statements[0]!);
      return;
    }
    await client.query("BEGIN");
    try {
      if (fenced !== undefined) await checkFence(client, fenced);
      for (const s of statements) await client.query(s);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }
}

/**
 * The records of a group's update calls as they are now, newest call first, each task once: a
 * later call's record already carries an earlier call's change (an UPDATE … FROM that matched a
 * row twice would apply either version).
 */
function latestVersions(group: readonly PendingWrite[]): TaskRecord[] {
  const seen = new Set<string>();
  const out: TaskRecord[] = [];
  for (let i = group.length - 1; i >= 0; i--) {
    const updated = group[i]!.updated;
    if (!updated) continue;
    for (let j = updated.length - 1; j >= 0; j--) {
      const task = updated[j]!;
      if (seen.has(task.id)) continue;
      seen.add(task.id);
      out.push(task);
    }
  }
  return out;
}

function pageSizeOf(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(requested) || requested < 0) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `pageSize must be a whole number ≥ 0, got ${requested}`, { reason: Reason.STORE });
  }
  return Math.min(requested, MAX_PAGE_SIZE);
}

/** Tokens are opaque to clients; inside they are the last seq of the page, base64url-encoded. */
function encodeToken(seq: number): string {
  return Buffer.from(`s${seq}`).toString("base64url");
}

function decodeToken(token: string): number {
  const text = Buffer.from(token, "base64url").toString();
  const seq = /^s\d{1,16}$/.test(text) ? Number(text.slice(1)) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, "page_token is not one this server gave out", { reason: Reason.STORE });
  }
  return seq;
}
