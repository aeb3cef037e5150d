/**
 * The replay as one self-contained HTML file: the figures table and inline SVG charts (no
 * script, no CDN, nothing fetched): per tenant, the share of tasks that waited at most x
 * (one line per policy, log time axis), and the cluster's utilisation over time per policy.
 */
import type { SimRun } from "./engine.js";
import { ms, type RunSummary, type WaitFigures } from "./report.js";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const W = 520;
const H = 260;
const M = { left: 48, right: 12, top: 24, bottom: 36 };

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Points of the wait CDF of the tasks `include` picks, at most ~200 of them. */
function cdf(run: SimRun, include: (i: number) => boolean): [number, number][] {
  const waits: number[] = [];
  for (let i = 0; i < run.arrived.length; i++) {
    if (include(i) && !Number.isNaN(run.started[i]!)) waits.push(run.started[i]! - run.arrived[i]!);
  }
  const sorted = Float64Array.from(waits).sort();
  const points: [number, number][] = [];
  const step = Math.max(1, Math.floor(sorted.length / 200));
  for (let k = 0; k < sorted.length; k += step) points.push([sorted[k]!, (k + 1) / sorted.length]);
  if (sorted.length) points.push([sorted[sorted.length - 1]!, 1]);
  return points;
}

/** Busy slots over all slots in `bins` equal slices of [from, to]. */
function utilisation(run: SimRun, from: number, to: number, bins: number): number[] {
  const busy = new Float64Array(bins);
  const width = (to - from) / bins;
  if (!(width > 0)) return Array.from(busy);
  for (let i = 0; i < run.started.length; i++) {
    const s = run.started[i]!;
    const f = run.finished[i]!;
    if (Number.isNaN(s) || Number.isNaN(f)) continue;
    const b0 = Math.max(0, Math.floor((s - from) / width));
    const b1 = Math.min(bins - 1, Math.floor((f - from) / width));
    for (let b = b0; b <= b1; b++) {
      const lo = from + b * width;
      busy[b]! += Math.max(0, Math.min(f, lo + width) - Math.max(s, lo));
    }
  }
  const slots = run.cluster.workers * run.cluster.slots;
  return Array.from(busy, (v) => v / (slots * width));
}

function polyline(points: [number, number][], colour: string): string {
  const d = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${d}"/>`;
}

function frame(title: string, xLabel: string, yLabel: string, xTicks: [number, string][], yTicks: [number, string][], body: string): string {
  const x0 = M.left;
  const y0 = H - M.bottom;
  const grid = [
    ...yTicks.map(([y, label]) => `<line x1="${x0}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${x0 - 4}" y="${y + 4}" text-anchor="end">${esc(label)}</text>`),
    ...xTicks.map(([x, label]) => `<line x1="${x}" x2="${x}" y1="${M.top}" y2="${y0}" stroke="#eee"/><text x="${x}" y="${y0 + 14}" text-anchor="middle">${esc(label)}</text>`),
  ].join("");
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">` +
    `<text x="${W / 2}" y="14" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>${grid}` +
    `<line x1="${x0}" x2="${W - M.right}" y1="${y0}" y2="${y0}" stroke="#333"/><line x1="${x0}" x2="${x0}" y1="${M.top}" y2="${y0}" stroke="#333"/>` +
    `<text x="${(x0 + W - M.right) / 2}" y="${H - 4}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text transform="translate(12 ${(M.top + y0) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>${body}</svg>`
  );
}

function legend(names: readonly string[]): string {
  return names.map((n, k) => `<span class="key"><i style="background:${COLOURS[k % COLOURS.length]}"></i>${esc(n)}</span>`).join(" ");
}

/** One CDF chart: the tasks of `tenant` (all when undefined), a line per run. */
function waitChart(runs: readonly SimRun[], tenant: string | undefined, maxWait: number): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  // log10(1 + wait): zero waits stay on the chart.
  const top = Math.log10(1 + Math.max(1, maxWait));
  const sx = (wait: number) => M.left + (Math.log10(1 + wait) / top) * plotW;
  const sy = (share: number) => M.top + (1 - share) * plotH;
  const lines = runs.map((run, k) => {
    const t = tenant === undefined ? -1 : run.tenants.indexOf(tenant);
    const points = cdf(run, (i) => t < 0 || run.tenantOf[i] === t).map(([w, s]) => [sx(w), sy(s)] as [number, number]);
    return points.length ? polyline([[M.left, sy(0)], ...points], COLOURS[k % COLOURS.length]!) : "";
  });
  const xTicks: [number, string][] = [];
  for (let v = 1; v <= maxWait * 1.0001; v *= 10) xTicks.push([sx(v), ms(v)]);
  const yTicks: [number, string][] = [0, 0.25, 0.5, 0.75, 1].map((s) => [sy(s), `${s * 100}%`]);
  return frame(tenant === undefined ? "All tenants: tasks started within x" : `Tenant ${tenant}: tasks started within x`, "wait (arrival → start), log scale", "share of tasks", xTicks, yTicks, lines.join(""));
}

function utilisationChart(runs: readonly SimRun[]): string {
  const from = Math.min(...runs.map((r) => (r.arrived.length ? r.arrived[0]! : 0)));
  const span = Math.max(1, ...runs.map((r) => r.virtualMs));
  const bins = 120;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const sx = (b: number) => M.left + ((b + 0.5) / bins) * plotW;
  const sy = (u: number) => M.top + (1 - Math.min(1, u)) * plotH;
  const lines = runs.map((run, k) => polyline(utilisation(run, from, from + span, bins).map((u, b) => [sx(b), sy(u)]), COLOURS[k % COLOURS.length]!));
  const xTicks: [number, string][] = [0, 0.25, 0.5, 0.75, 1].map((f) => [M.left + f * plotW, ms(f * span)]);
  const yTicks: [number, string][] = [0, 0.25, 0.5, 0.75, 1].map((u) => [sy(u), `${u * 100}%`]);
  return frame("Cluster utilisation over time", "virtual time since the first arrival", "busy slots", xTicks, yTicks, lines.join(""));
}

function tableHtml(summaries: readonly RunSummary[]): string {
  const head = ["policy", "tenant", "tasks", "wait p50", "wait p99", "wait max", "makespan", "utilisation"];
  const rows: string[] = [];
  for (const s of summaries) {
    const row = (policy: string, tenant: string, f: WaitFigures) =>
      `<tr><td>${esc(policy)}</td><td>${esc(tenant)}</td><td>${f.tasks}</td><td>${ms(f.waitP50Ms)}</td><td>${ms(f.waitP99Ms)}</td><td>${ms(f.waitMaxMs)}</td><td>${ms(f.makespanMs)}</td><td>${(f.utilisation * 100).toFixed(1)}%</td></tr>`;
    rows.push(row(s.policy, "all", s));
    for (const [tenant, f] of Object.entries(s.tenants).sort(([a], [b]) => a.localeCompare(b))) rows.push(row("", tenant, f));
  }
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** The report page for runs of the same trace under different policies. */
export function reportHtml(runs: readonly SimRun[], summaries: readonly RunSummary[], title: string): string {
  const tenants = [...new Set(runs.flatMap((r) => r.tenants))].sort();
  let maxWait = 1;
  for (const run of runs) for (let i = 0; i < run.started.length; i++) if (run.started[i]! - run.arrived[i]! > maxWait) maxWait = run.started[i]! - run.arrived[i]!;
  const charts = [waitChart(runs, undefined, maxWait), ...(tenants.length > 1 ? tenants.map((t) => waitChart(runs, t, maxWait)) : []), utilisationChart(runs)];
  const s0 = summaries[0];
  const cluster = s0 ? `${s0.workers} workers × ${s0.slots} slots, prefetch ${s0.prefetch}` : "";
  const timing = summaries.map((s) => `<li>${esc(s.policy)}: ${ms(s.virtualMs)} of virtual time in ${ms(s.wallMs)} (${Math.round(s.speedup)}× real time; ${ms(s.cpuMs)} of CPU)</li>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:12px 0}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #ddd}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}
.key{margin-right:14px}.key i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
</style></head><body>
<h1>${esc(title)}</h1>
<p>${esc(cluster)}. Wait is a task's arrival to its start on a worker's slot; utilisation is busy slot time over all slots for the makespan.</p>
<p>${legend(summaries.map((s) => s.policy))}</p>
<div class="charts">${charts.join("\n")}</div>
${tableHtml(summaries)}
<ul>${timing}</ul>
</body></html>
`;
}
