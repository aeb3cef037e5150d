/** Input checks shared by every RPC that accepts tasks; each failure is a precise TaskflowError. */
import { Code, MAX_DELAY_MS, MAX_LIMIT_KEY_LENGTH, MAX_TIMEOUT_MS, Reason, TaskflowError, type TaskSpec } from "@taskflow/core";

const TYPE_PATTERN = /^[A-Za-z0-9_.:/-]{1,128}$/;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
/** Metadata limits: enough for routing hints and trace IDs, not a second payload. */
export const MAX_METADATA_ENTRIES = 64;
export const MAX_METADATA_KEY_CHARS = 128;
export const MAX_METADATA_VALUE_CHARS = 1024;

export interface SpecLimits {
  maxPayloadBytes: number;
  /** The control node's clock, epoch ms: `run_at_ms` may be at most {@link MAX_DELAY_MS} ahead of it. */
  now: number;
}

/**
 * Throws INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming the field; `index` says which spec of a
 * batch (the message then says `specs[i]`), or names the field holding it (a schedule's
 * `schedule.template`). Runs once per submitted task, so it allocates nothing unless it fails.
 */
export function validateSpec(spec: TaskSpec, limits: SpecLimits, index: number | string = -1): void {
  if (spec.type && TYPE_PATTERN.test(spec.type) && spec.payload.byteLength <= limits.maxPayloadBytes && Number.isInteger(spec.priority) &&
      spec.priority >= INT32_MIN && spec.priority <= INT32_MAX && spec.maxAttempts <= 100 && spec.timeoutMs <= MAX_TIMEOUT_MS && spec.idempotencyKey.length <= 256 && labelsOk(spec.requiredLabels) &&
      ((!spec.delayMs && !spec.runAt) || delayOk(spec, limits.now)) && ((!spec.concurrencyKey && !spec.rateLimitKey) || limitKeysOk(spec)) &&
      (spec.metadata === undefined || metadataOk(spec.metadata)) && (spec.deadline === undefined || deadlineOk(spec.deadline, limits.now))) {
    return;
  }
  const where = typeof index === "string" ? index : index >= 0 ? `specs[${index}]` : "spec";
  if (!spec.type) throw invalid(`${where}.type is required (the name of a handler, such as "echo")`);
  if (!TYPE_PATTERN.test(spec.type)) {
    throw invalid(`${where}.type "${truncate(spec.type)}" must be 1-128 characters of letters, digits and _ . : / -`);
  }
  if (spec.payload.byteLength > limits.maxPayloadBytes) {
    throw new TaskflowError(
      Code.RESOURCE_EXHAUSTED,
      `${where}.payload is ${spec.payload.byteLength} bytes, over the limit of ${limits.maxPayloadBytes} (control.maxPayloadBytes)`,
      {
        reason: Reason.PAYLOAD_TOO_LARGE,
        metadata: { index: String(typeof index === "number" ? Math.max(index, 0) : 0), sizeBytes: String(spec.payload.byteLength), limitBytes: String(limits.maxPayloadBytes) },
      },
    );
  }
  if (!Number.isInteger(spec.priority) || spec.priority < INT32_MIN || spec.priority > INT32_MAX) {
    throw invalid(`${where}.priority must be a 32-bit integer`);
  }
  if (spec.maxAttempts > 100) throw invalid(`${where}.max_attempts must be at most 100, got ${spec.maxAttempts}`);
  if (spec.timeoutMs > MAX_TIMEOUT_MS) {
    throw invalid(`${where}.timeout_ms must be at most ${MAX_TIMEOUT_MS} (about 23 days), got ${spec.timeoutMs}`);
  }
  if (spec.idempotencyKey.length > 256) throw invalid(`${where}.idempotency_key must be at most 256 characters`);
  for (const [key, value] of Object.entries(spec.requiredLabels)) {
    if (!key) throw invalid(`${where}.required_labels has an empty key`);
    if (key.length > 128 || value.length > 256) throw invalid(`${where}.required_labels "${truncate(key)}" is too long`);
  }
  for (const [field, value] of [["concurrency_key", spec.concurrencyKey], ["rate_limit_key", spec.rateLimitKey]] as const) {
    if (value && !limitKeyOk(value)) {
      // Quoted as JSON: the key's own control characters must not reach messages and logs.
      throw invalid(`${where}.${field} ${JSON.stringify(truncate(value))} must be 1-${MAX_LIMIT_KEY_LENGTH} printable characters (no control characters), got ${value.length} characters`);
    }
  }
  const delayMs = spec.delayMs ?? 0;
  const runAt = spec.runAt ?? 0;
  if (delayMs && runAt) throw invalid(`${where}.delay_ms and ${where}.run_at_ms are exclusive: set one (delay_ms ${delayMs}, run_at_ms ${runAt})`);
  if (!Number.isSafeInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
    throw invalid(`${where}.delay_ms must be 0 … ${MAX_DELAY_MS} (365 days), got ${delayMs}`);
  }
  if (!Number.isSafeInteger(runAt) || runAt < 0) throw invalid(`${where}.run_at_ms must be epoch milliseconds (0 or more), got ${runAt}`);
  if (runAt > limits.now + MAX_DELAY_MS) {
    throw invalid(`${where}.run_at_ms ${new Date(runAt).toISOString()} is more than 365 days ahead of the control node's clock (${new Date(limits.now).toISOString()})`);
  }
  if (spec.metadata !== undefined) {
    const entries = Object.keys(spec.metadata).length;
    if (entries > MAX_METADATA_ENTRIES) throw invalid(`${where}.metadata has ${entries} entries; at most ${MAX_METADATA_ENTRIES}`);
    for (const [key, value] of Object.entries(spec.metadata)) {
      if (!key) throw invalid(`${where}.metadata has an empty key`);
      if (key.length > MAX_METADATA_KEY_CHARS) throw invalid(`${where}.metadata key "${truncate(key)}" is ${key.length} characters; at most ${MAX_METADATA_KEY_CHARS}`);
      if (typeof value !== "string") throw invalid(`${where}.metadata["${truncate(key)}"] must be a string`);
      if (value.length > MAX_METADATA_VALUE_CHARS) {
        throw invalid(`${where}.metadata["${truncate(key)}"] is ${value.length} characters; at most ${MAX_METADATA_VALUE_CHARS}`);
      }
    }
  }
  if (spec.deadline !== undefined) {
    const deadline = spec.deadline;
    if (!Number.isSafeInteger(deadline) || deadline < 0) throw invalid(`${where}.deadline_ms must be epoch milliseconds (0 or more), got ${deadline}`);
    if (deadline > limits.now + MAX_DELAY_MS) {
      throw invalid(`${where}.deadline_ms ${new Date(deadline).toISOString()} is more than 365 days ahead of the control node's clock (${new Date(limits.now).toISOString()})`);
    }
  }
}

function metadataOk(metadata: Readonly<Record<string, string>>): boolean {
  let entries = 0;
  for (const key in metadata) {
    const value = metadata[key];
    if (++entries > MAX_METADATA_ENTRIES || !key || key.length > MAX_METADATA_KEY_CHARS || typeof value !== "string" || value.length > MAX_METADATA_VALUE_CHARS) return false;
  }
  return true;
}

/** Epoch ms, no further ahead than a delayed task may be due: a deadline past that is a unit mistake (seconds, µs). */
function deadlineOk(deadline: number, now: number): boolean {
  return Number.isSafeInteger(deadline) && deadline >= 0 && deadline <= now + MAX_DELAY_MS;
}

function delayOk(spec: TaskSpec, now: number): boolean {
  const delayMs = spec.delayMs ?? 0;
  const runAt = spec.runAt ?? 0;
  if (delayMs && runAt) return false;
  return Number.isSafeInteger(delayMs) && delayMs >= 0 && delayMs <= MAX_DELAY_MS && Number.isSafeInteger(runAt) && runAt >= 0 && runAt <= now + MAX_DELAY_MS;
}

/** Control characters (C0, DEL, C1) would break why-waiting lines and logs; the length bounds the buckets' map keys. */
function limitKeyOk(key: string): boolean {
  if (key.length > MAX_LIMIT_KEY_LENGTH) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return false;
  }
  return true;
}

function limitKeysOk(spec: TaskSpec): boolean {
  return (!spec.concurrencyKey || limitKeyOk(spec.concurrencyKey)) && (!spec.rateLimitKey || limitKeyOk(spec.rateLimitKey));
}

function labelsOk(labels: Readonly<Record<string, string>>): boolean {
  for (const key in labels) {
    if (!key || key.length > 128 || labels[key]!.length > 256) return false;
  }
  return true;
}

export function requireId(value: string, field: string): string {
  if (!value) throw invalid(`${field} is required`);
  if (value.length > 200) throw invalid(`${field} is too long`);
  return value;
}

export function invalid(message: string): TaskflowError {
  return new TaskflowError(Code.INVALID_ARGUMENT, message, { reason: Reason.INVALID_REQUEST });
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
