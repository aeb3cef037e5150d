/**
 * `npm run bench:late-binding -w @taskflow/e2e`: what late binding costs in throughput. The same
 * node (2 worker processes × 16 slots, prefetch 16) runs the same tasks under `fifo`, whose
 * scheduler fills slots and prefetch, and under `fair-share`, which declares `lateBinding` (a
 * worker gets only as many tasks as it has free slots, so each start waits for the round trip
 * of the previous result). Two workloads: no-op tasks (the worst case: the round trip is all
 * there is) and `sleep` tasks of LATE_BINDING_SLEEP_MS (5 ms). Alternating rounds, the best of
 * each counts. One tenant, so fair share orders like FIFO: only the binding differs (and the
 * policies' own cost, well under a microsecond per call). Prints JSON.
 */
import type { TaskflowConfigInput } from "@taskflow/core";
import { TaskflowClient } from "@taskflow/client";
import { startNode } from "../harness.js";

const N = Number(process.env["LATE_BINDING_TASKS"] ?? 20_000);
const SLEEP_MS = Number(process.env["LATE_BINDING_SLEEP_MS"] ?? 5);
const ROUNDS = Number(process.env["LATE_BINDING_ROUNDS"] ?? 2);
const WARMUP = Number(process.env["LATE_BINDING_WARMUP_TASKS"] ?? 2000);

function progress(message: string): void {
  process.stderr.write(`[bench:late-binding] ${message}\n`);
}

const round = (x: number) => Math.round(x * 1000) / 1000;

async function run(policy: "fifo" | "fair-share", type: "noop" | "sleep"): Promise<number> {
  const config: TaskflowConfigInput = { roles: ["control", "worker"], worker: { processes: 2, slots: 16, prefetch: 16 }, scheduler: { policy }, log: { level: "warn" } };
  const node = await startNode(config);
  const client = new TaskflowClient({ address: node.address });
  const payload = type === "sleep" ? { ms: SLEEP_MS } : undefined;
  try {
    await Promise.all(Array.from({ length: WARMUP }, () => client.run(type, payload)));
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: N }, () => client.submit(type, payload)));
    await Promise.all(ids.map((id) => client.result(id)));
    return Math.round(N / ((performance.now() - started) / 1000));
  } finally {
    client.close();
    await node.stop();
  }
}

const out: Record<string, unknown> = { tasks: N, sleepMs: SLEEP_MS, rounds: ROUNDS, workers: "2 processes × 16 slots, prefetch 16" };
for (const type of ["noop", "sleep"] as const) {
  const prefetch: number[] = [];
  const late: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    progress(`${type}: round ${r + 1}/${ROUNDS}, fifo (prefetch)`);
    prefetch.push(await run("fifo", type));
    progress(`${type}: round ${r + 1}/${ROUNDS}, fair-share (late binding)`);
    late.push(await run("fair-share", type));
  }
  const best = (xs: number[]) => Math.max(...xs);
  out[type] = {
    prefetchTasksPerSec: prefetch,
    lateBindingTasksPerSec: late,
    ratio: round(best(late) / best(prefetch)),
  };
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
