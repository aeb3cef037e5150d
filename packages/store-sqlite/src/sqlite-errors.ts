/**
 * The one place where errors from the native SQLite binding become TaskflowErrors, so callers
 * never see a `SqliteError` and can act on a gRPC-style code instead.
 */
import { Code, Reason, TaskflowError } from "@taskflow/core";
import { WRITER_GONE } from "./writer.js";

/**
 * Conditions a retry or an operator can fix (disk full, file locked or unreadable): the store is
 * unavailable, not broken.
 */
const UNAVAILABLE_PREFIXES = ["SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"];
const DATA_LOSS_PREFIXES = ["SQLITE_CORRUPT", "SQLITE_NOTADB"];
/** Node's own file-system errors, raised while creating the database's folder. */
const UNAVAILABLE_ERRNOS = new Set(["EACCES", "EPERM", "EROFS", "ENOSPC", "ENOTDIR", "EEXIST", "EISDIR", "ENOENT"]);

/** Converts anything thrown while talking to SQLite into a TaskflowError with reason `STORE`. */
export function toStoreError(err: unknown, doing: string): TaskflowError {
  if (TaskflowError.is(err)) return err;
  const sqliteCode = typeof (err as { code?: unknown })?.code === "string" ? (err as { code: string }).code : "";
  const message = `sqlite store: ${doing} failed: ${err instanceof Error ? err.message : String(err)}`;
  return new TaskflowError(codeFor(sqliteCode), message, { cause: err, reason: Reason.STORE });
}

function codeFor(sqliteCode: string): Code {
  // The writer thread died (see writer.ts); a restarted store gets a new one.
  if (sqliteCode === WRITER_GONE) return Code.UNAVAILABLE;
  if (sqliteCode === "SQLITE_CONSTRAINT_PRIMARYKEY" || sqliteCode === "SQLITE_CONSTRAINT_UNIQUE") return Code.ALREADY_EXISTS;
  if (DATA_LOSS_PREFIXES.some((p) => sqliteCode.startsWith(p))) return Code.DATA_LOSS;
  if (UNAVAILABLE_PREFIXES.some((p) => sqliteCode.startsWith(p))) return Code.UNAVAILABLE;
  if (UNAVAILABLE_ERRNOS.has(sqliteCode)) return Code.UNAVAILABLE;
  return Code.INTERNAL;
}

/** For calls made before `open` or after `close`. */
export function notOpen(): TaskflowError {
  return new TaskflowError(Code.UNAVAILABLE, "sqlite store: not open", { reason: Reason.STORE });
}
