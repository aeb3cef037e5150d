/**
 * The worker role's Prometheus metrics. The role's parent process serves them for all its
 * worker processes: on each scrape it asks every child over IPC for its counters (see
 * apps/node), so there is one endpoint per node and no port per process.
 */
import { Counter, Gauge, type Registry } from "prom-client";

/** What one worker process reports about itself. */
export interface WorkerProcessStats {
  workerId: string;
  pid: number;
  /** Handlers that returned. */
  completed: number;
  /** Handlers that threw (or timed out). */
  failed: number;
  /** Handlers aborted by a cancel. */
  cancelled: number;
  /** Tasks it runs or holds now. */
  running: number;
  slots: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  rssBytes: number;
  /** Times the worker role restarted this process. */
  restarts: number;
}

/** Registers the worker metrics; `read` asks the processes for their stats at scrape time. */
export function registerWorkerMetrics(registry: Registry, read: () => Promise<WorkerProcessStats[]>): void {
  const registers = [registry];
  // One read per scrape, shared by every metric below (each metric's collect runs in turn).
  let pending: Promise<WorkerProcessStats[]> | undefined;
  const snapshot = () => {
    pending ??= read().finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };
  new Counter({
    name: "taskflow_worker_process_tasks_total",
    help: "Task attempts a worker process finished, by outcome",
    labelNames: ["worker_id", "outcome"],
    registers,
    async collect() {
      this.reset();
      for (const s of await snapshot()) {
        this.inc({ worker_id: s.workerId, outcome: "completed" }, s.completed);
        this.inc({ worker_id: s.workerId, outcome: "failed" }, s.failed);
        this.inc({ worker_id: s.workerId, outcome: "cancelled" }, s.cancelled);
      }
    },
  });
  new Counter({
    name: "taskflow_worker_process_restarts_total",
    help: "Times the worker role restarted a worker process after it exited",
    labelNames: ["worker_id"],
    registers,
    async collect() {
      this.reset();
      for (const s of await snapshot()) this.inc({ worker_id: s.workerId }, s.restarts);
    },
  });
  const gauge = (name: string, help: string, value: (s: WorkerProcessStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["worker_id"],
      registers,
      async collect() {
        this.reset();
        for (const s of await snapshot()) this.set({ worker_id: s.workerId }, value(s));
      },
    });
  gauge("taskflow_worker_process_running_tasks", "Tasks a worker process runs or holds now", (s) => s.running);
  gauge("taskflow_worker_process_slots", "Tasks a worker process runs at once", (s) => s.slots);
  gauge("taskflow_worker_process_heap_used_bytes", "V8 heap used by a worker process", (s) => s.heapUsedBytes);
  gauge("taskflow_worker_process_heap_total_bytes", "V8 heap size of a worker process", (s) => s.heapTotalBytes);
  gauge("taskflow_worker_process_resident_bytes", "Resident set size of a worker process", (s) => s.rssBytes);
}
