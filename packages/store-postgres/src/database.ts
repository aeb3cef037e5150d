/**
 * The connections of one Postgres store and what every write shares: opening (with the
 * migrations), closing after the queued writes, reads, and single statements fenced by the
 * leader epoch. The task store and the schedule store of one node go through the same instance,
 * so schedules live in the tasks' database, under the same fence.
 */
import type pg from "pg";
import { checkFence, fenceEpoch } from "./fencing.js";
import { makePool, redactUrl, type ResolvedOptions } from "./connection.js";
import { notOpen, toStoreError } from "./pg-errors.js";
import { migrate } from "./schema.js";

/** A named (prepared) statement and its values. */
export interface Query {
  name: string;
  text: string;
  values: unknown[];
}

export class PostgresDatabase {
  private pool: pg.Pool | undefined;
  /** The pool while closing: the last groups still go through it. */
  private closingPool: pg.Pool | undefined;
  private opening: Promise<void> | undefined;

  constructor(readonly options: ResolvedOptions) {}

  /** The server's URL without its password. */
  get location(): string {
    return redactUrl(this.options.url);
  }

  /** True between `open` and `close`: new writes are accepted. */
  get isOpen(): boolean {
    return this.pool !== undefined;
  }

  /** Where a group commit goes: the open pool, or the closing one while the last groups drain. */
  get writePool(): pg.Pool | undefined {
    return this.pool ?? this.closingPool;
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

  /** Refuses new writes, awaits `drain` (the queued writes still commit), then closes the connections. */
  async close(drain: () => Promise<void>): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    this.pool = undefined;
    this.closingPool = pool;
    try {
      await drain();
    } finally {
      this.closingPool = undefined;
      await pool.end().catch((err: unknown) => {
        throw toStoreError(err, "closing");
      });
    }
  }

  /**
   * The epoch this node's writes must carry now (undefined when writes are not fenced).
   * @throws TaskflowError UNAVAILABLE with reason NOT_LEADER when this node holds no lease.
   */
  fenceEpoch(): number | undefined {
    return fenceEpoch(this.options.leaderEpoch);
  }

  /** Rows as arrays; errors become store errors saying what was `doing`. */
  async read(doing: string, query: Query): Promise<unknown[][]> {
    const pool = this.pool;
    if (!pool) throw notOpen();
    try {
      const result = await pool.query<unknown[]>({ ...query, rowMode: "array" });
      return result.rows;
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }

  /**
   * One statement outside the task groups, fenced by the leader epoch as they are (in a
   * transaction of its own that checks the fence first); returns its rows and the rows it changed.
   */
  async writeOne(doing: string, query: Query): Promise<{ rows: unknown[][]; rowCount: number }> {
    const pool = this.pool;
    if (!pool) throw notOpen();
    let client: pg.PoolClient | undefined;
    try {
      const fenced = this.fenceEpoch();
      client = await pool.connect();
      const statement = { ...query, rowMode: "array" as const };
      if (fenced === undefined) {
        const { rows, rowCount } = await client.query<unknown[]>(statement);
        return { rows, rowCount: rowCount ?? 0 };
      }
      await client.query("BEGIN");
      try {
        await checkFence(client, fenced);
        const { rows, rowCount } = await client.query<unknown[]>(statement);
        await client.query("COMMIT");
        return { rows, rowCount: rowCount ?? 0 };
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
}
