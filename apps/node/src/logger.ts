import { pino } from "pino";
import type { Logger } from "@taskflow/core";

/** Structured JSON logs on stderr, so stdout stays for command output. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination({ fd: 2, sync: false })) as unknown as Logger;
}
