/**
 * Submission attributes stored as one text column. Each feature that adds an optional,
 * submission-time field to {@link TaskSpec} (metadata, a deadline, keys for limits, dependencies…)
 * lists it in {@link SPEC_ATTRIBUTE_KEYS}; every store then keeps it without a column or a
 * migration of its own, and a record without any of them costs an empty string.
 */
import type { TaskSpec } from "./model.js";

/**
 * The optional TaskSpec fields kept in the attributes column. They are fixed at submission: a
 * store writes them with the insert and never updates them.
 */
export const SPEC_ATTRIBUTE_KEYS = ["metadata", "deadline", "concurrencyKey", "rateLimitKey", "dependsOn", "onDependencyFailure", "schedule"] as const satisfies readonly (keyof TaskSpec)[];

export type SpecAttributeKey = (typeof SPEC_ATTRIBUTE_KEYS)[number];
export type SpecAttributes = Pick<TaskSpec, SpecAttributeKey>;

/** The record's attributes as JSON, or "" when it has none (the common case: no stringify). */
export function encodeSpecAttributes(spec: Readonly<TaskSpec>): string {
  let out: Record<string, unknown> | undefined;
  for (const key of SPEC_ATTRIBUTE_KEYS) {
    const value = spec[key];
    if (value === undefined) continue;
    (out ??= {})[key] = value;
  }
  return out === undefined ? "" : JSON.stringify(out);
}

/**
 * The attributes of a stored record. Only keys that were set come back (a record read back
 * deep-equals the one stored); unknown keys, from a newer version, are dropped.
 */
export function decodeSpecAttributes(text: string): Partial<SpecAttributes> {
  if (text === "") return {};
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of SPEC_ATTRIBUTE_KEYS) if (parsed[key] !== undefined) out[key] = parsed[key];
  return out as Partial<SpecAttributes>;
}
