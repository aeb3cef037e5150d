/**
 * The chaos scenarios of issue 10, shared by the CI chaos suite (small sizes, correctness
 * asserted) and `npm run bench:chaos` (10,000 tasks, figures printed as JSON):
 * - worker kills: kill -9 of random worker processes while tasks run;
 * - control kills: kill -9 of the control node (SQLite store) while tasks run, restarted at once;
 * - full disk: the store's file system fills while tasks run, then space comes back.
 * Each counts tasks lost (not succeeded), tasks whose handler finished more than once (from a
 * log the handler appends to) and results delivered to the client more than once; and a kill
 * storm times kill -9 of a worker process → each of its tasks running again.
 */
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { TaskflowClient } from "@taskflow/client";
import { TaskService, TaskState } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { eventually, freePort, startNode, tempDir, type StartedNode } from "../harness.js";

export interface ChaosFigures {
  scenario: string;
  tasks: number;
  faults: number;
  /** Tasks that did not succeed. */
  lost: number;
  /** Tasks whose handler ran to completion more than once. */
  finishedTwice: number;
  /** Tasks whose result reached the client more than once (0 = exactly once). */
  deliveredTwice: number;
  /** Tasks that ran more than one attempt. */
  reran: number;
  seconds: number;
}

/** A handlers module whose handler appends the task ID to a log once it has finished. */
const HANDLERS = `import { appendFileSync } from "node:fs";
const log = process.env.TASKFLOW_CHAOS_LOG;
export default {
  work: async (payload, ctx) => {
    await new Promise((r) => setTimeout(r, payload.ms ?? 10));
    appendFileSync(log, ctx.taskId + "\\n");
    return payload.i;
  },
};
`;

interface Setup {
  dir: string;
  log: string;
}

function setUp(): Setup {
  const dir = tempDir("taskflow-chaos-");
  writeFileSync(path.join(dir, "handlers.mjs"), HANDLERS);
  const log = path.join(dir, "finished.log");
  writeFileSync(log, "");
  process.env["TASKFLOW_CHAOS_LOG"] = log;
  return { dir, log };
}

function finishedTwice(log: string): number {
  const seen = new Map<string, number>();
  for (const id of readFileSync(log, "utf8").split("\n")) if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
  let twice = 0;
  for (const n of seen.values()) if (n > 1) twice++;
  return twice;
}

/** Counts results per task on a client's results stream, resubscribing when it breaks. */
function recordResults(address: () => string, clientId: string) {
  const counts = new Map<string, number>();
  let closed = false;
  let raw: { raw: { close(): void } } | undefined;
  const open = () => {
    if (closed) return;
    raw?.raw.close();
    const client = createClient(TaskService, address());
    raw = client;
    const stream = client.subscribeResults({ clientId });
    stream.on("data", (msg: { results: { taskId: string }[] }) => {
      for (const r of msg.results) counts.set(r.taskId, (counts.get(r.taskId) ?? 0) + 1);
    });
    // One reopen per broken stream: "error" and "end" can both fire.
    let reopened = false;
    const reopen = () => {
      if (reopened) return;
      reopened = true;
      setTimeout(open, 100);
    };
    stream.on("error", reopen);
    stream.on("end", reopen);
  };
  open();
  return {
    twice: () => [...counts.values()].filter((n) => n > 1).length,
    close() {
      closed = true;
      raw?.raw.close();
    },
  };
}

const log = (message: string) => process.stderr.write(`[chaos] ${message}\n`);

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function submitAll(client: TaskflowClient, tasks: number, ms: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < tasks; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, tasks - i) }, (_, j) => ({ type: "work", payload: { ms, i: i + j }, maxAttempts: 50 }));
    ids.push(...(await client.submitMany(batch)));
  }
  return ids;
}

async function outcomesOf(client: TaskflowClient, ids: string[]) {
  const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
  return { lost: outcomes.filter((o) => o.state !== "succeeded").length, reran: outcomes.filter((o) => o.attempt > 1).length };
}

/**
 * Submits `tasks` work tasks, injects up to `faults` faults while they run (`inject` returns
 * false when it found nothing to hit), waits for every outcome and tallies the figures.
 */
async function runWithFaults(
  scenario: string,
  setup: Setup & { started: number },
  client: TaskflowClient,
  recorder: { twice(): number },
  run: { tasks: number; ms: number; faults: number; minGapMs: number; settleMs: number },
  inject: (n: number) => Promise<boolean>,
): Promise<ChaosFigures> {
  const ids = await submitAll(client, run.tasks, run.ms);
  log(`${scenario}: ${run.tasks} tasks submitted`);
  const done = outcomesOf(client, ids);
  let finished = false;
  void done.then(() => (finished = true));
  let faults = 0;
  // Spread the faults over the first half of the run (32 slots in every scenario).
  const gap = Math.max(run.minGapMs, Math.floor((run.tasks * run.ms) / 32 / Math.max(1, run.faults) / 2));
  while (faults < run.faults && !finished) {
    await new Promise((r) => setTimeout(r, gap));
    if (!(await inject(faults + 1))) continue;
    faults++;
    log(`${scenario}: fault ${faults}/${run.faults}`);
  }
  const { lost, reran } = await done;
  await new Promise((r) => setTimeout(r, run.settleMs));
  return {
    scenario,
    tasks: run.tasks,
    faults,
    lost,
    finishedTwice: finishedTwice(setup.log),
    deliveredTwice: recorder.twice(),
    reran,
    seconds: (Date.now() - setup.started) / 1000,
  };
}

/** kill -9 of random worker processes, `kills` times, while `tasks` tasks of `ms` each run. */
export async function workerKills(tasks: number, kills: number, ms = 20): Promise<ChaosFigures> {
  const setup = { ...setUp(), started: Date.now() };
  const node = await startNode({ worker: { processes: 2, slots: 16, prefetch: 16, handlers: "handlers.mjs" } }, { dir: setup.dir });
  const client = new TaskflowClient({ address: node.address, clientId: "chaos-workers" });
  const recorder = recordResults(() => node.address, "chaos-workers");
  try {
    return await runWithFaults("worker-kills", setup, client, recorder, { tasks, ms, faults: kills, minGapMs: 150, settleMs: 300 }, async () => {
      const state = await client.clusterState();
      const victims = state.workers.filter((w) => w.pid && node.workerPids().includes(w.pid));
      const victim = victims[Math.floor(Math.random() * victims.length)];
      if (!victim) return false;
      try {
        process.kill(victim.pid, "SIGKILL");
      } catch {
        return false;
      }
      return true;
    });
  } finally {
    recorder.close();
    client.close();
    await node.stop();
    rmSync(setup.dir, { recursive: true, force: true });
  }
}

/** kill -9 of the control node (SQLite store), `kills` times, restarted at once, while tasks run. */
export async function controlKills(tasks: number, kills: number, ms = 5): Promise<ChaosFigures> {
  const setup = { ...setUp(), started: Date.now() };
  const port = await freePort();
  const controlConfig = { roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } };
  let control: StartedNode = await startNode(controlConfig, { dir: setup.dir });
  const workers = await startNode({
    roles: ["worker"],
    worker: { processes: 2, slots: 16, handlers: path.join(setup.dir, "handlers.mjs"), controlAddress: `127.0.0.1:${port}` },
  });
  const client = new TaskflowClient({ address: control.address, clientId: "chaos-control" });
  const recorder = recordResults(() => control.address, "chaos-control");
  try {
    return await runWithFaults("control-kills", setup, client, recorder, { tasks, ms, faults: kills, minGapMs: 300, settleMs: 500 }, async () => {
      await control.kill9();
      control = await startNode(controlConfig, { dir: setup.dir });
      return true;
    });
  } finally {
    recorder.close();
    client.close();
    await workers.stop();
    await control.stop();
    rmSync(setup.dir, { recursive: true, force: true });
  }
}

/** Writes to `file` until the file system refuses even 512 bytes more. */
export function fillUp(file: string): void {
  const fd = openSync(file, "w");
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** The store's file system (a tmpfs) fills `faults` times while tasks run, for `holdMs` each. */
export async function fullDisk(tasks: number, faults: number, ms = 20, holdMs = 1500): Promise<ChaosFigures> {
  const setup = { ...setUp(), started: Date.now() };
  const data = path.join(setup.dir, "data");
  mkdirSync(data);
  // Room for the tasks (a few hundred bytes each, twice over for the log) and little more.
  const size = Math.max(16, Math.ceil((tasks * 2048) / (1 << 20)) + 8);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}m`, "tmpfs", data]);
  const filler = path.join(data, "filler");
  const node = await startNode(
    { store: { kind: "sqlite", path: "data/tasks.db" }, worker: { processes: 2, slots: 16, handlers: "handlers.mjs" } },
    { dir: setup.dir },
  );
  const client = new TaskflowClient({ address: node.address, clientId: "chaos-disk" });
  const recorder = recordResults(() => node.address, "chaos-disk");
  try {
    return await runWithFaults("full-disk", setup, client, recorder, { tasks, ms, faults, minGapMs: 200, settleMs: 300 }, async () => {
      fillUp(filler);
      await new Promise((r) => setTimeout(r, holdMs));
      unlinkSync(filler);
      return true;
    });
  } finally {
    recorder.close();
    client.close();
    await node.stop();
    if (existsSync(filler)) unlinkSync(filler);
    execFileSync("umount", ["-l", data]);
    rmSync(setup.dir, { recursive: true, force: true });
  }
}

/**
 * Kill storm: 8 long tasks on a worker node of 2 processes × 8 slots (prefetch 0, so a killed
 * process's tasks have room elsewhere at once); `rounds` times, kill -9 a process that runs some
 * and time until each of its tasks runs again (a higher attempt, RUNNING), polled every 50 ms.
 */
export async function killToRerun(rounds: number): Promise<{ rounds: number; samplesMs: number[]; medianMs: number; maxMs: number }> {
  const control = await startNode({ roles: ["control"], log: { level: "error" } });
  const workers = await startNode({
    roles: ["worker"],
    worker: { processes: 2, slots: 8, prefetch: 0, idPrefix: "kill", controlAddress: control.address },
    log: { level: "error" },
    metrics: { enabled: false },
  });
  const client = new TaskflowClient({ address: control.address });
  const samples: number[] = [];
  try {
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => client.submit("sleep", { ms: 600_000, i }, { maxAttempts: 100 })));
    const tasks = async () => Promise.all(ids.map((id) => client.get(id)));
    for (let round = 0; round < rounds; round++) {
      const running = await eventually(async () => {
        const all = await tasks();
        return all.every((t) => t.state === TaskState.RUNNING) ? all : undefined;
      }, 10_000, "every task running");
      const state = await client.clusterState();
      const victim = state.workers.find((w) => w.pid && running.some((t) => t.workerId === w.workerId));
      if (!victim) throw new Error("no worker process runs a task");
      const hit = running.filter((t) => t.workerId === victim.workerId);
      const killedAt = Date.now();
      process.kill(victim.pid, "SIGKILL");
      let last = "";
      await eventually(async () => {
        const now = await Promise.all(hit.map((t) => client.get(t.id)));
        last = JSON.stringify(now.map((t) => ({ state: t.state, workerId: t.workerId, attempt: t.attempt, waiting: t.waitingReason })));
        return now.every((t, i) => t.state === TaskState.RUNNING && t.attempt > hit[i]!.attempt) ? true : undefined;
      }, 10_000, `the killed process's tasks running again (round ${round}, killed ${victim.workerId})`).catch((err: Error) => {
        throw new Error(`${err.message}; last seen ${last}`);
      });
      samples.push(Date.now() - killedAt);
      log(`kill storm: round ${round + 1}/${rounds}: ${samples.at(-1)} ms`);
    }
    await Promise.all(ids.map((id) => client.cancel(id)));
  } finally {
    client.close();
    await workers.stop();
    await control.stop();
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { rounds, samplesMs: samples, medianMs: percentile(sorted, 0.5), maxMs: sorted.at(-1) ?? 0 };
}
