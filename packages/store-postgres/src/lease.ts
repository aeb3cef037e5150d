/**
 * The leader lease of standby control nodes (ADR 0016): one row in Postgres with the holder, an
 * epoch that only grows, and an expiry in the server's clock. A node leads while it holds an
 * unexpired lease; taking an expired (or released) lease raises the epoch, and every write of a
 * fenced store carries its node's epoch (`PostgresTaskStoreOptions.leaderEpoch`), so a node that
 * lost the lease cannot write even while it still believes it leads.
 *
 * A control node with `ha` runs it (apps/node/src/ha.ts, ADR 0028).
 */
import { performance } from "node:perf_hooks";
import type pg from "pg";
import { Code, Reason, TaskflowError } from "@taskflow/core";
import { makePool, redactUrl, type PostgresSslOptions } from "./connection.js";
import { notOpen, toStoreError } from "./pg-errors.js";
import { migrate } from "./schema.js";

/**
 * How long after the lease's expiry (by the server's clock) a standby tries to take it: timers fire
 * no earlier than asked, so this only covers rounding; a try that still comes early reads the row
 * again and tries once more.
 */
const EXPIRY_MARGIN_MS = 5;

/** Options of {@link PostgresLeaderLease}. */
export interface PostgresLeaderLeaseOptions {
  /** The server, as for the store: `postgres://user@host:port/database`. */
  url: string;
  /** TLS to the server, as for the store. @defaultValue none */
  ssl?: boolean | PostgresSslOptions;
  /** The schema of the store whose writes the lease fences. @defaultValue `"taskflow"` */
  schema?: string;
  /** This node's name, unique among the control nodes of a cluster (shown as the holder). */
  holder: string;
  /**
   * How long a lease lasts after it was taken or renewed, in ms. A leader that cannot renew for
   * this long loses it; a standby takes over at most this long after a leader dies.
   * @defaultValue 10000
   */
  ttlMs?: number;
  /**
   * How often {@link PostgresLeaderLease.start} renews (as leader) or tries to take the lease
   * (as standby), in ms; well below `ttlMs`, so that a few failed renewals do not lose it. A
   * standby that sees the lease expire sooner than that tries again right at its expiry.
   * @defaultValue `ttlMs / 4`
   */
  intervalMs?: number;
  /** As for the store. @defaultValue 10000 */
  connectTimeoutMs?: number;
}

/** The lease row as the server has it. */
export interface LeaseState {
  holder: string;
  epoch: number;
  /** Milliseconds until it expires (negative once expired), by the server's clock. */
  expiresInMs: number;
}

/** How an election went, for the logs (ADR 0028's failover timeline). */
export interface ElectionInfo {
  /**
   * How long the lease had been free (expired, by the server's clock) when this node took it, in
   * ms; undefined when it was released or never taken.
   */
  freeForMs: number | undefined;
}

/** What {@link PostgresLeaderLease.start} reports. */
export interface LeaseHandlers {
  /** This node took the lease: it leads with this epoch. */
  elected?(epoch: number, info: ElectionInfo): void;
  /** This node no longer leads (another took the lease, or it could not renew in time). */
  lost?(epoch: number, reason: string): void;
  /**
   * A standby read the lease row after a failed try (every `intervalMs`, and right after the
   * lease changed hands at its expiry): who holds it, for telling callers where the leader is.
   */
  observed?(state: LeaseState): void;
}

/**
 * A node's handle on the leader lease.
 *
 * @example
 * ```ts
 * const lease = new PostgresLeaderLease({ url, holder: "control-a" });
 * await lease.open();
 * const store = new PostgresTaskStore({ url, leaderEpoch: () => lease.epoch });
 * lease.start({ elected: (epoch) => resumeAsLeader(epoch), lost: () => stepDown() });
 * ```
 */
export class PostgresLeaderLease {
  private readonly options: Required<Omit<PostgresLeaderLeaseOptions, "ssl">> & Pick<PostgresLeaderLeaseOptions, "ssl">;
  private pool: pg.Pool | undefined;
  private held: number | undefined;
  /** performance.now() past which the lease may have expired on the server: ttl after the request that took or renewed it was sent. */
  private heldUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The epoch {@link start}'s loop last reported as elected, kept across stop/start (a pause). */
  private leading: number | undefined;
  private ticking: Promise<void> | undefined;
  /** How long the lease had been free when {@link tryAcquire} last took it. */
  private lastFreeForMs: number | undefined;

  /** @throws TaskflowError INVALID_ARGUMENT for a bad option. */
  constructor(options: PostgresLeaderLeaseOptions) {
    const ttlMs = options.ttlMs ?? 10_000;
    const invalid = (message: string) => new TaskflowError(Code.INVALID_ARGUMENT, `leader lease: ${message}`, { reason: Reason.STORE });
    if (typeof options.holder !== "string" || options.holder === "") throw invalid("holder must be this node's name");
    if (!Number.isInteger(ttlMs) || ttlMs < 100) throw invalid(`ttlMs must be a whole number ≥ 100, got ${ttlMs}`);
    const intervalMs = options.intervalMs ?? Math.floor(ttlMs / 4);
    if (!Number.isInteger(intervalMs) || intervalMs <= 0 || intervalMs >= ttlMs) throw invalid(`intervalMs must be a whole number between 0 and ttlMs (${ttlMs}), got ${intervalMs}`);
    this.options = {
      url: options.url,
      ssl: options.ssl,
      schema: options.schema ?? "taskflow",
      holder: options.holder,
      ttlMs,
      intervalMs,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    };
  }

  /**
   * The epoch this node leads with, or undefined when it does not lead: never taken, lost, or
   * possibly expired (no renewal acknowledged within `ttlMs` of being sent). Give it to the
   * store as `leaderEpoch: () => lease.epoch`.
   */
  get epoch(): number | undefined {
    if (this.held !== undefined && performance.now() >= this.heldUntil) this.held = undefined;
    return this.held;
  }

  /** Connects (a connection of its own, so renewals never wait behind the store's writes). */
  async open(): Promise<void> {
    if (this.pool) return;
    const pool = makePool(this.options, 1);
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
      throw toStoreError(err, `opening the leader lease at ${redactUrl(this.options.url)}`);
    }
  }

  /** Stops {@link start}'s loop and disconnects. Does not release the lease (see {@link release}). */
  async close(): Promise<void> {
    this.stop();
    await this.ticking;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  /**
   * Takes the lease when it is free (released or expired), raising the epoch. Resolves the new
   * epoch, or undefined when another node holds it.
   */
  async tryAcquire(): Promise<number | undefined> {
    const sent = performance.now();
    // FOR UPDATE first: it waits for every write transaction that checked the old epoch (they
    // hold FOR KEY SHARE, see fencing.ts), which a plain UPDATE of non-key columns would not.
    // Renewals stay plain UPDATEs, so they never wait behind the leader's own writes.
    const rows = await this.query(
      "tryAcquire",
      "WITH free AS (SELECT id, expires_at FROM taskflow_leader WHERE id = 1 AND expires_at <= clock_timestamp() FOR UPDATE) " +
        "UPDATE taskflow_leader t SET holder = $1, epoch = t.epoch + 1, expires_at = clock_timestamp() + $2 * interval '1 millisecond' " +
        "FROM free WHERE t.id = free.id AND t.expires_at <= clock_timestamp() " +
        "RETURNING t.epoch, CASE WHEN free.expires_at = '-infinity' THEN NULL ELSE (extract(epoch FROM clock_timestamp() - free.expires_at) * 1000)::float8 END AS free_ms",
      [this.options.holder, this.options.ttlMs],
    );
    if (!rows.length) return undefined;
    const freeMs = rows[0]!.free_ms;
    this.lastFreeForMs = freeMs === null || freeMs === undefined ? undefined : Math.round(Number(freeMs));
    this.held = Number(rows[0]!.epoch);
    this.heldUntil = sent + this.options.ttlMs;
    return this.held;
  }

  /**
   * Extends the lease this node holds by `ttlMs` from now. False when it is lost: another node
   * took it, or it expired first (an expired lease is never renewed, even if nobody took it, so
   * a node that was paused past its lease always finds out).
   */
  async renew(): Promise<boolean> {
    const epoch = this.epoch;
    if (epoch === undefined) return false;
    const sent = performance.now();
    const rows = await this.query(
      "renew",
      "UPDATE taskflow_leader SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' " +
        "WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() RETURNING epoch",
      [this.options.holder, epoch, this.options.ttlMs],
    );
    if (!rows.length) {
      this.held = undefined;
      return false;
    }
    this.heldUntil = sent + this.options.ttlMs;
    return true;
  }

  /** Gives the lease up at once (a clean shutdown), so a standby need not wait for it to expire. */
  async release(): Promise<void> {
    const epoch = this.held;
    this.held = undefined;
    this.leading = undefined;
    if (epoch === undefined) return;
    await this.query("release", "UPDATE taskflow_leader SET expires_at = '-infinity' WHERE id = 1 AND holder = $1 AND epoch = $2", [this.options.holder, epoch]);
  }

  /** The lease row as the server has it now. */
  async state(): Promise<LeaseState> {
    const rows = await this.query(
      "state",
      "SELECT holder, epoch, CASE WHEN expires_at = '-infinity' THEN -1 ELSE (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 END AS ms FROM taskflow_leader WHERE id = 1",
      [],
    );
    const row = rows[0]!;
    return { holder: String(row.holder), epoch: Number(row.epoch), expiresInMs: Number(row.ms) };
  }

  /**
   * Every `intervalMs`: renews while this node leads, tries to take the lease while it does not,
   * and reports changes. A renewal that fails (server unreachable) is retried until the lease
   * would have expired; then the node has lost it. A standby whose try failed reads when the
   * lease expires and, when that is sooner than `intervalMs`, tries again right then: the lease
   * of a dead leader is taken within milliseconds of its expiry rather than up to an interval
   * later (ADR 0028).
   */
  start(handlers: LeaseHandlers = {}): void {
    if (this.timer) return;
    const tick = async () => {
      let nextInMs = this.options.intervalMs;
      try {
        // A renewal the server could not answer is retried next time, until the lease would
        // have expired.
        if (this.leading !== undefined && !(await this.renew().catch(() => this.epoch !== undefined))) {
          const was = this.leading;
          this.leading = undefined;
          handlers.lost?.(was, "another node holds the lease, or it expired before it was renewed");
        }
        if (this.leading === undefined) {
          const epoch = await this.tryAcquire().catch(() => undefined);
          if (epoch !== undefined) {
            this.leading = epoch;
            handlers.elected?.(epoch, { freeForMs: this.lastFreeForMs });
          } else {
            const row = await this.state().catch(() => undefined);
            if (row) {
              nextInMs = this.untilExpiry(row);
              handlers.observed?.(row);
            }
          }
        }
      } finally {
        if (this.timer) this.timer = setTimeout(run, nextInMs);
      }
    };
    const run = () => {
      this.ticking = tick();
    };
    this.timer = setTimeout(run, 0);
  }

  /**
   * The delay before a standby's next try: the time left on the lease as the server has it (plus
   * a few ms, so the server's clock has passed it), when that is shorter than `intervalMs`.
   * Another node renewing meanwhile only means the try fails and the row is read again.
   */
  private untilExpiry({ expiresInMs }: LeaseState): number {
    return Math.min(this.options.intervalMs, Math.max(EXPIRY_MARGIN_MS, Math.ceil(expiresInMs) + EXPIRY_MARGIN_MS));
  }

  /** Stops the loop of {@link start}; the lease is kept until it expires or is released. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async query(doing: string, text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    const pool = this.pool;
    if (!pool) throw notOpen();
    try {
      return (await pool.query(text, values)).rows as Record<string, unknown>[];
    } catch (err) {
      throw toStoreError(err, `leader lease ${doing}`);
    }
  }
}
