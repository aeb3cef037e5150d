/** Reads a config file (JSON) and validates it; every error names the file, the key and the fix. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Code, Reason, TaskflowError, parseConfig, type TaskflowConfig } from "@taskflow/core";

export interface LoadedConfig {
  config: TaskflowConfig;
  /** The folder relative paths and policy packages resolve from. */
  baseDir: string;
  file: string | undefined;
}

export function loadConfigFile(file: string | undefined): LoadedConfig {
  if (!file) return { config: parseConfig({}, "the built-in defaults"), baseDir: process.cwd(), file: undefined };
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "it does not exist" : code === "EISDIR" ? "it is a folder" : (err as Error).message;
    throw new TaskflowError(Code.INVALID_ARGUMENT, `cannot read config file ${absolute}: ${why}; fix: pass --config with the path of a JSON config file`, {
      reason: Reason.CONFIG_FILE,
      cause: err,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `config file ${absolute} is not valid JSON: ${(err as Error).message}`, {
      reason: Reason.CONFIG_FILE,
      cause: err,
    });
  }
  return { config: parseConfig(raw, absolute), baseDir: path.dirname(absolute), file: absolute };
}
