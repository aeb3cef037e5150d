/** A small SVG line chart: no library, a few series over time. */
export interface Series {
  name: string;
  color: string;
  values: number[];
}

export function LineChart({ title, times, series, height = 140 }: { title: string; times: number[]; series: Series[]; height?: number }) {
  const width = 560;
  const pad = { left: 44, right: 8, top: 8, bottom: 20 };
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const n = times.length;
  const x = (i: number) => pad.left + (n <= 1 ? 0 : (i / (n - 1)) * (width - pad.left - pad.right));
  const y = (v: number) => pad.top + (1 - v / max) * (height - pad.top - pad.bottom);
  const span = n > 1 ? Math.round((times[n - 1]! - times[0]!) / 1000) : 0;
  const latest = (s: Series) => (s.values.length ? s.values[s.values.length - 1]! : 0);
  return (
    <figure class="chart" data-testid={`chart-${title.toLowerCase().replace(/\W+/g, "-")}`}>
      <figcaption>
        <strong>{title}</strong>
        {series.map((s) => (
          <span class="legend" key={s.name}>
            <i style={{ background: s.color }} /> {s.name} <b>{formatValue(latest(s))}</b>
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={title}>
        <line x1={pad.left} x2={width - pad.right} y1={y(0)} y2={y(0)} class="axis" />
        <line x1={pad.left} x2={width - pad.right} y1={y(max)} y2={y(max)} class="grid" />
        <text x={pad.left - 4} y={y(max) + 4} class="tick" text-anchor="end">
          {formatValue(max)}
        </text>
        <text x={pad.left - 4} y={y(0)} class="tick" text-anchor="end">
          0
        </text>
        <text x={pad.left} y={height - 4} class="tick">
          {span ? `last ${span >= 120 ? `${Math.round(span / 60)} min` : `${span} s`}` : "collecting…"}
        </text>
        {series.map((s) =>
          n > 1 ? <polyline key={s.name} fill="none" stroke={s.color} stroke-width="1.6" points={s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")} /> : null,
        )}
      </svg>
    </figure>
  );
}

function formatValue(v: number): string {
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return String(Math.round(v * 10) / 10);
}
