import { pino } from "pino";
import type { Logger } from "@taskflow/core";

/** `json`: one JSON object a line; `pretty`: short readable lines; `auto`: pretty on a terminal. */
export type LogFormat = "auto" | "json" | "pretty";

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO ", 40: "WARN ", 50: "ERROR", 60: "FATAL" };

/** Logs on stderr, so stdout stays for command output. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, format: LogFormat = "auto"): Logger {
  const pretty = format === "pretty" || (format === "auto" && process.stderr.isTTY === true);
  const destination = pretty ? { write: (line: string) => process.stderr.write(prettyLine(line)) } : pino.destination({ fd: 2, sync: false });
  return pino({ level, base: { pid: process.pid, ...bindings } }, destination) as unknown as Logger;
}

/** `12:34:56.789 INFO  worker joined  workerId=vm-1-w0 slots=16`, from one pino JSON line. */
export function prettyLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, pid: _pid, ...fields } = record;
  const when = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${when} ${LEVELS[level as number] ?? String(level)} ${String(msg ?? "")}${rest ? `  ${rest}` : ""}\n`;
}
