/**
 * When a schedule fires: its firing times (cron through croner, or a fixed interval), and which
 * of the times that came due run, by the schedule's missed-firings policy (ADR 0025). Pure
 * functions of epoch ms, so FakeClock tests cover every case without timers.
 */
import { Cron } from "croner";
import { MAX_SCHEDULE_INTERVAL_MS, MIN_SCHEDULE_INTERVAL_MS, type MissedPolicy, type ScheduleRecord } from "@taskflow/core";
import { invalid } from "./validation.js";

/** A schedule's firing times. Every time is a whole second (cron) or anchor + k·interval. */
export interface Timing {
  /** The first firing time strictly after `t`; Infinity when there is none (a cron that never fires again). */
  after(t: number): number;
  /** Up to `n` firing times in [lo, hi], the latest ones, oldest first. */
  latestIn(lo: number, hi: number, n: number): number[];
}

/**
 * The timing of a cron expression read in `timezone` ("" = UTC). Throws INVALID_ARGUMENT
 * naming `cron` or `timezone` when croner or the platform's time zone data refuse them.
 */
export function cronTiming(cron: string, timezone: string, field = ""): Timing {
  if (cron.length > 256) throw invalid(`${field}cron must be at most 256 characters, got ${cron.length}`);
  if (timezone) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    } catch {
      throw invalid(`${field}timezone "${timezone}" is not an IANA time zone such as "Europe/Paris" or "America/New_York"`);
    }
  }
  let job: Cron;
  try {
    // 5 fields, or 6 with seconds first; day-of-month and day-of-week combine with OR, as in Vixie cron.
    job = new Cron(cron, { paused: true, mode: "5-or-6-parts", ...(timezone && { timezone }) });
  } catch (err) {
    throw invalid(`${field}cron "${cron}" is not a cron expression: ${(err as Error).message.replace(/^CronPattern: /, "")}`);
  }
  return {
    after(t) {
      // Strictly after, whatever croner answers: on a spring-forward day it can give the hour
      // the clocks skipped to twice (03:00 for the missing 02:00, then 03:00 itself), and a
      // firing time repeated would fire twice, or loop.
      let from = t;
      for (let i = 0; i < 8; i++) {
        const next = job.nextRun(new Date(from))?.getTime();
        if (next === undefined) return Infinity;
        if (next > t) return next;
        from = Math.max(from, next) + 1000;
      }
      return Infinity;
    },
    latestIn(lo, hi, n) {
      if (n <= 0 || lo > hi) return [];
      // previousRuns counts back from strictly before its reference, which it truncates to the second.
      const reference = new Date(Math.floor(hi / 1000) * 1000 + 1000);
      const out: number[] = [];
      for (const d of job.previousRuns(n, reference)) {
        const t = d.getTime();
        // Newest first; a time given twice (see above) counts once.
        if (t >= lo && t <= hi && t !== out[out.length - 1]) out.push(t);
      }
      return out.reverse();
    },
  };
}

/** Firings at anchor + k·interval for k ≥ 1: the first one interval after the anchor (the create). */
export function intervalTiming(anchor: number, intervalMs: number): Timing {
  const kOf = (t: number) => Math.floor((t - anchor) / intervalMs);
  return {
    after(t) {
      return anchor + Math.max(1, kOf(t) + 1) * intervalMs;
    },
    latestIn(lo, hi, n) {
      if (n <= 0 || lo > hi) return [];
      const last = kOf(hi);
      const first = Math.max(1, Math.ceil((lo - anchor) / intervalMs), last - n + 1);
      const out: number[] = [];
      for (let k = first; k <= last; k++) out.push(anchor + k * intervalMs);
      return out;
    },
  };
}

/** The timing of a stored schedule (validated when it was created). */
export function timingOf(s: Pick<ScheduleRecord, "cron" | "timezone" | "intervalMs" | "createdAt">): Timing {
  return s.cron ? cronTiming(s.cron, s.timezone) : intervalTiming(s.createdAt, s.intervalMs);
}

/** Throws INVALID_ARGUMENT naming the field unless the schedule has exactly one valid timing. */
export function checkTiming(s: Pick<ScheduleRecord, "cron" | "timezone" | "intervalMs">, field = "schedule."): void {
  if (s.cron && s.intervalMs) throw invalid(`${field}cron and ${field}interval_ms are exclusive: set one`);
  if (!s.cron && !s.intervalMs) throw invalid(`${field}cron or ${field}interval_ms is required (a cron expression such as "*/5 * * * *", or an interval of at least ${MIN_SCHEDULE_INTERVAL_MS} ms)`);
  if (s.intervalMs) {
    if (s.timezone) throw invalid(`${field}timezone goes only with ${field}cron`);
    if (!Number.isSafeInteger(s.intervalMs) || s.intervalMs < MIN_SCHEDULE_INTERVAL_MS || s.intervalMs > MAX_SCHEDULE_INTERVAL_MS) {
      throw invalid(`${field}interval_ms must be ${MIN_SCHEDULE_INTERVAL_MS} (1 s) … ${MAX_SCHEDULE_INTERVAL_MS} (365 days), got ${s.intervalMs}`);
    }
    return;
  }
  const timing = cronTiming(s.cron, s.timezone, field);
  if (timing.after(Date.now()) === Infinity) throw invalid(`${field}cron "${s.cron}" never fires (no date matches it)`);
}

/** What one turn of a schedule submits, and where it goes on. */
export interface FiringPlan {
  /** Firing times to submit a task for, oldest first. */
  times: number[];
  /** The next firing time after this turn (> now); Infinity when the cron has none left. */
  next: number;
  /** Missed firing times the policy dropped. */
  dropped: number;
}

/** How many firings a plan runs for those missed: the policy's share of them. */
function keptOfMissed(policy: MissedPolicy, catchUpMax: number): number {
  return policy === "skip" ? 0 : policy === "run-once" ? 1 : catchUpMax;
}

/**
 * The firings due at `now` of a schedule whose next firing time is `cursor`. A firing time more
 * than `missedAfterMs` before now was missed (the node was down or stalled): the policy decides
 * which of those run (skip: none; run once: the latest; catch up: the latest `catchUpMax`).
 * Those within `missedAfterMs` are on time and all run.
 */
export function planFirings(timing: Timing, cursor: number, now: number, missedAfterMs: number, policy: MissedPolicy, catchUpMax: number): FiringPlan {
  if (cursor > now) return { times: [], next: cursor, dropped: 0 };
  // The last missed time: a firing more than missedAfterMs late.
  const missedEnd = now - missedAfterMs - 1;
  let missed: number[] = [];
  let dropped = 0;
  if (cursor <= missedEnd) {
    const keep = keptOfMissed(policy, catchUpMax);
    missed = timing.latestIn(cursor, missedEnd, keep);
    // Counted only as far as cheap: an interval by arithmetic, a cron up to the kept ones.
    dropped = countIn(timing, cursor, missedEnd, missed.length);
  }
  const onTime: number[] = [];
  for (let t = cursor > missedEnd ? cursor : timing.after(missedEnd); t <= now; t = timing.after(t)) onTime.push(t);
  return { times: [...missed, ...onTime], next: timing.after(now), dropped };
}

/** Firing times in [lo, hi] minus `kept`, counted up to 1,000 (past that it says 1,000). */
function countIn(timing: Timing, lo: number, hi: number, kept: number): number {
  let n = 0;
  for (let t = lo; t <= hi && n < 1000; t = timing.after(t)) n++;
  return Math.max(0, n - kept);
}
