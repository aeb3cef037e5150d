/**
 * The durable, embedded task store: one SQLite file in WAL mode, written through group commit.
 *
 * Writes made in the same tick (or within `groupCommitMaxDelayMs`, or while the previous group
 * is committing) are applied in one transaction, and all their promises settle after its
 * COMMIT. better-sqlite3 is synchronous, so by default the writes run on a worker thread with
 * their own connection (see `writer`); reads run on the calling thread, through a second
 * connection, which WAL lets read while the other writes. A third connection, on a thread of its
 * own, copies the WAL back into the database file (checkpointer.ts), so no commit waits for a
 * checkpoint's fsyncs (ADR 0033).
 */
import { dirname } from "node:path";
import type Database from "better-sqlite3";
import {
  Code,
  Reason,
  TASK_STATES,
  TaskflowError,
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
import { FROM, FROM_NOT_INDEXED, SELECT_COLUMNS, UNFINISHED_STATES_SQL, insertParams, toRecord, updateParams } from "./columns.js";
import { CATCH_UP_DELAY_MS, CATCH_UP_FRAMES, CHECKPOINT_INTERVAL_MS, CHECKPOINT_RETRY_MS, Checkpointer, RESTART_FRAMES, type CheckpointPass } from "./checkpointer.js";
import { openConnection } from "./connection.js";
import { makeFolder } from "./folder.js";
import { SqliteScheduleStore } from "./schedule-store.js";
import { migrate } from "./schema.js";
import { notOpen, toStoreError } from "./sqlite-errors.js";
import { CommitTrace, TRACE_FILE, wallNow } from "./trace.js";
import { InlineWriter, ThreadWriter, type Writer } from "./writer.js";
import type { WriteCall } from "./writes.js";

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
  /**
   * Where the writes run.
   * - `"thread"`: on a worker thread with its own connection. The event loop only copies a
   *   write's parameters and hands them over (about 2–3 µs a row instead of 15–25 µs), and while
   *   one group commits the next one gathers, so groups grow with the load. Reads stay on the
   *   calling thread and see every acknowledged write. Costs a little more CPU in total
   *   (the hand-over), spent off the event loop. A group of at most 8 rows made while the
   *   thread is idle (light load) commits on the calling thread instead: cheaper than the two
   *   hand-overs, and no waiting for a sleeping thread to wake (ADR 0033).
   * - `"inline"`: on the calling thread; one thread fewer, and the cheaper choice when the
   *   machine has no spare core.
   * @defaultValue `"thread"`
   */
  writer?: "thread" | "inline";
}

/** Counters for tests, benchmarks and `cluster state`. */
export interface SqliteStoreStats {
  /** Transactions committed by group commit. */
  commits: number;
  /** `insert` and `update` calls those transactions carried. */
  writeCalls: number;
  /** Rows written by them. */
  rows: number;
  /**
   * Why the checkpoint thread's passes fail (or why it stopped), or "" while they succeed.
   * Meanwhile the writer checkpoints by itself inside its commits again (when the WAL passes
   * 40 MiB); failed passes are retried every second, and the first that succeeds clears this.
   */
  checkpointThreadError: string;
}

type ResolvedOptions = Required<SqliteTaskStoreOptions>;

function invalid(message: string): TaskflowError {
  return new TaskflowError(Code.INVALID_ARGUMENT, `sqlite store: ${message}`, { reason: Reason.STORE });
}

function resolveOptions(options: SqliteTaskStoreOptions): ResolvedOptions {
  if (typeof options.path !== "string" || options.path === "") throw invalid("path is required");
  const synchronous = options.synchronous ?? "normal";
  if (synchronous !== "normal" && synchronous !== "full") throw invalid(`synchronous must be "normal" or "full", got ${String(synchronous)}`);
  const groupCommitMaxDelayMs = options.groupCommitMaxDelayMs ?? 0;
  if (!Number.isFinite(groupCommitMaxDelayMs) || groupCommitMaxDelayMs < 0) {
    throw invalid(`groupCommitMaxDelayMs must be a number ≥ 0, got ${groupCommitMaxDelayMs}`);
  }
  const writer = options.writer ?? "thread";
  if (writer !== "thread" && writer !== "inline") throw invalid(`writer must be "thread" or "inline", got ${String(writer)}`);
  return { path: options.path, synchronous, groupCommitMaxDelayMs, writer };
}

/**
 * One `insert` or `update` call waiting for its group commit. An update keeps its records and
 * is turned into rows when the group is sent (see `flush`).
 */
interface PendingWrite {
  call: WriteCall;
  updated: readonly TaskRecord[] | null;
  /** When it was queued ({@link wallNow}), when tracing; else 0. */
  queuedAt: number;
  resolve: () => void;
  reject: (err: TaskflowError) => void;
}

interface ListStatements {
  page: Database.Statement<unknown[], unknown[]>;
  count: Database.Statement<unknown[], number>;
}

interface Reads {
  get: Database.Statement<[string], unknown[]>;
  byKey: Database.Statement<[string, string], unknown[]>;
  unfinished: Database.Statement<[], unknown[]>;
  unfinishedPage: Database.Statement<[number, number], unknown[]>;
  unfinishedNotPlainPage: Database.Statement<[number, number], unknown[]>;
  maxSeq: Database.Statement<[], number | null>;
  purgedMaxSeq: Database.Statement<[], number | undefined>;
  counts: Database.Statement<[], [TaskState, number]>;
  /** `list` statements by filter shape (how many states, whether type and client are set). */
  list: Map<string, ListStatements>;
}

/**
 * A {@link TaskStore} in one SQLite file: durable, embedded, no server to run.
 *
 * @example
 * ```ts
 * const store = new SqliteTaskStore({ path: "/var/lib/taskflow/tasks.db" });
 * await store.open();
 * const schedules = store.schedules; // the ScheduleStore, in the same file
 * ```
 */
export class SqliteTaskStore implements TaskStore {
  readonly kind = "sqlite";
  readonly durable = true;
  /** The schedules, kept in this store's database through its connections; usable while it is open. */
  readonly schedules = new SqliteScheduleStore({
    reader: () => {
      if (!this.db || !this.reads) throw notOpen();
      return this.db;
    },
    writer: () => {
      if (!this.writer || !this.db) throw notOpen();
      return this.writer;
    },
  });
  private readonly options: ResolvedOptions;
  private db: Database.Database | undefined;
  private reads: Reads | undefined;
  private writer: Writer | undefined;
  /** With the thread writer: the calling thread's connection, for small groups (see writerFor). */
  private smallGroupWriter: InlineWriter | undefined;
  private pending: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** The group being committed; the next one gathers until it is done. */
  private inFlight: Promise<void> | undefined;
  private readonly counters: SqliteStoreStats = { commits: 0, writeCalls: 0, rows: 0, checkpointThreadError: "" };
  private checkpointer: Checkpointer | undefined;
  /** Set while the writer finishes a checkpoint so that the WAL starts over (see onCheckpointPass). */
  private restartingWal = false;
  private opening: Promise<void> | undefined;
  private trace: CommitTrace | undefined;

  /** @throws TaskflowError INVALID_ARGUMENT for a bad option. */
  constructor(options: SqliteTaskStoreOptions) {
    this.options = resolveOptions(options);
  }

  /** The database file this store writes. */
  get path(): string {
    return this.options.path;
  }

  /** Opens (creating when needed) the database and brings its schema up to date. */
  open(): Promise<void> {
    if (this.db) return Promise.resolve();
    // Two callers opening at once share one opening rather than racing to make two writers.
    this.opening ??= this.doOpen().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    let db: Database.Database | undefined;
    try {
      makeFolder(dirname(this.options.path));
      db = openConnection(this.options.path, this.options.synchronous);
      migrate(db);
      this.reads = prepareReads(db);
      this.writer =
        this.options.writer === "thread"
          ? await ThreadWriter.start({ path: this.options.path, synchronous: this.options.synchronous, trace: TRACE_FILE !== "" })
          : new InlineWriter(db);
      this.smallGroupWriter = this.options.writer === "thread" ? new InlineWriter(db) : undefined;
      this.counters.checkpointThreadError = "";
      this.checkpointer = await Checkpointer.start(
        {
          path: this.options.path,
          synchronous: this.options.synchronous,
          intervalMs: CHECKPOINT_INTERVAL_MS,
          catchUpFrames: CATCH_UP_FRAMES,
          catchUpDelayMs: CATCH_UP_DELAY_MS,
          restartFrames: RESTART_FRAMES,
          retryDelayMs: CHECKPOINT_RETRY_MS,
          trace: TRACE_FILE !== "",
        },
        this.onCheckpointPass,
        (why) => (this.counters.checkpointThreadError ||= why.message || why.code),
        () => (this.counters.checkpointThreadError = ""),
      );
      // Last: nothing can fail after it, so a failed open leaves no observer running.
      if (TRACE_FILE) this.trace = new CommitTrace(TRACE_FILE);
      this.db = db;
    } catch (err) {
      await this.writer?.close().catch(() => {});
      this.writer = undefined;
      this.smallGroupWriter = undefined;
      db?.close();
      this.reads = undefined;
      throw toStoreError(err, `opening ${this.options.path}`);
    }
  }

  /** Commits what is queued, then closes the file. Later calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    const db = this.db;
    if (!db) return;
    // From here on new writes are refused; the queued ones still commit.
    this.db = undefined;
    for (;;) {
      this.flush();
      if (!this.inFlight) break;
      await this.inFlight;
    }
    const writer = this.writer!;
    this.writer = undefined;
    this.smallGroupWriter = undefined;
    this.reads = undefined;
    try {
      await writer.close();
      await this.checkpointer?.close();
      this.checkpointer = undefined;
      this.trace?.finish();
      this.trace = undefined;
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
   * The records' fields are read when `insert` is called, so changing a record afterwards does
   * not change what is stored; the bytes of `payload` and `result` are read when the group is
   * committed, so do not change the contents of those arrays meanwhile (replacing them is fine).
   */
  insert(tasks: readonly TaskRecord[]): Promise<void> {
    return this.enqueue(true, tasks);
  }

  /**
   * Queues new versions of existing tasks for the next group commit; resolves after it. The
   * fields fixed at submission (`seq`, `type`, `clientId`, `idempotencyKey`, `createdAt`,
   * `payload`) keep their inserted values. An id that is not stored (purged meanwhile) is skipped.
   *
   * The records are read when their group is sent to SQLite, not when `update` is called, and a
   * record passed to several calls of one group is written once, as it is then: a short task's
   * "assigned" and "succeeded" versions often meet in one group while the previous one commits.
   */
  update(tasks: readonly TaskRecord[]): Promise<void> {
    return this.enqueue(false, tasks);
  }

  async get(id: string): Promise<TaskRecord | undefined> {
    return this.read("get", (r) => {
      const row = r.get.get(id);
      return row ? toRecord(row) : undefined;
    });
  }

  async findByIdempotencyKey(tenant: string, key: string): Promise<TaskRecord | undefined> {
    // No key means no deduplication: the empty string matches nothing.
    if (key === "") return undefined;
    return this.read("findByIdempotencyKey", (r) => {
      const row = r.byKey.get(tenant, key);
      return row ? toRecord(row) : undefined;
    });
  }

  /**
   * Newest first. The page token is the last `seq` returned, so tasks submitted while a client
   * pages neither shift nor repeat the rows it has not seen yet.
   */
  async list(query: TaskQuery): Promise<TaskPage> {
    const pageSize = listPageSize(query.pageSize);
    const before = query.pageToken ? seqOfPageToken(query.pageToken) : Number.MAX_SAFE_INTEGER;
    const states = query.states?.length ? [...new Set(query.states)] : [];
    const others: string[] = [];
    if (query.type) others.push(query.type);
    if (query.clientId) others.push(query.clientId);
    if (query.tenant) others.push(query.tenant);
    return this.read("list", (r) => {
      const shape = `${states.length}:${query.type ? 1 : 0}:${query.clientId ? 1 : 0}:${query.tenant ? 1 : 0}`;
      let stmts = r.list.get(shape);
      if (!stmts) {
        stmts = prepareList(this.db!, states.length, !!query.type, !!query.clientId, !!query.tenant);
        r.list.set(shape, stmts);
      }
      // One row more than asked tells whether another page exists, so the last page says so.
      const limit = pageSize + 1;
      const rows =
        states.length > 1
          ? stmts.page.all(...states.flatMap((state) => [state, ...others, before, limit]), limit)
          : stmts.page.all(...states, ...others, before, limit);
      const more = rows.length > pageSize;
      const tasks = (more ? rows.slice(0, pageSize) : rows).map(toRecord);
      return {
        tasks,
        nextPageToken: more ? seqPageToken(tasks[tasks.length - 1]!.seq) : "",
        totalSize: stmts.count.get(...states, ...others) ?? 0,
      };
    });
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    return this.read("loadUnfinished", (r) => r.unfinished.all().map(toRecord));
  }

  async loadUnfinishedPage(afterSeq: number, limit: number, filter: UnfinishedPageFilter = {}): Promise<TaskRecord[]> {
    return this.read("loadUnfinished", (r) => (filter.skipPlainQueued ? r.unfinishedNotPlainPage : r.unfinishedPage).all(afterSeq, limit).map(toRecord));
  }

  /** The highest `seq` ever stored, also when that task has been purged since. */
  async maxSeq(): Promise<number> {
    return this.read("maxSeq", (r) => Math.max(r.maxSeq.get() ?? 0, r.purgedMaxSeq.get() ?? 0));
  }

  /** Deletes tasks in a final state whose `finishedAt` is before `beforeMs`. */
  async purgeFinished(beforeMs: number): Promise<number> {
    if (!this.writer || !this.db) throw notOpen();
    try {
      return await this.writer.purge(beforeMs);
    } catch (err) {
      throw toStoreError(err, "purgeFinished");
    }
  }

  async counts(): Promise<TaskCounts> {
    return this.read("counts", (r) => {
      const counts = Object.fromEntries(TASK_STATES.map((state) => [state, 0])) as TaskCounts;
      for (const [state, n] of r.counts.all()) if (state in counts) counts[state] = n;
      return counts;
    });
  }

  /** Group-commit counters since this instance was made. */
  stats(): SqliteStoreStats {
    return { ...this.counters };
  }

  private read<T>(doing: string, fn: (r: Reads) => T): Promise<T> {
    if (!this.reads || !this.db) return Promise.reject(notOpen());
    try {
      return Promise.resolve(fn(this.reads));
    } catch (err) {
      return Promise.reject(toStoreError(err, doing));
    }
  }

  private enqueue(insert: boolean, tasks: readonly TaskRecord[]): Promise<void> {
    if (!this.db) return Promise.reject(notOpen());
    if (tasks.length === 0) return Promise.resolve();
    let call: WriteCall;
    try {
      call = insert ? { insert, rows: tasks.map(insertParams), payloads: tasks.map((t) => t.payload) } : { insert, rows: [], payloads: null };
    } catch (err) {
      return Promise.reject(toStoreError(err, "insert"));
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ call, updated: insert ? null : tasks, queuedAt: this.trace ? wallNow() : 0, resolve, reject });
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
    const group = this.pending;
    this.pending = [];
    try {
      updateRows(group);
    } catch (err) {
      for (const write of group) write.reject(toStoreError(err, write.call.insert ? "insert" : "update"));
      if (this.pending.length) this.flush();
      return;
    }
    const sentAt = this.trace ? wallNow() : 0;
    this.inFlight = writerFor(group, this.writer!, this.smallGroupWriter).commitGroup(group.map((w) => w.call)).then(
      ({ failures, commits, timing }) => {
        this.trace?.group(group[0]!.queuedAt, sentAt, group.reduce((n, w) => n + w.call.rows.length, 0), timing);
        this.counters.commits += commits;
        group.forEach((write, i) => {
          const failed = failures[i];
          if (failed) {
            write.reject(toStoreError(Object.assign(new Error(failed.message), { code: failed.code }), write.call.insert ? "insert" : "update"));
            return;
          }
          this.counters.writeCalls++;
          this.counters.rows += write.call.rows.length;
          write.resolve();
        });
      },
      (err: unknown) => {
        for (const write of group) write.reject(toStoreError(err, write.call.insert ? "insert" : "update"));
      },
    );
    void this.inFlight.finally(() => {
      this.inFlight = undefined;
      // What gathered meanwhile goes at once: it has waited for a whole commit already.
      if (this.pending.length) this.flush();
    });
  };

  /**
   * A pass that left the WAL long means commits never paused for the length of one (steady
   * load). Then the writer thread copies the last frames itself, in order with the groups: while
   * it does, groups queue behind it (the thread is not idle, so none commits inline), so the WAL
   * is whole in the database file when the next write begins, and starts over. Acknowledgements
   * wait for that short checkpoint about once per 24 MiB of WAL, the event loop never does.
   */
  private readonly onCheckpointPass = (pass: CheckpointPass): void => {
    this.trace?.checkpoint(pass);
    if (pass.frames < RESTART_FRAMES || this.restartingWal || !this.smallGroupWriter || !this.writer) return;
    this.restartingWal = true;
    void this.writer
      .checkpoint()
      .catch(() => {}) // A failed attempt leaves the WAL long; the next long pass tries again.
      .finally(() => (this.restartingWal = false));
  };
}

/**
 * A group of at most this many rows, while the writer thread has nothing to do, commits on the
 * calling thread: the two hand-overs to and from the thread cost more than such a commit (about
 * 30–60 µs), and on a busy machine a sleeping thread can take milliseconds to wake (ADR 0033).
 * Larger groups, the ones heavy load makes, still go to the thread, which keeps the event loop free.
 */
export const SMALL_GROUP_ROWS = 8;

/**
 * Where a group commits. A small one goes inline only while the thread is idle: nothing sent to
 * it (a group, a purge, a schedule, a checkpoint) is pending, so the two connections never write
 * at once and groups still commit in the order they were made.
 */
function writerFor(group: readonly PendingWrite[], writer: Writer, small: InlineWriter | undefined): Writer {
  if (!small || !writer.idle) return writer;
  let rows = 0;
  for (const write of group) if ((rows += write.call.rows.length) > SMALL_GROUP_ROWS) return writer;
  return small;
}

/**
 * Fills in the rows of a group's update calls from their records as they are now, newest call
 * first, each record once: a later call's row already carries an earlier call's change.
 */
function updateRows(group: readonly PendingWrite[]): void {
  const seen = new Set<TaskRecord>();
  for (let i = group.length - 1; i >= 0; i--) {
    const { call, updated } = group[i]!;
    if (!updated) continue;
    for (const task of updated) {
      if (seen.has(task)) continue;
      seen.add(task);
      call.rows.push(updateParams(task));
    }
  }
}

/**
 * A page of unfinished tasks past a seq: a walk of the primary key (NOT INDEXED: through
 * tasks_state, SQLite would gather and sort every unfinished row past it for each page).
 */
function unfinishedWalk(db: Database.Database, filter: string): Database.Statement<[number, number], unknown[]> {
  return db.prepare<[number, number], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM_NOT_INDEXED} WHERE t.seq > ? AND t.state IN ${UNFINISHED_STATES_SQL} ${filter} ORDER BY t.seq LIMIT ?`).raw();
}

function prepareReads(db: Database.Database): Reads {
  return {
    get: db.prepare<[string], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.id = ?`).raw(),
    byKey: db.prepare<[string, string], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.tenant = ? AND t.idempotency_key = ? AND t.idempotency_key <> ''`).raw(),
    // Through the state index: after a restart most of the table is usually finished tasks kept
    // for their retention, and only the unfinished rows need reading.
    unfinished: db.prepare<[], unknown[]>(`SELECT ${SELECT_COLUMNS} FROM ${FROM} WHERE t.state IN ${UNFINISHED_STATES_SQL} ORDER BY t.seq`).raw(),
    unfinishedPage: unfinishedWalk(db, ""),
    // The plain queued tasks (isPlainQueuedRecord in @taskflow/core) are still walked, but not
    // copied out and made into records.
    unfinishedNotPlainPage: unfinishedWalk(db, "AND NOT (t.state = 'queued' AND t.worker_id = '' AND t.not_before = 0 AND t.attributes = '')"),
    maxSeq: db.prepare<[], number | null>("SELECT MAX(seq) FROM tasks").pluck(),
    purgedMaxSeq: db.prepare<[], number | undefined>("SELECT value FROM meta WHERE key = 'max_seq'").pluck(),
    counts: db.prepare<[], [TaskState, number]>("SELECT state, COUNT(*) FROM tasks GROUP BY state").raw(),
    list: new Map(),
  };
}

/**
 * The page and count statements for one shape of filter. Bound as: the states, then type,
 * client and tenant when set, then the seq to start below and the limit. With several states the page is a
 * UNION ALL of one branch per state (bound state, type, client, seq, limit each, then the outer
 * limit): `state IN (…) ORDER BY seq` would read and sort every matching row for each page,
 * while each branch walks its (state, seq) index and stops after a page.
 */
function prepareList(db: Database.Database, states: number, type: boolean, client: boolean, tenant: boolean): ListStatements {
  const others: string[] = [];
  if (type) others.push("t.type = ?");
  if (client) others.push("t.client_id = ?");
  if (tenant) others.push("t.tenant = ?");
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
