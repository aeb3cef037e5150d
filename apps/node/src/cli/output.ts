/**
 * How the CLI prints (tables, JSON payloads, times), and the exit codes scripts can rely on.
 * Nothing here loads @taskflow/proto: `--help` and usage errors must start fast (task-view.ts
 * shows tasks and workers).
 */
import { Code, Reason, TaskflowError } from "@taskflow/core/base";

export const EXIT = {
  OK: 0,
  /** The task failed or was cancelled (submit --wait, watch). */
  TASK_FAILED: 1,
  /** Bad usage, an invalid argument, or a config the node cannot start with. */
  USAGE: 2,
  /** The task or worker does not exist. */
  NOT_FOUND: 3,
  /** The control node could not be reached. */
  UNAVAILABLE: 4,
  /** Anything else. */
  ERROR: 5,
} as const;

export function exitCodeFor(err: unknown): number {
  const e = TaskflowError.from(err);
  // A config the node cannot start with, whether found parsing it or using it (a port in use).
  if (e.reason === Reason.CONFIG) return EXIT.USAGE;
  switch (e.code) {
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return EXIT.USAGE;
    case Code.NOT_FOUND:
      return EXIT.NOT_FOUND;
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
      return EXIT.UNAVAILABLE;
    case Code.ABORTED:
    case Code.CANCELLED:
      return e.reason === "TASKFLOW_ERR_TASK_FAILED" || e.reason === "TASKFLOW_ERR_TASK_CANCELLED" ? EXIT.TASK_FAILED : EXIT.ERROR;
    default:
      return EXIT.ERROR;
  }
}

/**
 * How the CLI states an error. A client command's shows the status code and the reason a script
 * can match on, such as `error: RESOURCE_EXHAUSTED (TASKFLOW_ERR_HEAP_FULL): the task queue is
 * full …`; the node's own start-up errors are their message alone (it names the key and the fix).
 */
export function errorLine(e: TaskflowError, clientCommand: boolean): string {
  if (!clientCommand) return e.message;
  return `error: ${e.codeName}${e.reason ? ` (${e.reason})` : ""}: ${e.message}`;
}

const decoder = new TextDecoder();

/**
 * Payloads and results nested deeper than this are printed as text. JSON.parse reads any depth,
 * but JSON.stringify recurses and overflows the stack a few thousand levels down, and one such
 * task would make `list --json` fail for every task on its page.
 */
export const MAX_PRINTED_JSON_DEPTH = 256;

/** The JSON value `bytes` hold; their text when they are not JSON or nest too deep to print. */
export function bytesAsJson(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) return null;
  const text = decoder.decode(bytes);
  if (nestsDeeperThan(text, MAX_PRINTED_JSON_DEPTH)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** True when arrays and objects in `text` nest deeper than `limit` (brackets in strings aside). */
function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* backslash: skip the escaped character */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}

/** Left-aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}

/**
 * A point in time for --since/--until: a duration back from `now` ("1h", "30m", "2d") or a date
 * `Date.parse` reads ("2026-01-31T12:00:00Z"); undefined when it is neither.
 */
export function parseTimePoint(text: string, now: number): number | undefined {
  const ago = parseDelay(text);
  if (ago !== undefined) return now - ago;
  const at = /^\d{4}-\d{2}-\d{2}/.test(text.trim()) ? Date.parse(text) : NaN;
  return Number.isFinite(at) ? at : undefined;
}

/**
 * A time ahead for `--deadline`: "+5m" (from `now`, units as {@link parseDelay}) or an ISO 8601
 * time ("2030-01-01T09:00:00Z"); undefined when it is neither.
 */
export function parseTimeAhead(text: string, now: number): number | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith("+")) {
    const ahead = parseDelay(trimmed.slice(1));
    return ahead === undefined ? undefined : now + ahead;
  }
  const at = /^\d{4}-\d{2}-\d{2}T/.test(trimmed) ? Date.parse(trimmed) : NaN;
  return Number.isFinite(at) ? at : undefined;
}

/** Parses a `--delay` value: a whole number with a unit, ms, s, m, h or d ("250ms", "30s", "5m"). Returns ms, or undefined. */
export function parseDelay(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
