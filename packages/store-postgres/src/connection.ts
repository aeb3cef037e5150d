/** The Postgres store's options, and the pool its connections come from. */
import pg from "pg";
import { Code, Reason, TaskflowError } from "@taskflow/core";
import { quoteIdent } from "./schema.js";

/**
 * TLS to the Postgres server, passed to node-postgres (Node's `tls.connect`). Certificates and
 * keys are PEM text, not paths (the node's config takes paths and reads them).
 */
export interface PostgresSslOptions {
  /** CA certificates (PEM) the server's certificate must chain to. @defaultValue the system's CAs */
  ca?: string | Buffer;
  /** A client certificate (PEM), for servers that authenticate clients by certificate. @defaultValue none */
  cert?: string | Buffer;
  /** The private key of `cert` (PEM). @defaultValue none */
  key?: string | Buffer;
  /**
   * Refuse a server whose certificate does not chain to `ca` or does not name the host.
   * Turning it off keeps the traffic encrypted but lets anyone on the path pretend to be the server.
   * @defaultValue true
   */
  rejectUnauthorized?: boolean;
  /** The name the server's certificate must carry, when it differs from the URL's host. @defaultValue the URL's host */
  servername?: string;
}

/** Options of {@link PostgresTaskStore}. */
export interface PostgresTaskStoreOptions {
  /**
   * A libpq-style connection URL: `postgres://user@host:5432/database`. Leave the password out
   * and give it through `PGPASSWORD` or `~/.pgpass` (node-postgres reads both), so it is not in
   * a config file. Use {@link PostgresTaskStoreOptions.ssl} rather than `sslmode` in the URL.
   */
  url: string;
  /**
   * TLS to the server; `true` for TLS with the system's CAs.
   * @defaultValue none (no TLS unless the URL's `sslmode` asks for it)
   */
  ssl?: boolean | PostgresSslOptions;
  /**
   * Most connections the store opens: up to two carry group commits at once (one when this is
   * 2), the others reads (`get`, `list`, `counts`, …) and purges.
   * @defaultValue 8
   */
  poolSize?: number;
  /**
   * The Postgres schema holding Taskflow's tables, made when missing. Two clusters can share one
   * database with a schema each.
   * @defaultValue `"taskflow"`
   */
  schema?: string;
  /**
   * How long the first queued write waits for others to join its transaction, in milliseconds.
   * `0` sends at the end of the current turn of the event loop; while a group commits the next
   * one gathers anyway, so groups grow with the load.
   * @defaultValue `0`
   */
  groupCommitMaxDelayMs?: number;
  /**
   * How long opening a connection may take before the call fails with UNAVAILABLE, in ms.
   * @defaultValue 10000
   */
  connectTimeoutMs?: number;
  /**
   * Fencing for standby control nodes (ADR 0016): the leader epoch this node holds (from
   * {@link PostgresLeaderLease.epoch}), or undefined when it does not lead. When set, every write
   * (insert, update, purge) runs in a transaction that first locks the lease row (`FOR KEY SHARE`)
   * and checks that its epoch is this one; a node whose lease another node has taken since gets
   * UNAVAILABLE (reason `TASKFLOW_ERR_NOT_LEADER`) and writes nothing, even while it still believes it leads.
   * @defaultValue none (no fencing: a single control node)
   */
  leaderEpoch?: () => number | undefined;
}

/** Counters for tests, benchmarks and `cluster state`. */
export interface PostgresStoreStats {
  /** Groups committed. */
  commits: number;
  /** `insert` and `update` calls those groups carried. */
  writeCalls: number;
  /** Rows written by them. */
  rows: number;
  /** Groups that hit a duplicate and were retried call by call. */
  splitGroups: number;
}

export type ResolvedOptions = Required<Omit<PostgresTaskStoreOptions, "ssl" | "leaderEpoch">> & Pick<PostgresTaskStoreOptions, "ssl" | "leaderEpoch">;

function invalid(message: string): TaskflowError {
  return new TaskflowError(Code.INVALID_ARGUMENT, `postgres store: ${message}`, { reason: Reason.STORE });
}

export function resolveOptions(options: PostgresTaskStoreOptions): ResolvedOptions {
  if (typeof options.url !== "string" || !/^postgres(ql)?:\/\//.test(options.url)) throw invalid("url must be a postgres:// or postgresql:// URL");
  const poolSize = options.poolSize ?? 8;
  if (!Number.isInteger(poolSize) || poolSize < 2 || poolSize > 1000) throw invalid(`poolSize must be a whole number from 2 to 1000, got ${poolSize}`);
  const schema = options.schema ?? "taskflow";
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw invalid(`schema must be a Postgres identifier (letters, digits, _; at most 63), got ${JSON.stringify(schema)}`);
  const groupCommitMaxDelayMs = options.groupCommitMaxDelayMs ?? 0;
  if (!Number.isFinite(groupCommitMaxDelayMs) || groupCommitMaxDelayMs < 0) throw invalid(`groupCommitMaxDelayMs must be a number ≥ 0, got ${groupCommitMaxDelayMs}`);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs <= 0) throw invalid(`connectTimeoutMs must be a whole number > 0, got ${connectTimeoutMs}`);
  if (options.leaderEpoch !== undefined && typeof options.leaderEpoch !== "function") throw invalid("leaderEpoch must be a function returning the epoch held");
  return { url: options.url, ssl: options.ssl, leaderEpoch: options.leaderEpoch, poolSize, schema, groupCommitMaxDelayMs, connectTimeoutMs };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable url)";
  }
}

/**
 * bigint (int8) columns as numbers: every bigint here (seq, epoch, times in ms, counts) is far
 * below 2^53. A per-pool parser table rather than pg's global one, which other code shares.
 */
const TYPES = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20 && format !== "binary") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as "text");
  },
} as unknown as pg.CustomTypesConfig;

/**
 * A pool whose connections resolve table names in `schema` (so the SQL stays unqualified) and
 * read bigints as numbers.
 */
export function makePool(options: { url: string; ssl?: boolean | PostgresSslOptions | undefined; schema: string; connectTimeoutMs: number }, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    ...(options.ssl !== undefined ? { ssl: options.ssl } : {}),
    max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    keepAlive: true,
    application_name: "taskflow",
    options: `-c search_path=${quoteIdent(options.schema)}`,
    types: TYPES,
  });
  // An idle connection that breaks (server restart) is dropped by the pool; the next query
  // opens a new one. Without a listener the 'error' event would end the process.
  pool.on("error", () => {});
  return pool;
}
