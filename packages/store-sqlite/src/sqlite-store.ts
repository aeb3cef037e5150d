/**
 * The durable, embedded task store: one SQLite file in WAL mode, written through group commit.
 *
 * better-sqlite3 is synchronous, so every statement runs on the caller's thread; what makes it
 * fast is doing few commits. Writes made in the same tick (or within `groupCommitMaxDelayMs`)
 * are queued and applied in one transaction, and all their promises settle after its COMMIT.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
  Code,
  Reason,
  TASK_STATES,
  TaskflowError,
  isFinal,
  type AttemptRecord,
  type TaskCounts,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskState,
  type TaskStore,
} from "@taskflow/core";
import { migrate } from "./schema.js";
import { notOpen, toStoreError } from "./sqlite-errors.js";

/** Options of {@link SqliteTaskStore}. */
export interface SqliteTaskStoreOptions {
  /**
   * The database file. Its folder is created when missing; SQLite adds `-wal` and `-shm` files
   * beside it.
   */
  path: string;
  /**
   * How hard a commit waits for the disk.
   * - `"normal"`: the WAL is synced at checkpoints only. An acknowledged write survives a crash
   *   of the process (it is in the OS page cache), but the last commits before a power loss or
   *   kernel crash can be lost. The database is never corrupted either way.
   * - `"full"`: the WAL is synced on every commit, so an acknowledged write also survives a
   *   power loss; each group commit then costs one fsync.
   * @defaultValue `"normal"`
   * @see https://www.sqlite.org/pragma.html#pragma_synchronous
   */
  synchronous?: "normal" | "full";
  /**
   * How long the first queued write waits for others to join its transaction, in milliseconds.
   * `0` commits at the end of the current turn of the event loop (`setImmediate`), which already
   * gathers every write made by the callbacks of one I/O phase; a few milliseconds more gathers
   * larger groups at the cost of that much latency per acknowledgement, useful with `"full"`.
   * @defaultValue `0`
   */
  groupCommitMaxDelayMs?: number;
}

/** Counters for tests, benchmarks and `cluster state`. */
export interface SqliteStoreStats {
  /** Transactions committed by group commit. */
  commits: number;
  /** `insert` and `update` calls those transactions carried. */
  writeCalls: number;
  /** Rows written by them. */
  rows: number;
}

type ResolvedOptions = Required<SqliteTaskStoreOptions>;

function resolveOptions(options: SqliteTaskStoreOptions): ResolvedOptions {
  const synchronous = options.synchronous ?? "normal";
  if (synchronous !== "normal" && synchronous !== "full") {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `sqlite store: synchronous must be "normal" or "full", got ${String(synchronous)}`, {
      reason: Reason.STORE,
    });
  }
  const groupCommitMaxDelayMs = options.groupCommitMaxDelayMs ?? 0;
  if (!Number.isFinite(groupCommitMaxDelayMs) || groupCommitMaxDelayMs < 0) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `sqlite store: groupCommitMaxDelayMs must be a number ≥ 0, got ${groupCommitMaxDelayMs}`, {
      reason: Reason.STORE,
    });
  }
  if (typeof options.path !== "string" || options.path === "") {
    throw new TaskflowError(Code.INVALID_ARGUMENT, "sqlite store: path is required", { reason: Reason.STORE });
  }
  return { path: options.path, synchronous, groupCommitMaxDelayMs };
}

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;
const sqlList = (states: readonly string[]) => `(${states.map((s) => `'${s}'`).join(", ")})`;
const FINAL_STATES_SQL = sqlList(TASK_STATES.filter(isFinal));
const UNFINISHED_STATES_SQL = sqlList(TASK_STATES.filter((s) => !isFinal(s)));

/** The columns of `tasks`, inserted in this order. */
const TASK_COLUMNS =
  "seq, id, state, type, client_id, idempotency_key, priority, max_attempts, timeout_ms, expected_duration_ms, " +
  "attempt, epoch, worker_id, created_at, assigned_at, started_at, finished_at, not_before, error, waiting_reason, " +
  "required_labels, attempts, result";

/** Selected in this order everywhere, read back by position (raw rows are cheaper than objects). */
const SELECT_COLUMNS = TASK_COLUMNS.split(", ")
  .map((c) => `t.${c}`)
  .join(", ") + ", p.payload";
const FROM = "tasks t JOIN task_payloads p ON p.seq = t.seq";

/** Bound positionally, in the order of {@link TASK_COLUMNS}. */
function insertParams(t: TaskRecord): unknown[] {
  return [
    t.seq,
    t.id,
    t.state,
    t.type,
    t.clientId,
    t.idempotencyKey,
    t.priority,
    t.maxAttempts,
    t.timeoutMs,
    t.expectedDurationMs,
    t.attempt,
    t.epoch,
    t.workerId,
    t.createdAt,
    t.assignedAt,
    t.startedAt,
    t.finishedAt,
    t.notBefore,
    t.error,
    t.waitingReason,
    JSON.stringify(t.requiredLabels),
    JSON.stringify(t.attempts),
    t.result ?? null,
  ];
}

/**
 * An update rewrites what can change after submission. The identity and submission fields
 * (`seq`, `type`, `clientId`, `idempotencyKey`, `createdAt`, `payload`) are left out on purpose:
 * they never change, and SQLite skips maintaining an index whose columns an UPDATE does not set,
 * so leaving out `type` and `client_id` keeps their indexes untouched on the hottest path.
 */
const UPDATE_SQL =
  "UPDATE tasks SET state = ?, priority = ?, max_attempts = ?, timeout_ms = ?, expected_duration_ms = ?, attempt = ?, " +
  "epoch = ?, worker_id = ?, assigned_at = ?, started_at = ?, finished_at = ?, not_before = ?, error = ?, " +
  "waiting_reason = ?, required_labels = ?, attempts = ?, result = ? " +
  // The seq finds the row through the table's own b-tree, one search fewer than by id; the id
  // makes sure it is the same task.
  "WHERE seq = ? AND id = ?";

function updateParams(t: TaskRecord): unknown[] {
  return [
    t.state,
    t.priority,
    t.maxAttempts,
    t.timeoutMs,
    t.expectedDurationMs,
    t.attempt,
    t.epoch,
    t.workerId,
    t.assignedAt,
    t.startedAt,
    t.finishedAt,
    t.notBefore,
    t.error,
    t.waitingReason,
    JSON.stringify(t.requiredLabels),
    JSON.stringify(t.attempts),
    t.result ?? null,
    t.seq,
    t.id,
  ];
}

/** A Buffer from SQLite as a plain Uint8Array over the same memory (no copy). */
function bytes(value: Buffer): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function toRecord(row: unknown[]): TaskRecord {
  const result = row[22] as Buffer | null;
  return {
    seq: row[0] as number,
    id: row[1] as string,
    state: row[2] as TaskState,
    type: row[3] as string,
    clientId: row[4] as string,
    idempotencyKey: row[5] as string,
    priority: row[6] as number,
    maxAttempts: row[7] as number,
    timeoutMs: row[8] as number,
    expectedDurationMs: row[9] as number,
    attempt: row[10] as number,
    epoch: row[11] as number,
    workerId: row[12] as string,
    createdAt: row[13] as number,
    assignedAt: row[14] as number,
    startedAt: row[15] as number,
    finishedAt: row[16] as number,
    notBefore: row[17] as number,
    error: row[18] as string,
    waitingReason: row[19] as string,
    requiredLabels: JSON.parse(row[20] as string) as Record<string, string>,
    attempts: JSON.parse(row[21] as string) as AttemptRecord[],
    payload: bytes(row[23] as Buffer),
    result: result === null ? undefined : bytes(result),
  };
}

/** One `insert` or `update` call waiting for the next group commit. */
interface PendingWrite {
  insert: boolean;
  /** Parameters taken when the call was made: the write stores the record as it was then. */
  rows: unknown[][];
  /** The payloads of inserted tasks, by row. */
  payloads: Uint8Array[] | undefined;
  resolve: () => void;
  reject: (err: TaskflowError) => void;
}

interface Statements {
  insert: Database.Statement<unknown[]>;
  insertPayload: Database.Statement<[unknown, Uint8Array | undefined]>;
  update: Database.Statement<unknown[]>;
  get: Database.Statement<[string], unknown[]>;
  byKey: Database.Statement<[string], unknown[]>;
  unfinished: Database.Statement<[], unknown[]>;
  maxSeq: Database.Statement<[], number | null>;
  purgedMaxSeq: Database.Statement<[], number | undefined>;
  counts: Database.Statement<[], [TaskState, number]>;
  purge: Database.Transaction<(beforeMs: number) => number>;
  /** `list` statements by filter shape (which of states/type/client are set, how many states). */
  list: Map<string, { page: Database.Statement<unknown[], unknown[]>; count: Database.Statement<unknown[], number> }>;
}

/**
 * A {@link TaskStore} in one SQLite file: durable, embedded, no server to run.
 *
 * @example
 * ```ts
 * const store = new SqliteTaskStore({ path: "/var/lib/taskflow/tasks.db" });
 * await store.open();
 * ```
 */
export class SqliteTaskStore implements TaskStore {
  readonly kind = "sqlite";
  readonly durable = true;
  private readonly options: ResolvedOptions;
  private db: Database.Database | undefined;
  private stmts: Statements | undefined;
  private pending: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  private readonly counters: SqliteStoreStats = { commits: 0, writeCalls: 0, rows: 0 };
  private applyBatch: Database.Transaction<(batch: readonly PendingWrite[]) => void> | undefined;

  /** @throws TaskflowError INVALID_ARGUMENT for a bad option. */
  constructor(options: SqliteTaskStoreOptions) {
    this.options = resolveOptions(options);
  }

  /** The database file this store writes. */
  get path(): string {
    return this.options.path;
  }

  /** Opens (creating when needed) the database and brings its schema up to date. */
  async open(): Promise<void> {
    if (this.db) return;
    let db: Database.Database | undefined;
    try {
      mkdirSync(dirname(this.options.path), { recursive: true });
      db = new Database(this.options.path);
      // WAL: readers never block the writer and a commit appends to one file; with NORMAL
      // it needs no fsync, which is what lets group commit reach tens of thousands of rows/s.
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (mode !== "wal" && !db.memory) throw new Error(`could not switch to WAL mode (got ${String(mode)})`);
      db.pragma(`synchronous = ${this.options.synchronous === "full" ? "FULL" : "NORMAL"}`);
      // Another process holding a lock for a moment (a backup, the sqlite3 shell) should delay
      // us, not fail a submit.
      db.pragma("busy_timeout = 5000");
      // 64 MiB of page cache keeps the indexes of a large table hot.
      db.pragma("cache_size = -65536");
      db.pragma("temp_store = MEMORY");
      migrate(db);
      this.stmts = prepare(db);
      this.applyBatch = db.transaction((batch: readonly PendingWrite[]) => {
        for (const write of batch) this.apply(write);
      });
      this.db = db;
    } catch (err) {
      db?.close();
      throw toStoreError(err, `opening ${this.options.path}`);
    }
  }

  /** Commits what is queued, then closes the file. Later calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    const db = this.db;
    if (!db) return;
    this.flush();
    this.db = undefined;
    this.stmts = undefined;
    this.applyBatch = undefined;
    try {
      // Lets the query planner keep statistics for the next open; cheap when nothing changed.
      db.pragma("optimize");
      db.close();
    } catch (err) {
      throw toStoreError(err, "closing");
    }
  }

  /**
   * Queues the tasks for the next group commit; resolves after it. All records of one call are
   * stored or none: an `id`, `seq` or non-empty `idempotencyKey` that exists already rejects the
   * call with ALREADY_EXISTS and leaves the other calls of the group unaffected.
   *
   * The records' fields are read when `insert` is called; the bytes of `payload` and `result`
   * are read at the commit, so do not change the contents of those arrays meanwhile (replacing
   * them is fine).
   */
  insert(tasks: readonly TaskRecord[]): Promise<void> {
    return this.enqueue(true, tasks, insertParams);
  }

  /**
   * Queues new versions of existing tasks for the next group commit; resolves after it. The
   * fields fixed at submission (`seq`, `type`, `clientId`, `idempotencyKey`, `createdAt`,
   * `payload`) keep their inserted values. An id that is not stored (purged meanwhile) is skipped.
   */
  update(tasks: readonly TaskRecord[]): Promise<void> {
    return this.enqueue(false, tasks, updateParams);
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    return this.read("get", (s) => {
      const row = s.get.get(id);
      return row ? toRecord(row) : undefined;
    });
  }

  async findByIdempotencyKey(key: string): Promise<TaskRecord | undefined> {
    // No key means no deduplication: the empty string matches nothing.
    if (key === "") return undefined;
    return this.read("findByIdempotencyKey", (s) => {
      const row = s.byKey.get(key);
      return row ? toRecord(row) : undefined;
    });
  }

  /**
   * Newest first. The page token is the last `seq` returned, so tasks submitted while a client
   * pages neither shift nor repeat the rows it has not seen yet.
   */
  async list(query: TaskQuery): Promise<TaskPage> {
    const pageSize = pageSizeOf(query.pageSize);
    const after = query.pageToken ? decodeToken(query.pageToken) : undefined;
    const states = query.states?.length ? [...new Set(query.states)] : [];
    const type = query.type || undefined;
    const clientId = query.clientId || undefined;
    return this.read("list", (s) => {
      const key = `${states.length}:${type === undefined ? 0 : 1}:${clientId === undefined ? 0 : 1}`;
      let pair = s.list.get(key);
      if (!pair) {
        pair = prepareList(this.db!, states.length, type !== undefined, clientId !== undefined);
        s.list.set(key, pair);
      }
      const others: unknown[] = [];
      if (type !== undefined) others.push(type);
      if (clientId !== undefined) others.push(clientId);
      const filters = [...states, ...others];
      // One row more than asked tells whether another page exists, so the last page says so.
      const before = after ?? Number.MAX_SAFE_INTEGER;
      const limit = pageSize + 1;
      const rows =
        states.length > 1
          ? pair.page.all(...states.flatMap((state) => [state, ...others, before, limit]), limit)
          : pair.page.all(...filters, before, limit);
      const more = rows.length > pageSize;
      const tasks = (more ? rows.slice(0, pageSize) : rows).map(toRecord);
      return {
        tasks,
        nextPageToken: more ? encodeToken(tasks[tasks.length - 1]!.seq) : "",
        totalSize: pair.count.get(...filters) ?? 0,
      };
    });
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    return this.read("loadUnfinished", (s) => s.unfinished.all().map(toRecord));
  }

  /** The highest `seq` ever stored, also when that task has been purged since. */
  async maxSeq(): Promise<number> {
    return this.read("maxSeq", (s) => Math.max(s.maxSeq.get() ?? 0, s.purgedMaxSeq.get() ?? 0));
  }

  /** Deletes tasks in a final state whose `finishedAt` is before `beforeMs`. */
  async purgeFinished(beforeMs: number): Promise<number> {
    return this.read("purgeFinished", (s) => s.purge.immediate(beforeMs));
  }

  async counts(): Promise<TaskCounts> {
    return this.read("counts", (s) => {
      const counts = Object.fromEntries(TASK_STATES.map((state) => [state, 0])) as TaskCounts;
      for (const [state, n] of s.counts.all()) if (state in counts) counts[state] = n;
      return counts;
    });
  }

  /** Group-commit counters since this instance was made. */
  stats(): SqliteStoreStats {
    return { ...this.counters };
  }

  private read<T>(doing: string, fn: (s: Statements) => T): Promise<T> {
    if (!this.stmts) return Promise.reject(notOpen());
    try {
      return Promise.resolve(fn(this.stmts));
    } catch (err) {
      return Promise.reject(toStoreError(err, doing));
    }
  }

  private enqueue(insert: boolean, tasks: readonly TaskRecord[], params: (t: TaskRecord) => unknown[]): Promise<void> {
    if (!this.db) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    let rows: unknown[][];
    try {
      rows = tasks.map(params);
    } catch (err) {
      return Promise.reject(toStoreError(err, insert ? "insert" : "update"));
    }
    const payloads = insert ? tasks.map((t) => t.payload) : undefined;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ insert, rows, payloads, resolve, reject });
      if (this.flushTimer === undefined) {
        const delay = this.options.groupCommitMaxDelayMs;
        this.flushTimer = delay > 0 ? setTimeout(this.flush, delay) : setImmediate(this.flush);
      }
    });
  }

  /** Commits every queued write in one transaction and settles their promises. */
  private readonly flush = (): void => {
    if (this.flushTimer !== undefined) {
      if (this.options.groupCommitMaxDelayMs > 0) clearTimeout(this.flushTimer as NodeJS.Timeout);
      else clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = undefined;
    }
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    try {
      this.applyBatch!.immediate(batch);
      this.counted(batch);
      for (const write of batch) write.resolve();
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(toStoreError(err, batch[0]!.insert ? "insert" : "update"));
        return;
      }
      // The group was rolled back as a whole. Commit its calls one by one so that only the
      // failing call fails; this is the rare path, the happy path pays for no savepoints.
      for (const write of batch) {
        try {
          this.applyBatch!.immediate([write]);
          this.counted([write]);
          write.resolve();
        } catch (oneErr) {
          write.reject(toStoreError(oneErr, write.insert ? "insert" : "update"));
        }
      }
    }
  };

  private apply(write: PendingWrite): void {
    const s = this.stmts!;
    if (write.insert) {
        for (let i = 0; i < write.rows.length; i++) {
        const row = write.rows[i]!;
        s.insert.run(...row);
        s.insertPayload.run(row[0], write.payloads![i]);
      }
    } else {
      for (const row of write.rows) s.update.run(...row);
    }
  }

  private counted(batch: readonly PendingWrite[]): void {
    this.counters.commits += 1;
    this.counters.writeCalls += batch.length;
    for (const write of batch) this.counters.rows += write.rows.length;
  }
}

function prepare(db: Database.Database): Statements {
  const placeholders = TASK_COLUMNS.split(",").map(() => "?").join(", ");
  // Remembers the highest seq before deleting, in case the newest task is among the deleted, so
  // maxSeq never goes backwards. (`WHERE true` keeps SQLite's parser from reading the upsert's
  // ON as a join constraint.)
  const rememberMaxSeq = db.prepare(
    "INSERT INTO meta (key, value) SELECT 'max_seq', MAX(seq) FROM tasks WHERE true HAVING COUNT(*) > 0 " +
      "ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
  );
  const finished = `finished_at > 0 AND finished_at < ? AND state IN ${FINAL_STATES_SQL}`;
  // INDEXED BY: without statistics the planner would walk the state index, i.e. every finished
  // task, where the partial finished_at index reaches just the expired ones.
  const deletePayloads = db.prepare<[number]>(
    `DELETE FROM task_payloads WHERE seq IN (SELECT seq FROM tasks INDEXED BY tasks_finished WHERE ${finished})`,
  );
  const deleteFinished = db.prepare<[number]>(`DELETE FROM tasks INDEXED BY tasks_finished WHERE ${finished}`);
  return {
    purge: db.transaction((beforeMs: number) => {
      rememberMaxSeq.run();
      deletePayloads.run(beforeMs);
      return deleteFinished.run(beforeMs).changes;
    }),
    insert: db.prepare(`INSERT INTO tasks (${TASK_COLUMNS}) VALUES (${placeholders})`),
    insertPayload: db.prepare("INSERT INTO task_payloads (seq, payload) VALUES (?, ?)"),
    update: db.prepare(UPDATE_SQL),
    get: db.prepare<[string], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.id = ?`).raw(),
    byKey: db.prepare<[string], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.idempotency_key = ? AND t.idempotency_key <> ''`).raw(),
    // Through the state index: after a restart most of the table is usually finished tasks kept
    // for their retention, and only the unfinished rows need reading.
    unfinished: db.prepare<[], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.state IN ${UNFINISHED_STATES_SQL} ORDER BY t.seq`).raw(),
    maxSeq: db.prepare<[], number | null>("SELECT MAX(seq) FROM tasks").pluck(),
    purgedMaxSeq: db.prepare<[], number | undefined>("SELECT value FROM meta WHERE key = 'max_seq'").pluck(),
    counts: db.prepare<[], [TaskState, number]>("SELECT state, COUNT(*) FROM tasks GROUP BY state").raw(),
    list: new Map(),
  };
}

/**
 * The page and count statements for one shape of filter. Bound as: the states, then type and
 * client when set, then the seq to start below and the limit. With several states the page is a
 * UNION ALL of one branch per state (bound state, type, client, seq, limit each, then the outer
 * limit): `state IN (…) ORDER BY seq` would read and sort every matching row for each page,
 * while each branch walks its (state, seq) index and stops after a page.
 */
function prepareList(db: Database.Database, states: number, type: boolean, client: boolean) {
  const others: string[] = [];
  if (type) others.push("t.type = ?");
  if (client) others.push("t.client_id = ?");
  const branch = (state: string) =>
    `SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE ${[state, ...others, "t.seq < ?"].join(" AND ")} ORDER BY t.seq DESC LIMIT ?`;
  let page: string;
  if (states > 1) {
    page = Array.from({ length: states }, () => `SELECT * FROM (${branch("t.state = ?")})`).join(" UNION ALL ") + " ORDER BY 1 DESC LIMIT ?";
  } else {
    page = branch(states === 1 ? "t.state = ?" : "1");
  }
  const countFilter = [...(states > 0 ? [`t.state IN (${Array.from({ length: states }, () => "?").join(", ")})`] : []), ...others];
  return {
    page: db.prepare<unknown[], unknown[]>(page).raw(),
    count: db.prepare<unknown[], number>(`SELECT COUNT(*) FROM tasks t WHERE ${countFilter.join(" AND ") || "1"}`).pluck(),
  };
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
  const seq = text.startsWith("s") ? Number(text.slice(1)) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, "invalid page token", { reason: Reason.STORE });
  }
  return seq;
}
