/**
 * Synthetic traces: Poisson arrivals at a total rate, tenants with unequal shares and their own
 * mix of task types, log-normal run times around each type's mean. The same options and seed
 * give the same trace, byte for byte.
 */
import { prng } from "@taskflow/core";
import { TRACE_FORMAT, TRACE_VERSION, traceLine, type TraceHeader, type TraceSubmit } from "./trace.js";

/** A task type and its mean run time. */
export interface GeneratedType {
  name: string;
  meanMs: number;
}

export interface GenerateOptions {
  /** Tasks in the trace. @defaultValue 10000 */
  tasks?: number;
  /** Tenants, named a, b, c, … @defaultValue 3 */
  tenants?: number;
  /**
   * Each tenant's share of the arrivals, in tenant order (normalised). @defaultValue 1/1, 1/2,
   * 1/3, … (the first tenant submits the most)
   */
  tenantShares?: readonly number[];
  /** Mean arrivals per second across all tenants (Poisson). @defaultValue 500 */
  rate?: number;
  /**
   * Task types and mean run times. Tenant k prefers type k (mod the number of types): half its
   * tasks are of that type, the rest spread evenly. @defaultValue short=5ms, medium=40ms,
   * long=120ms (at 500 tasks/s about 28 busy slots: 4 workers × 8 slots run near 86% busy)
   */
  types?: readonly GeneratedType[];
  /** Spread of run times: the log-normal's sigma (0 = every task of a type runs its mean). @defaultValue 0.5 */
  sigma?: number;
  /** Share of tasks with priority 10 (the rest have 0). @defaultValue 0.1 */
  priorityShare?: number;
  /** @defaultValue 1 */
  seed?: number;
  /** Epoch ms of the first possible arrival. @defaultValue 1_700_000_000_000 */
  startAt?: number;
}

export const DEFAULT_TYPES: readonly GeneratedType[] = [
  { name: "short", meanMs: 5 },
  { name: "medium", meanMs: 40 },
  { name: "long", meanMs: 120 },
];

/** Picks an index by cumulative weights. */
function pick(cumulative: readonly number[], r: number): number {
  for (let i = 0; i < cumulative.length; i++) if (r < cumulative[i]!) return i;
  return cumulative.length - 1;
}

function cumulate(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  let acc = 0;
  return weights.map((w) => (acc += w / total));
}

/** Checks the options, applying defaults; throws a RangeError naming the option. */
function resolve(options: GenerateOptions): Required<GenerateOptions> {
  const o: Required<GenerateOptions> = {
    tasks: options.tasks ?? 10_000,
    tenants: options.tenants ?? 3,
    tenantShares: options.tenantShares ?? [],
    rate: options.rate ?? 500,
    types: options.types ?? DEFAULT_TYPES,
    sigma: options.sigma ?? 0.5,
    priorityShare: options.priorityShare ?? 0.1,
    seed: options.seed ?? 1,
    startAt: options.startAt ?? 1_700_000_000_000,
  };
  if (!Number.isInteger(o.tasks) || o.tasks < 1) throw new RangeError(`tasks must be a whole number ≥ 1, got ${o.tasks}`);
  if (!Number.isInteger(o.tenants) || o.tenants < 1 || o.tenants > 26) throw new RangeError(`tenants must be 1 … 26, got ${o.tenants}`);
  if (o.tenantShares.length && (o.tenantShares.length !== o.tenants || o.tenantShares.some((s) => !(s >= 0)) || !o.tenantShares.some((s) => s > 0))) {
    throw new RangeError(`tenant shares must be ${o.tenants} numbers ≥ 0 (one per tenant, not all 0), got ${o.tenantShares.join(",")}`);
  }
  if (!(o.rate > 0)) throw new RangeError(`rate must be > 0 tasks/s, got ${o.rate}`);
  if (o.types.length === 0 || o.types.some((t) => !t.name || !(t.meanMs >= 0))) throw new RangeError("types need a name and a mean run time ≥ 0 each");
  if (!(o.sigma >= 0)) throw new RangeError(`sigma must be ≥ 0, got ${o.sigma}`);
  if (!(o.priorityShare >= 0 && o.priorityShare <= 1)) throw new RangeError(`priority share must be 0 … 1, got ${o.priorityShare}`);
  return o;
}

/** The trace's events in order: a header, then one submit per task with its run time. */
export function* generateTrace(options: GenerateOptions = {}): Generator<TraceHeader | TraceSubmit> {
  const o = resolve(options);
  const random = prng(o.seed);
  const names = Array.from({ length: o.tenants }, (_, k) => String.fromCharCode(97 + k));
  const shares = cumulate(o.tenantShares.length ? o.tenantShares : names.map((_, k) => 1 / (k + 1)));
  const mixes = names.map((_, k) => cumulate(o.types.map((_, j) => (j === k % o.types.length ? 0.5 : 0) + 0.5 / o.types.length)));
  // A log-normal with mean `meanMs`: mu = ln(mean) − sigma²/2.
  const shift = (o.sigma * o.sigma) / 2;
  yield {
    e: "header",
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    source: "generator",
    startedAt: o.startAt,
    generator: { tasks: o.tasks, tenants: o.tenants, tenantShares: o.tenantShares, rate: o.rate, types: o.types, sigma: o.sigma, priorityShare: o.priorityShare, seed: o.seed },
  };
  let t = o.startAt;
  for (let i = 0; i < o.tasks; i++) {
    // Exponential gaps between arrivals; 1 − random() is in (0, 1].
    t += (-Math.log(1 - random()) / o.rate) * 1000;
    const tenant = pick(shares, random());
    const type = o.types[pick(mixes[tenant]!, random())]!;
    const gauss = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const durationMs = type.meanMs === 0 ? 0 : Math.max(1, Math.round(Math.exp(Math.log(type.meanMs) - shift + o.sigma * gauss)));
    const priority = random() < o.priorityShare ? 10 : 0;
    yield {
      e: "submit",
      at: Math.round(t),
      id: `g${i + 1}`,
      type: type.name,
      tenant: names[tenant]!,
      priority,
      expectedDurationMs: type.meanMs,
      durationMs,
    };
  }
}

/** The trace as JSON Lines text. */
export function generateTraceText(options: GenerateOptions = {}): string {
  let out = "";
  for (const event of generateTrace(options)) out += traceLine(event);
  return out;
}

/**
 * Parses `--types`: `name=mean` pairs separated by commas, the mean with a unit (ms, s, m), such
 * as `resize=40ms,encode=2s`. Throws a RangeError saying the expected form.
 */
export function parseTypes(text: string): GeneratedType[] {
  return text.split(",").map((part) => {
    const m = /^\s*([A-Za-z0-9_.:/-]{1,128})=(\d+(?:\.\d+)?)(ms|s|m)\s*$/.exec(part);
    if (!m) throw new RangeError(`--types: "${part}" is not name=mean such as resize=40ms or encode=2s`);
    const unit = { ms: 1, s: 1000, m: 60_000 }[m[3] as "ms" | "s" | "m"];
    return { name: m[1]!, meanMs: Number(m[2]) * unit };
  });
}
