/**
 * The config's `limits` (rate limits: token buckets) and `concurrency` (most tasks running at
 * once per key) sections, enforced by the control node's scheduler for the whole cluster.
 * @see docs/adr/0026-rate-and-concurrency-limits.md
 */
import { z } from "zod";

/** Longest pattern or key: the same bound as a task's `concurrencyKey` and `rateLimitKey`. */
export const MAX_LIMIT_KEY_LENGTH = 256;

/** A glob: `*` stands for any run of characters, `?` for one; everything else is literal. */
const glob = z.string().min(1).max(MAX_LIMIT_KEY_LENGTH);

const RATE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|m|h)\s*$/;
const PER_UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** Tokens per second of a rate such as `"100/s"`, `"600/m"` or `"10/h"`; undefined when it is not one. */
export function parseRate(text: string): number | undefined {
  const m = RATE_PATTERN.exec(text);
  if (!m) return undefined;
  const perSecond = Number(m[1]) / PER_UNIT_SECONDS[m[2] as keyof typeof PER_UNIT_SECONDS];
  return perSecond > 0 && perSecond <= 10_000_000 ? perSecond : undefined;
}

const rateText = z.string().refine((s) => parseRate(s) !== undefined, {
  message: 'must be "<count>/s", "<count>/m" or "<count>/h" with a count above 0 (at most 10,000,000 a second)',
});

const atLeastOne = (keys: readonly string[]) => (m: Record<string, unknown>) => keys.some((k) => m[k] !== undefined);

/** Which tasks a rate limit applies to; every key set must fit (globs). */
const rateMatchSchema = z
  .strictObject({
    /** The task's type, such as `"email"` or `"email.*"`. @defaultValue any */
    type: glob.optional(),
    /** The task's `rateLimitKey`, such as `"customer-*"`; a task without one never fits. @defaultValue any */
    rateLimitKey: glob.optional(),
    /** The task's tenant, such as `"acme"` or `"*"`. @defaultValue any */
    tenant: glob.optional(),
  })
  .refine(atLeastOne(["type", "rateLimitKey", "tenant"]), { message: "needs at least one of type, rateLimitKey, tenant" });

/**
 * One rate limit: a token bucket per distinct value of what `match` names (one for
 * `{type: "email"}`, one per key for `{rateLimitKey: "customer-*"}`). Each start of an attempt
 * takes a token; a task with none waits, out of the way of the tasks behind it.
 */
export const rateLimitSchema = z.strictObject({
  match: rateMatchSchema,
  /** Average starts allowed, as `"<count>/s"`, `"/m"` or `"/h"`, such as `"100/s"`. Required. */
  rate: rateText,
  /** Starts allowed at once beyond the average (the bucket's size; it starts full). @defaultValue one second's worth of `rate`, at least 1 */
  burst: z.number().int().min(1).max(10_000_000).optional(),
});

/** Which tasks a concurrency limit applies to; every key set must fit (globs). */
const concurrencyMatchSchema = z
  .strictObject({
    /** The task's `concurrencyKey`, such as `"customer-*"` or `"*"` (every key); a task without one never fits. @defaultValue any */
    concurrencyKey: glob.optional(),
    /** The task's type. @defaultValue any */
    type: glob.optional(),
    /** The task's tenant. @defaultValue any */
    tenant: glob.optional(),
  })
  .refine(atLeastOne(["concurrencyKey", "type", "tenant"]), { message: "needs at least one of concurrencyKey, type, tenant" });

/** One concurrency limit: at most `max` tasks running at once per distinct value of what `match` names. */
export const concurrencyLimitSchema = z.strictObject({
  match: concurrencyMatchSchema,
  /** Most tasks with a worker (assigned or running) at once, per key. Required. */
  max: z.number().int().min(1).max(10_000_000),
});

/**
 * Rate limits, tried in order: a task takes the first whose `match` fits, or none.
 * @defaultValue [] (no rate limits)
 */
export const rateLimitsSchema = z.array(rateLimitSchema).max(1000).default([]);

/**
 * Concurrency limits, tried in order: a task takes the first whose `match` fits, or none.
 * `{match: {concurrencyKey: "*"}, max: 1}` as the last rule is a default for every key.
 * @defaultValue [] (no concurrency limits)
 */
export const concurrencyLimitsSchema = z.array(concurrencyLimitSchema).max(1000).default([]);

export type RateLimitRule = z.output<typeof rateLimitSchema>;
export type ConcurrencyLimitRule = z.output<typeof concurrencyLimitSchema>;

/** A rule's bucket size: its own `burst`, else one second's worth of its rate (at least 1). The one place this default is applied. */
export function rateBurst(rule: RateLimitRule): number {
  return rule.burst ?? Math.max(1, Math.ceil(parseRate(rule.rate)!));
}

/** A glob as an anchored RegExp (`*` any run, `?` one character). */
export function globPattern(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^]*").replace(/\?/g, "[^]");
  return new RegExp(`^${body}$`);
}
