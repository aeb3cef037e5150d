/**
 * Why `taskflow node` could not start, said in terms of its config: the key to change, the real
 * cause and a fix (FAILED_PRECONDITION with reason `TASKFLOW_ERR_CONFIG`, exit code 2), not the
 * store's or grpc-js's own words, which name neither.
 */
import { statSync } from "node:fs";
import { describeSystemError, systemErrorCode, unusableConfig, type TaskflowError } from "@taskflow/core";

/** `store.open()` failed for the database at `file` (store.path, resolved). */
export function storeOpenError(err: unknown, file: string): TaskflowError {
  const fix = "point store.path at a database file in a folder this node can create and write (a relative path starts at the config file's folder)";
  const folderError = findCause(err, (e) => (e as { syscall?: unknown }).syscall === "mkdir");
  if (folderError) {
    const folder = String((folderError as { path?: unknown }).path ?? file);
    return unusableConfig("store.path", `cannot create folder ${folder}: ${describeSystemError(folderError)}`, fix, err);
  }
  if (isFolder(file)) return unusableConfig("store.path", `${file} is a folder`, `name the database file in it, such as ${file}/tasks.db`, err);
  const sqliteCode = findCause(err, (e) => /^SQLITE_/.test(String((e as { code?: unknown }).code)));
  const cause = sqliteCode
    ? `${sqliteCode.message} (${String((sqliteCode as { code?: unknown }).code)})`
    : systemErrorCode(err)
      ? describeSystemError(err)
      : innermostMessage(err);
  return unusableConfig("store.path", `cannot open the database ${file}: ${cause}`, fix, err);
}

/** The gRPC server could not bind `host:port` (control.host / control.port). */
export function controlListenError(err: unknown, host: string, port: number): TaskflowError {
  const code = systemErrorCode(err);
  const hostFault = code === "EADDRNOTAVAIL" || code === "ENOTFOUND";
  return unusableConfig(
    hostFault ? "control.host" : "control.port",
    `cannot listen on ${host}:${port}: ${describeSystemError(err)}`,
    hostFault ? "use an address of this host such as 127.0.0.1 or 0.0.0.0" : "choose another control.port (0 picks a free one) or stop what uses it",
    err,
  );
}

/** `control.traceFile` cannot be opened for appending. */
export function traceFileError(err: unknown, file: string): TaskflowError {
  return unusableConfig("control.traceFile", `cannot open ${file} for appending: ${describeSystemError(err)}`, "point it at a file in a folder this node can write (a relative path starts at the config file's folder), or leave it out", err);
}

/** Bytes a heap record takes in shared memory (shm-heap's layout: 2 Float64 + 7 Int32 fields). */
const HEAP_RECORD_BYTES = 44;

/** A shared-memory heap of `capacity` records (the config key `key`) could not be made. */
export function heapCreateError(err: unknown, key: string, capacity: number, backing: string): TaskflowError {
  const mb = Math.ceil((capacity * HEAP_RECORD_BYTES) / 1e6);
  const room = backing === "shm" ? "room in /dev/shm" : "memory";
  return unusableConfig(
    key,
    `cannot allocate a heap of ${capacity} records (${mb} MB, control.heapBacking "${backing}"): ${innermostMessage(err)}`,
    `lower ${key}, or give this node more ${room}`,
    err,
  );
}

function findCause(err: unknown, match: (e: Error) => boolean): Error | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) if (match(e)) return e;
  return undefined;
}

function innermostMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

function isFolder(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}
