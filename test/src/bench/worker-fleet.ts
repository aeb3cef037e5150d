/**
 * A child process holding many SDK workers (`TaskflowWorker`, a no-op handler for "noop"), as an
 * application with many workers in one process would. Driven over IPC by scale-workers.ts:
 * `{ add: n }` starts n more (at most `CONNECTS_IN_FLIGHT` hellos at once) and answers
 * `{ added, total, refused, lagMaxMs }` (this process's longest event-loop stall since the last
 * answer: a worker process stalled past liveness.heartbeatTimeoutMs is rightly declared dead);
 * `{ stop: true }` stops them all and exits.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { TaskflowWorker } from "@taskflow/client";

/** Hellos in flight at once per process: a fleet coming up, not one burst of thousands of streams. */
const CONNECTS_IN_FLIGHT = 200;

const [address, prefix, own] = process.argv.slice(2) as [string, string, string | undefined];
// "own": each worker gets a connection of its own (shareConnection: false), as before ADR 0031.
const shareConnection = own !== "own";
const workers: TaskflowWorker[] = [];
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

async function add(n: number): Promise<{ added: number; total: number; refused: number; lagMaxMs: number }> {
  let next = 0;
  let refused = 0;
  const first = workers.length;
  const one = async (): Promise<void> => {
    while (next < n) {
      const w = new TaskflowWorker({ address, workerId: `${prefix}-${first + next++}`, slots: 1, shareConnection, handlers: { noop: () => null } });
      workers.push(w);
      await w.start().catch(() => refused++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTS_IN_FLIGHT, n) }, one));
  const lagMaxMs = Math.round(lag.max / 1e6);
  lag.reset();
  return { added: n, total: workers.length, refused, lagMaxMs };
}

process.on("message", (msg: { add?: number; stop?: boolean }) => {
  if (msg.add !== undefined) {
    void add(msg.add).then((r) => process.send!(r));
  } else if (msg.stop) {
    void Promise.all(workers.map((w) => w.stop())).finally(() => process.exit(0));
  }
});
process.on("disconnect", () => process.exit(0));
process.send!({ ready: true });
