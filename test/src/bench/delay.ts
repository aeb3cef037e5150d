/**
 * `npm run bench:delay -w @taskflow/e2e`: lateness of delayed tasks. Submits DELAY_TASKS (1,000)
 * tasks at once, each with its own `runAt` spread over DELAY_SPREAD_MS (5 s) starting 2 s ahead,
 * on one node with workers, and prints JSON percentiles of how late each was assigned to a
 * worker (`assignedAt - runAt`: the due-time heap, its timer and a scheduler turn) and how late
 * it started (`startedAt - runAt`: plus the trip to the worker). Server-side times, one clock.
 * Beside them, this process's own event-loop delay over the same time: what the machine's load
 * alone costs a timer here, to tell the node's lateness from the machine's.
 */
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { TaskflowClient } from "@taskflow/client";
import { TaskState, type Task } from "@taskflow/proto";
import { eventually, startNode } from "../harness.js";

const TASKS = Number(process.env["DELAY_TASKS"] ?? 1000);
const SPREAD_MS = Number(process.env["DELAY_SPREAD_MS"] ?? 5000);
const LEAD_MS = 2000;

function ms(t: Task["createdAt"]): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

function percentiles(values: number[]): { p50: number; p90: number; p99: number; max: number; min: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { min: s[0]!, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]! };
}

const node = await startNode({ worker: { processes: 2, slots: 64 }, log: { level: "error" } });
const client = new TaskflowClient({ address: node.address });
try {
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const base = Date.now() + LEAD_MS;
  const requests = Array.from({ length: TASKS }, (_, i) => ({ type: "echo", payload: i, runAt: base + Math.floor((i * SPREAD_MS) / TASKS) }));
  process.stderr.write(`[bench:delay] ${TASKS} tasks due over ${SPREAD_MS} ms from ${new Date(base).toISOString()}\n`);
  const ids = await client.submitMany(requests);
  await Promise.all(ids.map((id) => client.outcome(id)));
  loopDelay.disable();
  const assigned: number[] = [];
  const started: number[] = [];
  let early = 0;
  await eventually(async () => {
    assigned.length = 0;
    started.length = 0;
    early = 0;
    for (let i = 0; i < ids.length; i++) {
      const t = await client.get(ids[i]!);
      if (t.state !== TaskState.SUCCEEDED) return undefined;
      const due = requests[i]!.runAt;
      if (ms(t.assignedAt) < due) early++;
      assigned.push(ms(t.assignedAt) - due);
      started.push(ms(t.startedAt) - due);
    }
    return true;
  }, 60_000, "every task to succeed");
  const load = loadavg()[0]!;
  const benchLoopDelayMs = { p50: Math.round(loopDelay.percentile(50) / 1e5) / 10, p99: Math.round(loopDelay.percentile(99) / 1e5) / 10, max: Math.round(loopDelay.max / 1e5) / 10 };
  process.stdout.write(
    `${JSON.stringify({ tasks: TASKS, spreadMs: SPREAD_MS, assignedLatenessMs: percentiles(assigned), startedLatenessMs: percentiles(started), assignedEarly: early, benchLoopDelayMs, loadAverage1m: Math.round(load * 100) / 100 }, null, 2)}\n`,
  );
} finally {
  client.close();
  await node.stop();
}
