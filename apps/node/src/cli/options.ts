/** Parsers of the CLI's option values: each names the flag and the form it takes. */
import { InvalidArgumentError } from "commander";
import { Code, MAX_DELAY_MS, TaskflowError } from "@taskflow/core/base";
import { parseDelay, parseTimeAhead } from "./output.js";

export function parseInteger(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number.`);
    return n;
  };
}

export function parseDelayOption(value: string): number {
  const ms = parseDelay(value);
  if (ms === undefined) throw new InvalidArgumentError("--delay is a whole number with a unit: 250ms, 30s, 5m, 2h or 1d.");
  if (ms > MAX_DELAY_MS) throw new InvalidArgumentError("--delay is at most 365d.");
  return ms;
}

export function parseAtOption(value: string): number {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(ms)) {
    throw new InvalidArgumentError("--at is an ISO 8601 time, such as 2030-01-01T09:00:00Z or 2030-01-01T10:00:00+01:00.");
  }
  return ms;
}

export function parseLabel(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("labels look like key=value.");
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function parseMetadata(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("metadata looks like key=value.");
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function parseDeadlineOption(value: string): number {
  const ms = parseTimeAhead(value, Date.now());
  if (ms === undefined) throw new InvalidArgumentError("--deadline is an ISO 8601 time (2030-01-01T09:00:00Z) or a time from now (+30s, +5m, +2h, +1d).");
  return ms;
}

export function parseDurationOption(flag: string) {
  return (value: string): number => {
    const ms = parseDelay(value);
    if (ms === undefined || ms > 2 ** 32 - 1) throw new InvalidArgumentError(`${flag} is a whole number with a unit: 250ms, 2s, 5m or 1h (below 49 days).`);
    return ms;
  };
}

export function parsePayload(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `the payload is not valid JSON: ${text}; quote it, for example '{"n": 1}'`);
  }
}
