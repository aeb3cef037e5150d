/**
 * `taskflow simulate`: replay a trace through the real scheduler under one or more policies and
 * compare them (`@taskflow/simulator`, ADR 0023); `taskflow simulate generate`: a synthetic trace.
 */
import { createWriteStream, readFileSync, writeFileSync } from "node:fs";
import { InvalidArgumentError, Option, type Command } from "commander";
import { Code, TaskflowError } from "@taskflow/core/base";
import { BUILT_IN_POLICIES } from "../policies.js";

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} is a whole number ≥ 1.`);
    return n;
  };
}

function nonNegativeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n >= 0) || value.trim() === "") throw new InvalidArgumentError(`${flag} is a number ≥ 0.`);
    return n;
  };
}

function parseWorkers(value: string): { workers: number; slots: number } {
  const m = /^(\d+)x(\d+)$/.exec(value.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new InvalidArgumentError("--workers is <workers>x<slots>, such as 4x8.");
  return { workers: Number(m[1]), slots: Number(m[2]) };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parsePolicyOptions(value: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`--policy-options is <policy>=<JSON>, such as priority='{"agingRate":0.001}'.`);
  try {
    return { ...previous, [value.slice(0, eq)]: JSON.parse(value.slice(eq + 1)) as unknown };
  } catch {
    throw new InvalidArgumentError(`--policy-options for ${value.slice(0, eq)}: ${value.slice(eq + 1)} is not JSON.`);
  }
}

interface RunOptions {
  trace: string;
  policy: string[];
  policyOptions: Record<string, unknown>;
  workers: { workers: number; slots: number };
  prefetch: number;
  out?: string;
  json?: boolean;
}

async function run(opts: RunOptions): Promise<void> {
  // Loaded here: the engine brings the control plane and reflect-metadata, which other commands need not load.
  await import("reflect-metadata");
  const { loadPolicy } = await import("@taskflow/services");
  const { parseTrace, reportHtml, simulate, summarize, summaryTable } = await import("@taskflow/simulator");
  let text: string;
  try {
    text = readFileSync(opts.trace, "utf8");
  } catch (err) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `--trace: cannot read ${opts.trace}: ${(err as Error).message}`);
  }
  let trace: ReturnType<typeof parseTrace>;
  try {
    trace = parseTrace(text);
  } catch (err) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `--trace ${opts.trace}: ${(err as Error).message}`);
  }
  if (trace.tasks.length === 0) throw new TaskflowError(Code.INVALID_ARGUMENT, `--trace ${opts.trace} has no task to replay (no submit line with a run time)`);
  const names = [...new Set(opts.policy.length ? opts.policy : ["fifo"])];
  for (const name of Object.keys(opts.policyOptions)) {
    if (!names.includes(name)) throw new TaskflowError(Code.INVALID_ARGUMENT, `--policy-options names ${name}, which no --policy names`);
  }
  // Policies load as `scheduler.policy` does, with the current folder in the config file's place.
  const definitions = [];
  for (const name of names) definitions.push({ name, definition: await loadPolicy(name, opts.policyOptions[name] ?? {}, process.cwd(), BUILT_IN_POLICIES) });
  const cluster = { ...opts.workers, prefetch: opts.prefetch };
  const runs = [];
  for (const { name, definition } of definitions) {
    if (!opts.json) process.stderr.write(`replaying ${trace.tasks.length} tasks under ${name}…\n`);
    runs.push(await simulate(trace.tasks, { policy: definition, policyOptions: opts.policyOptions[name] ?? {}, cluster }));
  }
  const summaries = runs.map(summarize);
  if (opts.out) {
    const title = `Taskflow simulation: ${opts.trace}, ${trace.tasks.length} tasks, ${names.join(" vs ")}`;
    writeFileSync(opts.out, reportHtml(runs, summaries, title));
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ trace: opts.trace, tasks: trace.tasks.length, skipped: trace.skipped, cluster, runs: summaries }, null, 2)}\n`);
    return;
  }
  const notes = [
    trace.skipped ? `${trace.skipped} submitted task(s) of the trace have no run time (never finished) and were left out` : "",
    opts.out ? `report: ${opts.out}` : "",
  ].filter(Boolean);
  process.stdout.write(`${summaryTable(summaries)}\n${notes.length ? `${notes.join("\n")}\n` : ""}`);
}

interface GenerateCliOptions {
  tasks: number;
  tenants: number;
  tenantShares?: string;
  rate: number;
  types?: string;
  sigma: number;
  priorityShare: number;
  seed: number;
  out?: string;
}

async function generate(opts: GenerateCliOptions): Promise<void> {
  const { generateTrace, parseTypes, traceLine } = await import("@taskflow/simulator/trace");
  let events;
  try {
    events = generateTrace({
      tasks: opts.tasks,
      tenants: opts.tenants,
      rate: opts.rate,
      sigma: opts.sigma,
      priorityShare: opts.priorityShare,
      seed: opts.seed,
      ...(opts.tenantShares !== undefined && { tenantShares: opts.tenantShares.split(",").map(Number) }),
      ...(opts.types !== undefined && { types: parseTypes(opts.types) }),
    });
    // The options are checked on the first step; an error then is a usage error.
    const first = events.next();
    const out = opts.out ? createWriteStream(opts.out) : process.stdout;
    let chunk = first.done ? "" : traceLine(first.value);
    for (const event of events) {
      chunk += traceLine(event);
      if (chunk.length > 1 << 16) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
        chunk = "";
      }
    }
    await new Promise<void>((resolve, reject) => {
      out.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
    if (opts.out) await new Promise((r) => (out as ReturnType<typeof createWriteStream>).end(r));
  } catch (err) {
    if (err instanceof RangeError) throw new TaskflowError(Code.INVALID_ARGUMENT, `simulate generate: ${err.message}`);
    throw err;
  }
}

/**
 * Adds the `simulate` command to `program` (its subcommands inherit its error handling);
 * `onStart` runs first (the CLI's errors are then printed as a tool's, not a client's).
 */
export function addSimulateCommand(program: Command, onStart: () => void): void {
  const simulate = program
    .command("simulate")
    .description("replay a trace through the real scheduler on a virtual clock and compare policies; `run` is the default command")
    .addHelpText(
      "after",
      `
Examples:
  $ taskflow simulate generate --tasks 100000 --tenants 3 --rate 500 --seed 1 > trace.jsonl
  $ taskflow simulate --trace trace.jsonl --policy fifo --policy priority --workers 4x8 --out report.html
  $ taskflow simulate run --help        # every replay option
  $ taskflow simulate generate --help   # every generator option

See docs/guides/writing-a-policy.md ("Compare policies with the simulator") and docs/adr/0023-policy-simulator.md.`,
    );
  simulate
    .command("run", { isDefault: true })
    .description("replay a trace (JSON Lines: a control node's control.traceFile, or `simulate generate`) under each --policy")
    .requiredOption("-t, --trace <file>", "the trace to replay")
    .addOption(
      new Option("-p, --policy <name>", "a policy as scheduler.policy names it: fifo, priority, least-loaded, a package name or ./file (repeatable)")
        .argParser(collect)
        .default([], "fifo"),
    )
    .addOption(
      new Option("--policy-options <policy=json>", "scheduler.policyOptions of one --policy, such as priority='{\"agingRate\":0.001}' (repeatable)")
        .argParser(parsePolicyOptions)
        .default({}, "none"),
    )
    .addOption(new Option("-w, --workers <NxS>", "simulated workers and slots per worker").argParser(parseWorkers).default({ workers: 4, slots: 8 }, "4x8"))
    .addOption(
      new Option("--prefetch <n>", "tasks a worker takes beyond its free slots, queued locally and out of the policy's hands (the SDK's WorkerOptions.prefetch)")
        .argParser(nonNegativeNumber("--prefetch"))
        .default(0),
    )
    .option("-o, --out <file.html>", "also write an HTML report with charts: wait-time distributions per policy and tenant, utilisation over time")
    .option("--json", "print the figures as JSON")
    .addHelpText(
      "after",
      `
Prints per policy, overall and per tenant: tasks, wait p50/p99/max (arrival to start on a
slot), makespan (first arrival to last finish) and utilisation (busy slot time over all slots
for the makespan; a tenant's row is its share), then each replay's virtual time against its
wall and CPU time. Everything runs in this process: no network, no worker processes. Policies
are loaded as scheduler.policy is; package names resolve from the current folder.

Examples:
  $ taskflow simulate generate --tasks 100000 --tenants 3 --rate 500 --seed 1 > trace.jsonl
  $ taskflow simulate --trace trace.jsonl --policy fifo --policy priority --workers 4x8 --out report.html`,
    )
    .action(async (opts: RunOptions) => {
      onStart();
      if (!Number.isInteger(opts.prefetch)) throw new TaskflowError(Code.INVALID_ARGUMENT, "--prefetch is a whole number ≥ 0");
      await run(opts);
    });
  simulate
    .command("generate")
    .description("print a synthetic trace: Poisson arrivals, tenants with their own mix of task types, log-normal run times; the same seed gives the same trace")
    .option("-n, --tasks <n>", "tasks in the trace", positiveInt("--tasks"), 10_000)
    .option("--tenants <n>", "tenants, named a, b, c, … (at most 26)", positiveInt("--tenants"), 3)
    .option("--tenant-shares <list>", "each tenant's share of the arrivals, comma-separated, such as 6,3,1 (default 1, 1/2, 1/3, …)")
    .option("-r, --rate <tasks/s>", "mean arrivals per second, all tenants together", nonNegativeNumber("--rate"), 500)
    .option("--types <list>", "task types and mean run times, such as resize=40ms,encode=2s; tenant k favours type k (default short=5ms,medium=40ms,long=120ms)")
    .option("--sigma <s>", "spread of run times around each type's mean (log-normal sigma; 0 = all equal)", nonNegativeNumber("--sigma"), 0.5)
    .option("--priority-share <p>", "share of tasks with priority 10 (the rest 0)", nonNegativeNumber("--priority-share"), 0.1)
    .option("--seed <n>", "random seed", positiveInt("--seed"), 1)
    .option("-o, --out <file>", "write to this file instead of standard output")
    .action(async (opts: GenerateCliOptions) => {
      onStart();
      await generate(opts);
    });
}
