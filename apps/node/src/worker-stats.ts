/**
 * Worker process counters over IPC: the worker role's parent asks each child when a metrics
 * scrape comes in, so the processes serve no port of their own and idle costs nothing.
 */
import type { ChildProcess } from "node:child_process";
import type { TaskflowWorker } from "@taskflow/client";
import type { WorkerProcessStats } from "@taskflow/monitoring";

type ProcessStats = Omit<WorkerProcessStats, "restarts">;

interface StatsRequest {
  kind: "stats?";
  id: number;
}

interface StatsReply {
  kind: "stats";
  id: number;
  stats: ProcessStats;
}

let nextId = 0;

/** Asks one worker process for its counters; undefined if it does not answer in time. */
export function askStats(child: ChildProcess, timeoutMs = 1000): Promise<ProcessStats | undefined> {
  if (!child.connected) return Promise.resolve(undefined);
  const id = ++nextId;
  return new Promise((resolve) => {
    const done = (value: ProcessStats | undefined) => {
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(value);
    };
    const onMessage = (msg: Partial<StatsReply>) => {
      if (msg?.kind === "stats" && msg.id === id && msg.stats) done(msg.stats);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    child.on("message", onMessage);
    child.send({ kind: "stats?", id } satisfies StatsRequest, (err) => {
      if (err) done(undefined);
    });
  });
}

/** In a worker process: answers the parent's stats requests. */
export function answerStats(worker: TaskflowWorker, workerId: string, slots: number): void {
  process.on("message", (msg: Partial<StatsRequest>) => {
    if (msg?.kind !== "stats?" || typeof msg.id !== "number") return;
    const mem = process.memoryUsage();
    const stats: ProcessStats = {
      workerId,
      pid: process.pid,
      completed: worker.stats.completed,
      failed: worker.stats.failed,
      cancelled: worker.stats.cancelled,
      running: worker.runningCount,
      slots,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      rssBytes: mem.rss,
    };
    process.send?.({ kind: "stats", id: msg.id, stats } satisfies StatsReply);
  });
}
