/**
 * The delayed tasks' part of `npm run bench:primitives` (issue 16 item 1): PRIMITIVES_DELAYED
 * (100,000) tasks, all due at the same millisecond, submitted ahead of it to a control node with
 * no workers (so nothing leaves the queue once there); the node's metrics are scraped every 5 ms
 * from before the due time until the due-time heap is empty, and the section reports how long
 * after the due time every task had entered the queue (`taskflow_queue_depth{where="delayed"}`
 * at 0, `{where="heap"}` at the count). Target: within 1 s. The scrape interval bounds the
 * figure's resolution; the same loop's own lateness (a 5 ms timer's) is printed beside it.
 */
import { TaskflowClient } from "@taskflow/client";
import { startNode } from "../harness.js";
import { progress } from "./primitives-limits.js";

const TASKS = Number(process.env["PRIMITIVES_DELAYED"] ?? 100_000);
const BATCH = 5_000;

async function depth(metricsUrl: string): Promise<{ heap: number; delayed: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const of = (where: string) => Number(new RegExp(`^taskflow_queue_depth\\{where="${where}"\\} (\\d+)`, "m").exec(text)?.[1] ?? NaN);
  return { heap: of("heap"), delayed: of("delayed") };
}

export async function delayed(): Promise<Record<string, unknown>> {
  const node = await startNode({ roles: ["control"], control: { taskHeapCapacity: Math.max(1 << 20, TASKS * 2) }, log: { level: "error" } });
  const client = new TaskflowClient({ address: node.address });
  try {
    // Far enough ahead to submit them all first (about 1 s per 50,000 on this machine), rounded to a whole second.
    const dueAt = Math.ceil((Date.now() + 4_000 + TASKS / 20) / 1000) * 1000;
    progress(`delayed: submitting ${TASKS} tasks due at ${new Date(dueAt).toISOString()}`);
    for (let i = 0; i < TASKS; i += BATCH) {
      await client.submitMany(Array.from({ length: Math.min(BATCH, TASKS - i) }, () => ({ type: "due", payload: null, runAt: dueAt })));
    }
    const submittedAhead = dueAt - Date.now();
    if (submittedAhead <= 0) throw new Error(`submitting took past the due time by ${-submittedAhead} ms; lower PRIMITIVES_DELAYED`);
    const before = await depth(node.metricsUrl!);
    let allInAt = 0;
    let worstTimerLateMs = 0;
    for (;;) {
      const asked = Date.now();
      await new Promise((r) => setTimeout(r, 5));
      worstTimerLateMs = Math.max(worstTimerLateMs, Date.now() - asked - 5);
      const now = Date.now();
      const d = await depth(node.metricsUrl!);
      if (d.delayed === 0 && d.heap >= TASKS) {
        allInAt = now;
        break;
      }
      if (now > dueAt + 30_000) throw new Error(`after 30 s, ${d.delayed} tasks still delayed`);
    }
    return {
      tasks: TASKS,
      submittedAheadMs: submittedAhead,
      delayedBeforeDue: before.delayed,
      allQueuedAfterDueMs: allInAt - dueAt,
      scrapeIntervalMs: 5,
      benchTimerWorstLateMs: worstTimerLateMs,
      targetMs: 1000,
    };
  } finally {
    await client.close();
    await node.stop();
  }
}
