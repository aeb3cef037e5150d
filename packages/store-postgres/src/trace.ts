/**
 * Where a write's time goes (ADR 0017, "Latency"). Off unless the environment variable
 * `TASKFLOW_PG_TRACE` names a file; then the store records every group commit's phases (first
 * write queued → sent → connection taken → committed) and its round trips, and the event loop's
 * delay, and writes a JSON summary to that file when it closes. A debugging switch, not an
 * option: it costs a few clock reads and a small record per group.
 */
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay, performance, type IntervalHistogram } from "node:perf_hooks";

/** The summary file, or "" when tracing is off. */
export const TRACE_FILE = process.env["TASKFLOW_PG_TRACE"] ?? "";

/** One group's life, in `performance.now()` milliseconds. */
export interface GroupTiming {
  queuedAt: number;
  sentAt: number;
  connectedAt: number;
  doneAt: number;
  calls: number;
  rows: number;
  roundTrips: number;
}

function percentiles(values: number[]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: round(sorted.at(-1) ?? 0) };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The recorder of one open store. */
export class CommitTrace {
  private readonly groups: GroupTiming[] = [];
  private readonly loopDelay: IntervalHistogram;

  constructor(private readonly file: string) {
    this.loopDelay = monitorEventLoopDelay({ resolution: 1 });
    this.loopDelay.enable();
  }

  now(): number {
    return performance.now();
  }

  group(timing: GroupTiming): void {
    this.groups.push(timing);
  }

  /** Writes the summary; the store calls it once, at close. */
  finish(): void {
    this.loopDelay.disable();
    const g = this.groups;
    const byRoundTrips: Record<string, number> = {};
    for (const r of g) byRoundTrips[r.roundTrips] = (byRoundTrips[r.roundTrips] ?? 0) + 1;
    const summary = {
      groups: g.length,
      calls: g.reduce((n, r) => n + r.calls, 0),
      rows: g.reduce((n, r) => n + r.rows, 0),
      callsPerGroup: percentiles(g.map((r) => r.calls)),
      groupsByRoundTrips: byRoundTrips,
      phasesMs: {
        queued: percentiles(g.map((r) => r.sentAt - r.queuedAt)),
        connect: percentiles(g.map((r) => r.connectedAt - r.sentAt)),
        statements: percentiles(g.map((r) => r.doneAt - r.connectedAt)),
        perRoundTrip: percentiles(g.map((r) => (r.doneAt - r.connectedAt) / Math.max(1, r.roundTrips))),
        total: percentiles(g.map((r) => r.doneAt - r.queuedAt)),
      },
      eventLoopDelayMs: {
        p50: round(this.loopDelay.percentile(50) / 1e6),
        p99: round(this.loopDelay.percentile(99) / 1e6),
        max: round(this.loopDelay.max / 1e6),
      },
      /** Every group as [sentAt, calls, rows, roundTrips, queuedMs, connectMs, statementsMs]. */
      log: g.map((r) => [round(r.sentAt), r.calls, r.rows, r.roundTrips, round(r.sentAt - r.queuedAt), round(r.connectedAt - r.sentAt), round(r.doneAt - r.connectedAt)]),
    };
    writeFileSync(this.file, `${JSON.stringify(summary, null, 2)}\n`);
  }
}
