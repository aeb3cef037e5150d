/**
 * The worker role: runs `worker.processes` worker processes and keeps them running for as long as
 * the node runs. A process that dies is logged (exit code or signal) and started again with the
 * same worker ID at once (its lost tasks are requeued by the control node when it says hello
 * again); one that keeps dying young backs off, up to 500 ms. With `worker.standby` one more
 * process waits loaded, without an ID, and becomes the replacement in milliseconds. SIGTERM
 * drains them all.
 */
import { fork, type ChildProcess, type StdioOptions } from "node:child_process";
import { mkdirSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger, TaskflowConfig } from "@taskflow/core";
import { loadHandlers } from "./handlers.js";
import type { StandbyOptions, WorkerProcessOptions } from "./worker-process.js";
import type { WorkerProcessStats } from "@taskflow/monitoring";
import { askStats } from "./worker-stats.js";
import { workerTlsPaths, workerToken } from "./security.js";

export interface WorkerNode {
  /** PIDs of the worker processes now running. */
  pids(): number[];
  /** Counters of every running worker process, asked over IPC (for metrics). */
  stats(): Promise<WorkerProcessStats[]>;
  /** Resolves when every process has said it is connected. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** A standby that ran this long before dying is replaced at once, else after the longest delay. */
const STREAK_RESET_MS = 10_000;
/** Longest wait before restarting a process that keeps dying: short, as its tasks wait for it. */
const MAX_RESPAWN_DELAY_MS = 500;

/** Wait before restart number `streak` + 1 of a process that keeps dying before it connects: 0, 50, 100, 200, 400, 500 … ms. */
export function respawnDelayMs(streak: number): number {
  return streak === 0 ? 0 : Math.min(25 * 2 ** streak, MAX_RESPAWN_DELAY_MS);
}

export async function startWorkers(config: TaskflowConfig, baseDir: string, controlAddress: string, logger: Logger): Promise<WorkerNode> {
  const handlersPath = config.worker.handlers ? path.resolve(baseDir, config.worker.handlers) : undefined;
  // Fail fast, in this process, on a handlers module that cannot load.
  await loadHandlers(handlersPath);
  const prefix = config.worker.idPrefix ?? `${hostname()}-${process.pid}`;
  const token = workerToken(config, baseDir);
  const tls = workerTlsPaths(config, baseDir);
  // Watchdogs leave the results of a stalled process here for the one that replaces it.
  const rescueDir = path.join(tmpdir(), "taskflow-rescue");
  mkdirSync(rescueDir, { recursive: true });
  const children = new Map<number, ChildProcess>();
  const restartCounts = new Map<number, number>();
  const respawnTimers = new Set<NodeJS.Timeout>();
  let stopping = false;
  const readyWaiters: Promise<void>[] = [];
  // The node supervises its processes for as long as it runs: when every one of them has died at
  // once and its respawn is pending, this handle is what keeps the event loop (and the node) alive.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const script = path.join(here, "worker-process.js");
  const stdio: StdioOptions = ["ignore", "inherit", "inherit", "ipc"];
  // A loaded process waiting for a worker ID: a dead process is replaced without a Node.js start.
  let standby: { child: ChildProcess; ready: boolean } | undefined;
  const startStandby = (): void => {
    if (stopping || !config.worker.standby) return;
    const env = { ...process.env, TASKFLOW_WORKER_STANDBY: JSON.stringify({ handlers: handlersPath } satisfies StandbyOptions) };
    const entry = { child: fork(script, [], { env, stdio }), ready: false };
    entry.child.on("error", (err) => logger.warn({ pid: entry.child.pid, error: err.message }, "standby worker process error"));
    const startedAt = Date.now();
    standby = entry;
    entry.child.on("message", (msg: { kind?: string }) => {
      if (msg?.kind === "standby") entry.ready = true;
    });
    entry.child.on("exit", (code, signal) => {
      if (standby !== entry || stopping) return;
      standby = undefined;
      const delay = Date.now() - startedAt > STREAK_RESET_MS ? 0 : MAX_RESPAWN_DELAY_MS;
      logger.warn({ pid: entry.child.pid, code, signal, restartInMs: delay }, "standby worker process exited; starting another");
      const timer = setTimeout(() => {
        respawnTimers.delete(timer);
        startStandby();
      }, delay);
      respawnTimers.add(timer);
    });
  };

  const spawn = (index: number, streak: number): Promise<void> => {
    const workerId = `${prefix}-w${index}`;
    const options: WorkerProcessOptions = {
      address: controlAddress,
      workerId,
      slots: config.worker.slots,
      prefetch: config.worker.prefetch,
      drainTimeoutMs: config.worker.drainTimeoutMs,
      labels: config.worker.labels,
      handlers: handlersPath,
      logLevel: config.log.level,
      logFormat: config.log.format,
      stallTimeoutMs: config.worker.stallTimeoutMs,
      abortGraceMs: config.worker.abortGraceMs,
      rescueFile: path.join(rescueDir, `${workerId.replace(/[^\w.-]/g, "_")}.json`),
      ...(token !== undefined && { token }),
      ...(tls && { tls }),
    };
    let connected = false;
    let child: ChildProcess;
    const loaded = standby?.ready && standby.child.connected ? standby : undefined;
    if (loaded) {
      standby = undefined;
      child = loaded.child;
      // It may have died a moment ago: then its exit (handled below) restarts this index again.
      child.send({ kind: "start", options }, (err) => {
        if (err) logger.warn({ workerId, pid: child.pid, error: err.message }, "standby worker process did not take its worker ID");
      });
      startStandby();
    } else {
      child = fork(script, [], { env: { ...process.env, TASKFLOW_WORKER: JSON.stringify(options) }, stdio });
    }
    // A failed IPC write or signal must not take the node down; the exit that follows is handled.
    child.on("error", (err) => logger.warn({ workerId, pid: child.pid, error: err.message }, "worker process error"));
    children.set(index, child);
    const ready = new Promise<void>((resolve) => {
      child.on("message", (msg: { kind?: string }) => {
        if (msg?.kind === "ready") {
          connected = true;
          resolve();
        }
      });
      child.on("exit", () => resolve());
    });
    child.on("exit", (code, signal) => {
      if (children.get(index) === child) children.delete(index);
      if (stopping) return;
      if (code === 78) {
        logger.error({ workerId: options.workerId }, "worker process cannot start; not restarting it");
        return;
      }
      // Its tasks wait for it (or for the control node's reconnect grace): a process that had
      // connected restarts at once, however often it is killed; only one that keeps dying before
      // it connects (a crash loop at startup) backs off, a little.
      const nextStreak = connected ? 0 : streak;
      const delay = respawnDelayMs(nextStreak);
      logger.warn({ workerId: options.workerId, pid: child.pid, code, signal, restartInMs: delay }, "worker process exited; restarting it");
      restartCounts.set(index, (restartCounts.get(index) ?? 0) + 1);
      const timer = setTimeout(() => {
        respawnTimers.delete(timer);
        if (!stopping) void spawn(index, nextStreak + 1);
      }, delay);
      respawnTimers.add(timer);
    });
    return ready;
  };

  for (let i = 0; i < config.worker.processes; i++) readyWaiters.push(spawn(i, 0));
  startStandby();

  return {
    pids: () => [...children.values()].map((c) => c.pid!).filter(Boolean),
    async stats() {
      const asked = await Promise.all([...children].map(async ([index, child]) => {
        const s = await askStats(child);
        return s && { ...s, restarts: restartCounts.get(index) ?? 0 };
      }));
      return asked.filter((s) => s !== undefined);
    },
    ready: Promise.all(readyWaiters).then(() => undefined),
    async stop() {
      stopping = true;
      for (const timer of respawnTimers) clearTimeout(timer);
      respawnTimers.clear();
      clearInterval(keepAlive);
      const exits = [...children.values(), ...(standby ? [standby.child] : [])].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      );
      await Promise.all(exits);
    },
  };
}
