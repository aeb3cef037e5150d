/**
 * Where a slow acknowledgement's time goes (ADR 0033). Off unless the environment variable
 * `TASKFLOW_SQLITE_TRACE` names a file; then the store records every group commit's phases, the
 * writer thread's commit time and WAL resets, and this thread's GC pauses and event-loop delay,
 * and writes a JSON summary to that file when it closes. A debugging switch, not an option: it
 * costs a clock read per write and a small record per group.
 */
import { writeFileSync } from "node:fs";
import type { CheckpointPass } from "./checkpointer.js";
import { PerformanceObserver, monitorEventLoopDelay, performance, type IntervalHistogram } from "node:perf_hooks";

/** The summary file, or "" when tracing is off. */
export const TRACE_FILE = process.env["TASKFLOW_SQLITE_TRACE"] ?? "";

/** Milliseconds on a clock every thread of the process shares (performance.now() is per thread). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** What the writer thread measured of one commit. */
export interface ThreadTiming {
  /** When the thread took the group off its queue ({@link wallNow}). */
  receivedAt: number;
  /** The transaction, COMMIT and any automatic checkpoint it ran. */
  commitMs: number;
  /** Whether this commit started the WAL over (a checkpoint had copied all of it back). */
  walReset: boolean;
}

interface GroupRecord {
  at: number;
  rows: number;
  queuedMs: number;
  handOverMs: number;
  commitMs: number;
  returnMs: number;
  totalMs: number;
  walReset: boolean;
}

const SLOW_GROUP_MS = 2;

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
  private readonly groups: GroupRecord[] = [];
  private readonly gcPauses: { at: number; ms: number; kind: number }[] = [];
  private readonly passes: CheckpointPass[] = [];
  private readonly gcObserver: PerformanceObserver;
  private readonly loopDelay: IntervalHistogram;

  constructor(private readonly file: string) {
    this.gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = (entry as { detail?: { kind?: number } }).detail?.kind ?? 0;
        this.gcPauses.push({ at: performance.timeOrigin + entry.startTime, ms: entry.duration, kind });
      }
    });
    this.gcObserver.observe({ entryTypes: ["gc"] });
    this.loopDelay = monitorEventLoopDelay({ resolution: 1 });
    this.loopDelay.enable();
  }

  /** One group's life: first write queued → sent → taken by the thread → committed → settled here. */
  group(queuedAt: number, sentAt: number, rows: number, thread: ThreadTiming | undefined): void {
    const doneAt = wallNow();
    const receivedAt = thread?.receivedAt ?? sentAt;
    const commitMs = thread?.commitMs ?? 0;
    this.groups.push({
      at: sentAt,
      rows,
      queuedMs: sentAt - queuedAt,
      handOverMs: receivedAt - sentAt,
      commitMs,
      returnMs: doneAt - receivedAt - commitMs,
      totalMs: doneAt - queuedAt,
      walReset: thread?.walReset ?? false,
    });
  }

  /** A checkpoint thread pass that found frames in the WAL. */
  checkpoint(pass: CheckpointPass): void {
    this.passes.push(pass);
  }

  /** Writes the summary; the store calls it once, at close. */
  finish(): void {
    this.gcObserver.disconnect();
    this.loopDelay.disable();
    const g = this.groups;
    const slow = g.filter((r) => r.totalMs > SLOW_GROUP_MS);
    const dominant = (r: GroupRecord) => (["queuedMs", "handOverMs", "commitMs", "returnMs"] as const).reduce((a, b) => (r[b] > r[a] ? b : a));
    const slowBy: Record<string, number> = {};
    for (const r of slow) slowBy[dominant(r)] = (slowBy[dominant(r)] ?? 0) + 1;
    const resets = g.filter((r) => r.walReset);
    // A reset follows the commit whose checkpoint emptied the WAL: that commit paid for it.
    const checkpointCommits = g.filter((_, i) => g[i + 1]?.walReset).map((r) => r.commitMs);
    const summary = {
      groups: g.length,
      rows: g.reduce((n, r) => n + r.rows, 0),
      phasesMs: {
        queued: percentiles(g.map((r) => r.queuedMs)),
        handOver: percentiles(g.map((r) => r.handOverMs)),
        commit: percentiles(g.map((r) => r.commitMs)),
        return: percentiles(g.map((r) => r.returnMs)),
        total: percentiles(g.map((r) => r.totalMs)),
      },
      walResets: resets.length,
      checkpointThread: { passes: this.passes.length, ms: percentiles(this.passes.map((p) => p.ms)), walFrames: percentiles(this.passes.map((p) => p.frames)) },
      commitBeforeWalResetMs: percentiles(checkpointCommits),
      slowGroups: { overMs: SLOW_GROUP_MS, count: slow.length, byDominantPhase: slowBy },
      gc: {
        pauses: this.gcPauses.length,
        totalMs: round(this.gcPauses.reduce((n, p) => n + p.ms, 0)),
        overOneMs: percentiles(this.gcPauses.filter((p) => p.ms > 1).map((p) => p.ms)),
      },
      eventLoopDelayMs: {
        p50: round(this.loopDelay.percentile(50) / 1e6),
        p99: round(this.loopDelay.percentile(99) / 1e6),
        max: round(this.loopDelay.max / 1e6),
      },
      slowest: [...g].sort((a, b) => b.totalMs - a.totalMs).slice(0, 30).map((r) => ({ ...r, at: round(r.at) })),
      gcOverOneMs: this.gcPauses.filter((p) => p.ms > 1).map((p) => ({ at: round(p.at), ms: round(p.ms), kind: p.kind })),
      /** Every group as [at, rows, queuedMs, handOverMs, commitMs, returnMs, walReset 0/1], to line up with a client's samples. */
      log: g.map((r) => [round(r.at), r.rows, round(r.queuedMs), round(r.handOverMs), round(r.commitMs), round(r.returnMs), r.walReset ? 1 : 0]),
    };
    writeFileSync(this.file, `${JSON.stringify(summary, null, 2)}\n`);
  }
}
