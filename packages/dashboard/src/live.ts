/**
 * The live cluster state: loaded once from /api/state, then kept current by the server-sent
 * event stream (/api/events) without reloading. Task changes are also handed to listeners so
 * the task list and the task page update in place.
 */
import { useEffect, useState } from "preact/hooks";
import type { ClusterJson, SampleJson, StatsEventJson, TasksEventJson, WorkerJson } from "@taskflow/monitoring/api";
import { getJson } from "./api.js";

export interface LiveState {
  cluster: ClusterJson | undefined;
  connected: boolean;
  error: string;
}

type TasksListener = (event: TasksEventJson) => void;
const taskListeners = new Set<TasksListener>();

/** Calls `listener` with every batch of task changes while the component is mounted. */
export function useTaskChanges(listener: TasksListener, deps: unknown[]): void {
  useEffect(() => {
    taskListeners.add(listener);
    return () => void taskListeners.delete(listener);
  }, deps);
}

const HISTORY_LIMIT = 7200;

/** A worker event applied to the list, which holds at most `listed` workers (the next stats event refills it). */
function upsertWorker(workers: WorkerJson[], worker: WorkerJson, listed: number): WorkerJson[] {
  if (worker.state === "dead") return workers.filter((w) => w.id !== worker.id);
  const i = workers.findIndex((w) => w.id === worker.id);
  if (i < 0) return workers.length < listed ? [...workers, worker] : workers;
  const next = workers.slice();
  next[i] = worker;
  return next;
}

export function useLiveCluster(): LiveState {
  const [state, setState] = useState<LiveState>({ cluster: undefined, connected: false, error: "" });
  useEffect(() => {
    let closed = false;
    getJson<ClusterJson>("/api/state").then(
      (cluster) => !closed && setState((s) => ({ ...s, cluster, error: "" })),
      (err: Error) => !closed && setState((s) => ({ ...s, error: err.message })),
    );
    const source = new EventSource("/api/events");
    source.onopen = () => setState((s) => ({ ...s, connected: true, error: "" }));
    source.onerror = () => setState((s) => ({ ...s, connected: false }));
    source.addEventListener("stats", (e: MessageEvent<string>) => {
      const stats = JSON.parse(e.data) as StatsEventJson;
      setState((s) => {
        if (!s.cluster) return s;
        const history: SampleJson[] = [...s.cluster.history, stats.sample].slice(-HISTORY_LIMIT);
        return {
          ...s,
          cluster: { ...s.cluster, counts: stats.counts, queue: stats.queue, workers: stats.workers, workerCounts: stats.workerCounts, history, now: stats.sample.time },
        };
      });
    });
    source.addEventListener("worker", (e: MessageEvent<string>) => {
      const worker = JSON.parse(e.data) as WorkerJson;
      setState((s) => (s.cluster ? { ...s, cluster: { ...s.cluster, workers: upsertWorker(s.cluster.workers, worker, s.cluster.workerCounts.listed) } } : s));
    });
    source.addEventListener("tasks", (e: MessageEvent<string>) => {
      const batch = JSON.parse(e.data) as TasksEventJson;
      for (const listener of taskListeners) listener(batch);
    });
    return () => {
      closed = true;
      source.close();
    };
  }, []);
  return state;
}

/** Re-renders every `ms` (for "3 s ago" texts). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
