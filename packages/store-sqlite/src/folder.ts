import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Creates `dir` and any missing parents, one level at a time, and throws the error of the one
 * folder that could not be made, with its errno code and path. Node's recursive `mkdirSync`
 * hides the cause (a read-only file system comes out as ENOENT) and, on Node 20, never returns
 * under /proc; a file where a folder should be comes out as ENOTDIR naming that file.
 */
export function makeFolder(dir: string): void {
  const kind = kindOf(dir);
  if (kind === "folder") return;
  if (kind === "other") throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: "ENOTDIR", syscall: "mkdir", path: dir });
  const parent = dirname(dir);
  if (parent !== dir) makeFolder(parent);
  try {
    mkdirSync(dir);
  } catch (err) {
    // Made meanwhile by another process: fine.
    if (codeOf(err) !== "EEXIST" || kindOf(dir) !== "folder") throw err;
  }
}

/** What is at `path`: a folder, something else, or nothing (also when a parent is a file). */
function kindOf(path: string): "folder" | "other" | "none" {
  try {
    return statSync(path).isDirectory() ? "folder" : "other";
  } catch (err) {
    if (codeOf(err) === "ENOENT" || codeOf(err) === "ENOTDIR") return "none";
    throw err;
  }
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}
