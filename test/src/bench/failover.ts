/**
 * `npm run bench:failover -w @taskflow/e2e`: time from a worker host's death (kill -9 of its
 * node and worker processes, so nothing reconnects) to its task running elsewhere, with the
 * default liveness settings. Prints JSON.
 */
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { eventually, startNode } from "../harness.js";

const ROUNDS = Number(process.env["FAILOVER_ROUNDS"] ?? 3);
const samples: number[] = [];
const control = await startNode({ roles: ["control"], log: { level: "error" } });
try {
  for (let round = 0; round < ROUNDS; round++) {
    process.stderr.write(`[bench:failover] round ${round + 1}/${ROUNDS}: kill -9 a worker host while its task runs\n`);
    const worker = (id: string) =>
      startNode({ roles: ["worker"], worker: { processes: 1, slots: 1, prefetch: 0, idPrefix: `${id}${round}`, controlAddress: control.address }, log: { level: "error" } });
    const a = await worker("a");
    const client = new TaskflowClient({ address: control.address });
    try {
      const id = await client.submit("sleep", { ms: 60_000 });
      await eventually(async () => ((await client.get(id)).state === TaskState.RUNNING ? true : undefined), 10_000, "running on a");
      const b = await worker("b");
      const pids = [...a.workerPids(), a.process.pid!];
      const killedAt = Date.now();
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await eventually(async () => {
        const t = await client.get(id);
        return t.state === TaskState.RUNNING && t.workerId.startsWith(`b${round}`) ? true : undefined;
      }, 20_000, "running on b");
      samples.push(Date.now() - killedAt);
      await client.cancel(id);
      await b.stop();
    } finally {
      client.close();
    }
  }
} finally {
  await control.stop();
}
samples.sort((x, y) => x - y);
process.stdout.write(
  `${JSON.stringify({ what: "worker host death → its task running on another worker (default liveness: heartbeat 500 ms, timeout 2000 ms)", samplesMs: samples, medianMs: samples[Math.floor(samples.length / 2)] }, null, 2)}\n`,
);
