import type { Metric, Registry } from "prom-client";

interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/**
 * A label-less Prometheus histogram for the per-task hot path. prom-client's Histogram costs
 * ~0.5-0.7 µs per observation (label hashing, closures, a linear bucket scan); this one is a
 * binary search and two additions, and builds the exposition only when scraped. It registers
 * with a prom-client Registry like any metric and prints the same `_bucket`/`_sum`/`_count`
 * series.
 */
export class FastHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly bounds: Float64Array;
  /** Per bucket (not cumulative); the last slot is +Inf. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.bounds = Float64Array.from([...buckets].sort((a, b) => a - b));
    this.counts = new Float64Array(this.bounds.length + 1);
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    if (!(value >= 0) || value === Infinity) return;
    const bounds = this.bounds;
    let lo = 0;
    let hi = bounds.length;
    // First bound >= value (Prometheus buckets are "less than or equal").
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bounds[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
    this.sum += value;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  /** What prom-client's Registry reads to print and merge a metric. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      values.push({ metricName: bucket, labels: { le: this.bounds[i]! }, value: cumulative });
    }
    values.push({ metricName: bucket, labels: { le: "+Inf" }, value: this.count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
