/**
 * Recurring schedules (ADR 0025): the record the control node keeps for each, and the store
 * contract that keeps them durable. A firing submits one task from the template with the
 * idempotency key {@link firingKey}, so a firing repeated after a restart creates nothing new.
 */
import type { TaskSpec } from "./model.js";

/** What a schedule does with firing times that passed while the control node could not fire them. */
export const MISSED_POLICIES = ["skip", "run-once", "catch-up"] as const;
export type MissedPolicy = (typeof MISSED_POLICIES)[number];

/** `catchUpMax` when a create leaves it 0. */
export const DEFAULT_CATCH_UP_MAX = 10;
/** The largest `catchUpMax`. */
export const MAX_CATCH_UP = 1000;
/** The shortest interval (and, for cron, the finest resolution a schedule fires at). */
export const MIN_SCHEDULE_INTERVAL_MS = 1000;
/** The longest interval: 365 days. */
export const MAX_SCHEDULE_INTERVAL_MS = 365 * 24 * 60 * 60 * 1000;
/** A schedule ID: 1-64 letters, digits, `_ . -`, starting with a letter or digit. */
export const SCHEDULE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A schedule as the control node and the store keep it. Times are epoch ms; 0 = none. */
export interface ScheduleRecord {
  /** Chosen by the client, unique in its tenant ({@link SCHEDULE_ID_PATTERN}). */
  id: string;
  tenant: string;
  /** What each firing submits (never with an idempotency key or a delay: each firing sets its own). */
  template: TaskSpec;
  /** A cron expression, or "" for an interval schedule. */
  cron: string;
  /** The IANA zone `cron` is read in; "" = UTC. */
  timezone: string;
  /** A fixed interval in ms, or 0 for a cron schedule. */
  intervalMs: number;
  missed: MissedPolicy;
  /** With `catch-up`: the most missed firings run after an outage (the latest ones). */
  catchUpMax: number;
  paused: boolean;
  /** The next firing time; 0 while paused. */
  nextFireAt: number;
  /** The last firing time a task was submitted for. */
  lastFireAt: number;
  /** The task the last firing created or found. */
  lastTaskId: string;
  createdAt: number;
  /** Why the pending firing's submit was refused (it is retried); "" once accepted. */
  lastError: string;
}

/** The idempotency key of a schedule's firing: the same firing always finds the same task. */
export function firingKey(scheduleId: string, fireAt: number): string {
  return `schedule:${scheduleId}:${fireAt}`;
}

/** The client ID of a schedule's tasks: `ListTasks` by it finds them, `SubscribeResults` streams their results. */
export function scheduleClientId(scheduleId: string): string {
  return `schedule:${scheduleId}`;
}

/**
 * Where schedules are kept: the same database as the tasks (each store implements both
 * contracts), so a firing's task and the schedule's progress live and die together.
 *
 * Deliberately small: the control node holds every schedule in memory (they are few, at most
 * `schedules.maxSchedules`) and writes each change through; it reads them back only on start.
 */
export interface ScheduleStore {
  /** Every schedule, in no particular order. */
  loadSchedules(): Promise<ScheduleRecord[]>;
  /** Inserts or replaces the schedule (tenant, id); resolves once it is committed. */
  saveSchedule(schedule: ScheduleRecord): Promise<void>;
  /** Deletes it; resolves true when it existed. */
  deleteSchedule(tenant: string, id: string): Promise<boolean>;
}

/** True when `store` keeps schedules too. */
export function isScheduleStore(store: unknown): store is ScheduleStore {
  const s = store as Partial<ScheduleStore> | null;
  return typeof s?.loadSchedules === "function" && typeof s.saveSchedule === "function" && typeof s.deleteSchedule === "function";
}

/**
 * A schedule as one JSON text (the template's payload in base64), the form SQL stores keep it
 * in: schedules are read once at start, so one column beats one per field (and a later field
 * needs no migration).
 */
export function encodeSchedule(s: ScheduleRecord): string {
  return JSON.stringify({ ...s, template: { ...s.template, payload: Buffer.from(s.template.payload).toString("base64") } });
}

/** The inverse of {@link encodeSchedule}. */
export function decodeSchedule(text: string): ScheduleRecord {
  const parsed = JSON.parse(text) as ScheduleRecord & { template: TaskSpec & { payload: string } };
  const payload = Buffer.from(parsed.template.payload, "base64");
  return { ...parsed, template: { ...parsed.template, payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) } };
}
