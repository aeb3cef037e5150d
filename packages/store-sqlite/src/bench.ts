/**
 * Raw throughput of SqliteTaskStore: `npm run bench -w @taskflow/store-sqlite` prints JSON.
 *
 * Each task is written the way the control node writes it: one insert (queued) and three
 * updates (assigned, running, succeeded). Two shapes of call are measured:
 * - `batch`: one call carries 1000 records (a PLM flushing a batch);
 * - `perTask`: one call per record, 1000 calls in the same tick (a PLM writing through on every
 *   event), which group commit turns into one transaction.
 * Then 300 lone inserts, each awaited, give the acknowledgement latency of a single write, and
 * 200 `list` calls (one state, 50 a page) the read speed.
 * Every shape runs with both writers (`thread`, `inline`) and both `synchronous` settings.
 * Options: `--tasks N` (default 30000), `--payload BYTES` (default 64).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { TaskRecord } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { SqliteTaskStore, type SqliteTaskStoreOptions } from "./index.js";

const { values } = parseArgs({
  options: { tasks: { type: "string", default: "30000" }, payload: { type: "string", default: "64" } },
});
const TASKS = Number(values.tasks);
const PAYLOAD = Number(values.payload);
const BATCH = 1000;

function record(seq: number): TaskRecord {
  return makeTaskRecord({
    id: `bench-${seq.toString(36)}-${Math.random().toString(36).slice(2, 10)}`,
    seq,
    clientId: `client-${seq % 8}`,
    type: `type-${seq % 4}`,
    payload: new Uint8Array(PAYLOAD).fill(seq & 0xff),
    priority: seq % 3,
    requiredLabels: { zone: "a" },
    maxAttempts: 3,
    timeoutMs: 30_000,
    idempotencyKey: seq % 2 === 0 ? `idem-${seq}` : "",
    expectedDurationMs: 10,
    createdAt: Date.now(),
  });
}

/** The three updates of a task's life after its insert. */
function lifecycle(t: TaskRecord): TaskRecord[] {
  const now = Date.now();
  const assigned: TaskRecord = { ...t, state: "assigned", attempt: 1, epoch: 1, workerId: "worker-1", assignedAt: now };
  const running: TaskRecord = { ...assigned, state: "running", startedAt: now, attempts: [{ attempt: 1, epoch: 1, workerId: "worker-1", startedAt: now, finishedAt: 0, error: "" }] };
  const done: TaskRecord = {
    ...running,
    state: "succeeded",
    finishedAt: now,
    result: new Uint8Array(PAYLOAD).fill(7),
    attempts: [{ attempt: 1, epoch: 1, workerId: "worker-1", startedAt: now, finishedAt: now, error: "" }],
  };
  return [assigned, running, done];
}

interface Phase {
  rowsPerSec: number;
  ms: number;
  /** CPU time (user + system, all threads) per row, in µs: steadier than wall time on a shared machine. */
  cpuUsPerRow: number;
  /** Time the main thread's event loop was busy per row, in µs: what the store takes from the control node's loop. */
  loopUsPerRow: number;
}

async function timed(rows: number, fn: () => Promise<void>): Promise<Phase> {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  await fn();
  const loop = performance.eventLoopUtilization(elu);
  const used = process.cpuUsage(cpu);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const perRow = (us: number) => Math.round((us / rows) * 10) / 10;
  return {
    rowsPerSec: Math.round(rows / (ms / 1000)),
    ms: Math.round(ms),
    cpuUsPerRow: perRow(used.user + used.system),
    loopUsPerRow: perRow(loop.active * 1000),
  };
}

async function run(shape: "batch" | "perTask", options: Omit<SqliteTaskStoreOptions, "path">) {
  const dir = mkdtempSync(join(tmpdir(), "taskflow-sqlite-bench-"));
  const store = new SqliteTaskStore({ path: join(dir, "tasks.db"), ...options });
  try {
    await store.open();
    const tasks = Array.from({ length: TASKS }, (_, i) => record(i + 1));
    const updates = [0, 1, 2].map((step) => tasks.map((t) => lifecycle(t)[step]!));
    const write = async (records: TaskRecord[], kind: "insert" | "update") => {
      for (let i = 0; i < records.length; i += BATCH) {
        const slice = records.slice(i, i + BATCH);
        if (shape === "batch") await store[kind](slice);
        else await Promise.all(slice.map((r) => store[kind]([r])));
      }
    };
    const insert = await timed(TASKS, () => write(tasks, "insert"));
    const update = await timed(TASKS * 3, async () => {
      for (const step of updates) await write(step, "update");
    });
    const totalMs = insert.ms + update.ms;
    const commits = store.stats().commits;
    // One write at a time, each awaited: the acknowledgement latency of a lone submit.
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = process.hrtime.bigint();
      await store.insert([record(TASKS + 1 + i)]);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    latencies.sort((a, b) => a - b);
    const quantile = (q: number) => Math.round(latencies[Math.floor(q * (latencies.length - 1))]! * 1000) / 1000;
    const list = await timed(200, async () => {
      for (let i = 0; i < 200; i++) await store.list({ states: ["succeeded"], pageSize: 50 });
    });
    return {
      shape,
      writer: options.writer ?? "thread",
      synchronous: options.synchronous ?? "normal",
      insert,
      update,
      writesPerSec: Math.round((TASKS * 4) / (totalMs / 1000)),
      tasksPerSec: Math.round(TASKS / (totalMs / 1000)),
      commits,
      loneWriteAckMs: { p50: quantile(0.5), p99: quantile(0.99) },
      listPagesPerSec: list.rowsPerSec,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const writer of ["thread", "inline"] as const) {
  for (const synchronous of ["normal", "full"] as const) {
    for (const shape of ["batch", "perTask"] as const) {
      process.stderr.write(`[bench] writer ${writer}, synchronous ${synchronous}, ${shape === "batch" ? "batched" : "one call per task"}\n`);
      results.push(await run(shape, { synchronous, writer }));
    }
  }
}
console.log(JSON.stringify({ tasks: TASKS, payloadBytes: PAYLOAD, batch: BATCH, node: process.version, results }, null, 2));
