/**
 * `npm run bench:failover -w @taskflow/e2e`: prints JSON with
 * - `controlLeader`: standby control nodes (ADR 0028). A real Postgres, three control nodes with
 *   `ha` (lease `FAILOVER_LEASE_TTL_MS`, default 2000), a worker host given all three addresses,
 *   tasks running; `FAILOVER_ROUNDS` times (default 5): kill -9 the leader, submit a probe task
 *   from a fresh client, and time leader death → the probe's handler running under the new
 *   leader; then start the killed node again (it comes back as a standby).
 * - `workerHost`: a worker host's death (kill -9 of its node and worker processes, so nothing
 *   reconnects) → its task running on another worker, with the default liveness settings
 *   (`FAILOVER_WORKER_ROUNDS`, default 3; 0 skips it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { startTestPostgres } from "@taskflow/store-postgres/testing";
import { eventually, freePort, startNode, tempDir, type StartedNode } from "../harness.js";

const ROUNDS = Number(process.env["FAILOVER_ROUNDS"] ?? 5);
const WORKER_ROUNDS = Number(process.env["FAILOVER_WORKER_ROUNDS"] ?? 3);
const LEASE_TTL_MS = Number(process.env["FAILOVER_LEASE_TTL_MS"] ?? 2000);

const summary = (samples: number[]) => {
  const sorted = [...samples].sort((x, y) => x - y);
  return { samplesMs: samples, medianMs: sorted[Math.floor(sorted.length / 2)], maxMs: sorted[sorted.length - 1] };
};

const HANDLERS = `import { appendFileSync } from "node:fs";
export default {
  work: async (payload) => {
    await new Promise((r) => setTimeout(r, payload.ms));
    return payload.i;
  },
  probe: async (payload) => {
    appendFileSync(process.env.TASKFLOW_BENCH_PROBE_LOG, payload.round + " " + Date.now() + "\\n");
    return "ok";
  },
};
`;

async function leaderIndex(addresses: readonly string[]): Promise<number | undefined> {
  for (const [i, address] of addresses.entries()) {
    const c = new TaskflowClient({ address, submitRetryTimeoutMs: 0 });
    try {
      if ((await c.clusterState()).leadership?.role === "leader") return i;
    } catch {
      // Dead or starting.
    } finally {
      c.close();
    }
  }
  return undefined;
}

async function controlLeaderRounds(): Promise<number[]> {
  const samples: number[] = [];
  const pgServer = await startTestPostgres();
  const workersDir = tempDir();
  const probeLog = path.join(workersDir, "probe.log");
  writeFileSync(probeLog, "");
  process.env["TASKFLOW_BENCH_PROBE_LOG"] = probeLog;
  const ports = [await freePort(), await freePort(), await freePort()];
  const addresses = ports.map((p) => `127.0.0.1:${p}`);
  const dirs = ports.map(() => tempDir());
  const config = (port: number) => ({
    roles: ["control" as const],
    control: { port },
    store: { kind: "postgres" as const, url: pgServer.url, schema: "bench_failover" },
    ha: { enabled: true, leaseTtlMs: LEASE_TTL_MS },
    log: { level: "error" as const },
  });
  const nodes: StartedNode[] = await Promise.all(ports.map((port, i) => startNode(config(port), { dir: dirs[i], timeoutMs: 60_000 })));
  let workers: StartedNode | undefined;
  const load = new TaskflowClient({ address: addresses, submitRetryTimeoutMs: 60_000 });
  try {
    await eventually(() => leaderIndex(addresses), 30_000, "a leader");
    workers = await startNode(
      { roles: ["worker"], worker: { processes: 2, slots: 16, controlAddress: addresses.join(","), handlers: "handlers.mjs" }, log: { level: "error" } },
      { dir: workersDir, files: { "handlers.mjs": HANDLERS } },
    );
    for (let round = 0; round < ROUNDS; round++) {
      const leader = await eventually(() => leaderIndex(addresses), 30_000, "a leader");
      process.stderr.write(`[bench:failover] round ${round + 1}/${ROUNDS}: kill -9 the leader (${addresses[leader]}) with tasks running\n`);
      // Work in flight when the leader dies: some running, some queued.
      const work = Array.from({ length: 500 }, (_, i) => load.submit("work", { ms: 20, i }, { maxAttempts: 5 }));
      await Promise.all(work.slice(0, 100));
      await nodes[leader]!.kill9();
      const killedAt = Date.now();
      const prober = new TaskflowClient({ address: addresses, submitRetryTimeoutMs: 60_000 });
      try {
        await prober.submit("probe", { round });
        const startedAt = await eventually(() => {
          const line = readFileSync(probeLog, "utf8")
            .split("\n")
            .find((l) => l.startsWith(`${round} `));
          return line ? Number(line.split(" ")[1]) : undefined;
        }, 60_000, "the probe to run");
        samples.push(startedAt - killedAt);
        process.stderr.write(`[bench:failover]   leader death → probe running: ${startedAt - killedAt} ms\n`);
      } finally {
        prober.close();
      }
      await Promise.all(work);
      // Back to three nodes: the killed one returns as a standby.
      nodes[leader] = await startNode(config(ports[leader]!), { dir: dirs[leader], timeoutMs: 60_000 });
    }
  } finally {
    load.close();
    await workers?.stop();
    for (const n of nodes) await n.stop();
    await pgServer.stop();
  }
  return samples;
}

async function workerHostRounds(): Promise<number[]> {
  const samples: number[] = [];
  const control = await startNode({ roles: ["control"], log: { level: "error" } });
  try {
    for (let round = 0; round < WORKER_ROUNDS; round++) {
      process.stderr.write(`[bench:failover] worker round ${round + 1}/${WORKER_ROUNDS}: kill -9 a worker host while its task runs\n`);
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
  return samples;
}

const controlLeader = ROUNDS > 0 ? await controlLeaderRounds() : [];
const workerHost = WORKER_ROUNDS > 0 ? await workerHostRounds() : [];
process.stdout.write(
  `${JSON.stringify(
    {
      controlLeader: {
        what: "leader control node killed (-9) → a task submitted after it running under the new leader (3 control nodes with ha, one Postgres)",
        leaseTtlMs: LEASE_TTL_MS,
        ...summary(controlLeader),
      },
      workerHost: { what: "worker host death → its task running on another worker (default liveness: heartbeat 500 ms, timeout 2000 ms)", ...summary(workerHost) },
    },
    null,
    2,
  )}\n`,
);
