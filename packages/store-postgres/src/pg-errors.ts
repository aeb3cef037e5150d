/**
 * The one place where errors from node-postgres become TaskflowErrors, so callers never see a
 * `DatabaseError` and can act on a gRPC-style code instead.
 */
import { Code, Reason, TaskflowError } from "@taskflow/core";

/** SQLSTATE classes a retry or an operator can fix: the store is unavailable, not broken. */
const UNAVAILABLE_CLASSES = new Set([
  "08", // connection exception
  "53", // insufficient resources (disk full, out of memory, too many connections)
  "57", // operator intervention (shutdown, cannot connect now, query cancelled)
  "58", // system error (I/O)
  "40", // transaction rollback (serialization failure, deadlock): retryable
  "25", // invalid transaction state (read-only transaction on a standby server)
  "28", // invalid authorization (password, pg_hba): fixed by the operator
  "3D", // invalid catalog name (no such database)
]);
/** Node's own network errors while connecting. */
const UNAVAILABLE_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "EAI_AGAIN", "ENOENT"]);

function sqlState(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/** Converts anything thrown while talking to Postgres into a TaskflowError with reason `STORE`. */
export function toStoreError(err: unknown, doing: string): TaskflowError {
  if (TaskflowError.is(err)) return err;
  const message = `postgres store: ${doing} failed: ${err instanceof Error ? err.message : String(err)}`;
  return new TaskflowError(codeFor(err), message, { cause: err, reason: Reason.STORE });
}

function codeFor(err: unknown): Code {
  const code = sqlState(err);
  if (code === "23505") return Code.ALREADY_EXISTS; // unique_violation
  if (code === "XX001" || code === "XX002") return Code.DATA_LOSS; // data_corrupted, index_corrupted
  // A NUL character in a string, or bytes that are not UTF-8: the caller's data, not the store.
  if (code === "22P05" || code === "22021") return Code.INVALID_ARGUMENT;
  if (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_CLASSES.has(code.slice(0, 2))) return Code.UNAVAILABLE;
  if (UNAVAILABLE_ERRNOS.has(code)) return Code.UNAVAILABLE;
  // node-postgres's own messages for a connection that broke or timed out carry no code.
  const text = err instanceof Error ? err.message : "";
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|server does not support SSL|self[- ]signed certificate|unable to verify|certificate/i.test(text)) {
    return Code.UNAVAILABLE;
  }
  return Code.INTERNAL;
}

/** For calls made before `open` or after `close`. */
export function notOpen(): TaskflowError {
  return new TaskflowError(Code.UNAVAILABLE, "postgres store: not open", { reason: Reason.STORE });
}
