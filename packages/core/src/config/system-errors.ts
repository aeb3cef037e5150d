/** Config values that parsed but failed when used, and operating system errors in words. */
import { Code, Reason, TaskflowError } from "../errors.js";

/**
 * A config value that parsed but that the node cannot start with, found only when used: a port
 * in use, a store folder it cannot create. FAILED_PRECONDITION with reason `TASKFLOW_ERR_CONFIG`,
 * worded like a config file error: `<key>: <problem>; fix: <fix>`.
 */
export function unusableConfig(key: string, problem: string, fix: string, cause?: unknown): TaskflowError {
  return new TaskflowError(Code.FAILED_PRECONDITION, `${key}: ${problem}; fix: ${fix}`, { reason: Reason.CONFIG, cause });
}

const SYSTEM_ERRORS: Record<string, string> = {
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "it is a file, not a folder",
  EISDIR: "it is a folder",
  ENOENT: "no such file or folder, and the file system does not allow creating it",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "no such address on this host",
  ENOTFOUND: "no such host name",
};

/**
 * The cause of an operating system error in words with its code, such as `read-only file
 * system (EROFS)`: the code of `err` or of an error in its `cause` chain, else its message.
 */
export function describeSystemError(err: unknown): string {
  const code = systemErrorCode(err);
  if (code) return `${SYSTEM_ERRORS[code] ?? code.toLowerCase()} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

/** The `E…` code of `err` or of its causes; grpc-js keeps it only in the message. */
export function systemErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
    const inMessage = /\b(E[A-Z]{4,})\b/.exec(e.message)?.[1];
    if (inMessage && inMessage in SYSTEM_ERRORS) return inMessage;
  }
  return undefined;
}
