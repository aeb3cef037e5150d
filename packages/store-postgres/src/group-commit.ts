/**
 * Group commit of task writes: calls made in the same tick (or within `groupCommitMaxDelayMs`, or
 * while the groups in flight commit) go to the server together: all inserts of the group and all
 * its updates over UNNEST, usually as one statement (one round trip, its own transaction), and
 * every call's promise settles after its COMMIT. Up to `WRITE_LANES` groups are in flight, never
 * two writing the same task, so each task's writes apply in call order.
 */
import type pg from "pg";
import { TaskflowError, type TaskRecord } from "@taskflow/core";
import { appendArrays, fencedStatement, foldUpdates, insertStatements, insertUpdateStatement, updateArrays, updateStatements, type ColumnArrays, type Statement } from "./columns.js";
import type { PostgresStoreStats } from "./connection.js";
import type { PostgresDatabase } from "./database.js";
import { checkFence, refuseStale } from "./fencing.js";
import { notOpen, toStoreError } from "./pg-errors.js";
import { CommitTrace, TRACE_FILE } from "./trace.js";

/** One `insert` or `update` call waiting for its group commit. */
export interface PendingWrite {
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

const doing = (write: PendingWrite): string => (write.inserted ? "insert" : "update");

/**
 * Groups committing at once, each on a connection of its own. With one at a time, every write
 * waited behind the group in flight, and the node's inserts (submits) and updates (assignments,
 * results) took turns: ~2 ms per write at 500 tasks/s, and a cap on throughput (ADR 0017, Latency).
 */
export const WRITE_LANES = 2;

/** A group being committed and the tasks it writes. */
interface InFlight {
  ids: ReadonlySet<string>;
  done: Promise<void>;
}

/** The ids of the tasks a group writes. */
function idsOf(group: readonly PendingWrite[]): Set<string> {
  const ids = new Set<string>();
  for (const write of group) {
    if (write.inserted) for (const id of write.inserted[1]!) ids.add(id as string);
    if (write.updated) for (const task of write.updated) ids.add(task.id);
  }
  return ids;
}

export class GroupCommit {
  private pending: PendingWrite[] = [];
  private flushTimer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /**
   * The groups being committed, at most `lanes`. A group starts only when it shares no task with
   * them, so the writes of each task still apply in call order; groups of different tasks may
   * commit in either order (a unique key two of them insert is refused to the later one all the same).
   */
  private readonly inFlight = new Set<InFlight>();
  private readonly lanes: number;
  private readonly counters: PostgresStoreStats = { commits: 0, writeCalls: 0, rows: 0, splitGroups: 0 };
  /** Set with `TASKFLOW_PG_TRACE` (trace.ts): when the first write of the pending group was queued. */
  private readonly trace: CommitTrace | undefined = TRACE_FILE ? new CommitTrace(TRACE_FILE) : undefined;
  private queuedAt = 0;

  constructor(private readonly db: PostgresDatabase) {
    // Leave a connection for reads.
    this.lanes = Math.max(1, Math.min(WRITE_LANES, db.options.poolSize - 1));
  }

  /** Queues a call for the next group; resolves after that group's COMMIT. */
  enqueue(write: Omit<PendingWrite, "resolve" | "reject">): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.trace && this.pending.length === 0) this.queuedAt = this.trace.now();
      this.pending.push({ ...write, resolve, reject });
      if (this.flushTimer === undefined && this.inFlight.size < this.lanes) {
        const delay = this.db.options.groupCommitMaxDelayMs;
        this.flushTimer = delay > 0 ? setTimeout(this.flush, delay) : setImmediate(this.flush);
      }
    });
  }

  /** Sends what is queued and waits until no group is in flight (for closing). */
  async drain(): Promise<void> {
    for (;;) {
      this.flush();
      if (this.inFlight.size === 0) break;
      await Promise.race([...this.inFlight].map((g) => g.done));
    }
    this.trace?.finish();
  }

  /** Group-commit counters since this instance was made. */
  stats(): PostgresStoreStats {
    return { ...this.counters };
  }

  /**
   * Sends every queued write as one group, unless every lane is busy or the group shares a task
   * with a group in flight (then it goes when that one is done).
   */
  private readonly flush = (): void => {
    if (this.flushTimer !== undefined) {
      if (this.db.options.groupCommitMaxDelayMs > 0) clearTimeout(this.flushTimer as NodeJS.Timeout);
      else clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = undefined;
    }
    if (this.inFlight.size >= this.lanes || this.pending.length === 0) return;
    const ids = idsOf(this.pending);
    for (const other of this.inFlight) for (const id of ids) if (other.ids.has(id)) return;
    const pool = this.db.writePool;
    const group = this.pending;
    this.pending = [];
    if (!pool) {
      for (const write of group) write.reject(notOpen());
      return;
    }
    const entry: InFlight = { ids, done: this.commitGroup(pool, group, this.queuedAt) };
    this.inFlight.add(entry);
    void entry.done.finally(() => {
      this.inFlight.delete(entry);
      // What gathered meanwhile goes at once: it has waited for a commit already.
      if (this.pending.length) this.flush();
    });
  };

  private async commitGroup(pool: pg.Pool, group: PendingWrite[], queuedAt: number): Promise<void> {
    const sentAt = this.trace?.now() ?? 0;
    let client: pg.PoolClient;
    let fenced: number | undefined;
    try {
      // Read once per group: every call of the group is written under the same epoch.
      fenced = this.db.fenceEpoch();
      client = await pool.connect();
    } catch (err) {
      for (const write of group) write.reject(toStoreError(err, doing(write)));
      return;
    }
    let broken: Error | undefined;
    try {
      try {
        const connectedAt = this.trace?.now() ?? 0;
        const roundTrips = await apply(client, group, fenced);
        this.counters.commits++;
        if (this.trace) {
          const rows = group.reduce((n, w) => n + w.rows, 0);
          this.trace.group({ queuedAt, sentAt, connectedAt, doneAt: this.trace.now(), calls: group.length, rows, roundTrips });
        }
        for (const write of group) this.settled(write);
      } catch (err) {
        // A duplicate in one call fails the whole statement: retry call by call, so that only
        // that call fails (rare, so the common path pays for no savepoints).
        if (sqlStateOf(err) === "23505" && group.length > 1) {
          this.counters.splitGroups++;
          for (const write of group) {
            try {
              await apply(client, [write], fenced);
              this.counters.commits++;
              this.settled(write);
            } catch (e) {
              if (isBroken(e)) broken = e as Error;
              write.reject(toStoreError(e, doing(write)));
            }
          }
        } else {
          if (isBroken(err)) broken = err as Error;
          for (const write of group) write.reject(toStoreError(err, doing(write)));
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
}

/**
 * Writes a group: its inserts, then its updates; usually as one statement (a transaction of its
 * own: one round trip), in one transaction when they take several statements or when the writes
 * are fenced (`fenced` is the leader epoch they must carry). Returns the round trips it took.
 */
async function apply(client: pg.PoolClient, group: readonly PendingWrite[], fenced: number | undefined): Promise<number> {
  let inserted: ColumnArrays | undefined;
  for (const write of group) {
    if (!write.inserted) continue;
    if (inserted) appendArrays(inserted, write.inserted);
    else inserted = write.inserted.map((column) => column.slice());
  }
  let updates = latestVersions(group);
  // A task inserted and updated in this group is inserted as it is now: one row write, and the
  // rest of the updates touch only older rows, so the two can share one statement.
  if (inserted && updates.length) updates = foldUpdates(inserted, updates);
  const inserts = inserted ? insertStatements(inserted) : [];
  const changes = updates.length ? updateStatements(updateArrays(updates)) : [];
  const both = insertUpdateStatement(inserts, changes);
  const statements: Statement[] = both ? [both] : [...inserts, ...changes];
  if (statements.length === 1 && fenced === undefined) {
    // One statement is a transaction of its own: no BEGIN and COMMIT round trips.
    await client.query(statements[0]!);
    return 1;
  }
  const gated = statements.length === 1 && fenced !== undefined ? fencedStatement(statements[0]!, fenced) : undefined;
  if (gated) {
    // The fence inside the statement: it writes nothing unless the epoch is still ours.
    const { rows } = await client.query<unknown[]>({ ...gated, rowMode: "array" });
    refuseStale(rows, fenced!);
    return 1;
  }
  await client.query("BEGIN");
  try {
    if (fenced !== undefined) await checkFence(client, fenced);
    for (const s of statements) await client.query(s);
    await client.query("COMMIT");
    return statements.length + (fenced !== undefined ? 3 : 2);
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
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
