/** Figures of a replay: wait percentiles, makespan and utilisation, overall and per tenant, as a table or JSON. */
import type { SimRun } from "./engine.js";

export interface WaitFigures {
  /** Tasks that started. */
  tasks: number;
  /** Arrival to start on a worker's slot, ms. */
  waitP50Ms: number;
  waitP99Ms: number;
  waitMaxMs: number;
  waitMeanMs: number;
  /** First arrival to last finish, ms (of this tenant's tasks, for a tenant). */
  makespanMs: number;
  /** Busy slot time over all slots × the run's makespan (the whole cluster's, also for a tenant: its share). */
  utilisation: number;
}

export interface RunSummary extends WaitFigures {
  policy: string;
  workers: number;
  slots: number;
  prefetch: number;
  unfinished: number;
  /** Virtual time replayed, ms. */
  virtualMs: number;
  /** Wall-clock time it took, ms. */
  wallMs: number;
  /** CPU time it took, ms. */
  cpuMs: number;
  /** virtualMs / wallMs. */
  speedup: number;
  tenants: Record<string, WaitFigures>;
}

/** The value at quantile `q` (0–1) of sorted values, nearest rank; 0 for none. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

function figures(run: SimRun, include: (i: number) => boolean, totalSlotMs: number): WaitFigures {
  const waits: number[] = [];
  let first = Infinity;
  let last = -Infinity;
  let busy = 0;
  let sum = 0;
  for (let i = 0; i < run.arrived.length; i++) {
    if (!include(i)) continue;
    const arrived = run.arrived[i]!;
    if (arrived < first) first = arrived;
    const started = run.started[i]!;
    if (Number.isNaN(started)) continue;
    const wait = started - arrived;
    waits.push(wait);
    sum += wait;
    const finished = run.finished[i]!;
    if (!Number.isNaN(finished)) {
      busy += finished - started;
      if (finished > last) last = finished;
    }
  }
  const sorted = Float64Array.from(waits).sort();
  return {
    tasks: waits.length,
    waitP50Ms: quantile(sorted, 0.5),
    waitP99Ms: quantile(sorted, 0.99),
    waitMaxMs: sorted.length ? sorted[sorted.length - 1]! : 0,
    waitMeanMs: waits.length ? sum / waits.length : 0,
    makespanMs: last > first ? last - first : 0,
    utilisation: totalSlotMs > 0 ? busy / totalSlotMs : 0,
  };
}

export function summarize(run: SimRun): RunSummary {
  const { workers, slots, prefetch } = run.cluster;
  const totalSlotMs = workers * slots * run.virtualMs;
  const tenants: Record<string, WaitFigures> = {};
  run.tenants.forEach((name, t) => {
    tenants[name] = figures(run, (i) => run.tenantOf[i] === t, totalSlotMs);
  });
  return {
    policy: run.policy,
    workers,
    slots,
    prefetch,
    unfinished: run.unfinished,
    virtualMs: run.virtualMs,
    wallMs: run.wallMs,
    cpuMs: run.cpuMs,
    speedup: run.wallMs > 0 ? run.virtualMs / run.wallMs : 0,
    ...figures(run, () => true, totalSlotMs),
    tenants,
  };
}

/** A duration for people: 850 ms, 12.3 s, 4.2 min, 1.5 h. */
export function ms(value: number): string {
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 3_600_000) return `${(value / 60_000).toFixed(1)} min`;
  return `${(value / 3_600_000).toFixed(1)} h`;
}

function pct(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/**
 * Policies side by side: one row per policy and tenant ("all" first), then each replay's
 * virtual time against its wall time.
 */
export function summaryTable(summaries: readonly RunSummary[]): string {
  const rows: string[][] = [["policy", "tenant", "tasks", "wait p50", "wait p99", "wait max", "makespan", "utilisation"]];
  for (const s of summaries) {
    rows.push([s.policy, "all", String(s.tasks), ms(s.waitP50Ms), ms(s.waitP99Ms), ms(s.waitMaxMs), ms(s.makespanMs), pct(s.utilisation)]);
    for (const [tenant, f] of Object.entries(s.tenants).sort(([a], [b]) => a.localeCompare(b))) {
      rows.push(["", tenant, String(f.tasks), ms(f.waitP50Ms), ms(f.waitP99Ms), ms(f.waitMaxMs), ms(f.makespanMs), pct(f.utilisation)]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd());
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  const timing = summaries.map(
    (s) =>
      `${s.policy}: replayed ${s.tasks} tasks, ${ms(s.virtualMs)} of virtual time, in ${ms(s.wallMs)} wall time ` +
      `(${Math.round(s.speedup)}× real time; ${ms(s.cpuMs)} of CPU, ${Math.round(s.cpuMs > 0 ? s.virtualMs / s.cpuMs : 0)}× per CPU second)` +
      (s.unfinished ? `; ${s.unfinished} task(s) never finished` : ""),
  );
  return `${lines.join("\n")}\n\n${timing.join("\n")}`;
}
