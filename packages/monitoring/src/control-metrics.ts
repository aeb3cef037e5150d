/**
 * The control node's Prometheus metrics. Task counters and timing histograms come from the
 * EventBus through a TaskTally (O(1) per transition); everything else is read in `collect()`
 * callbacks when a scrape asks, so an idle scraper costs nothing.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { TASK_STATES, type EventBus, type TenantUsage, type WorkerRecord } from "@taskflow/core";
import type { ControlView, WorkerCounts } from "./control-view.js";
import { FastHistogram } from "./fast-histogram.js";
import { TaskTally } from "./task-tally.js";

/** Seconds: 1 ms … 5 min, enough for no-op tasks and long jobs alike. */
const TIME_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export interface ControlMetrics {
  readonly tally: TaskTally;
  close(): void;
}

/** Registers the control metrics in `registry` and starts counting events from `bus`. */
/** What the control metrics are told beyond the view. */
export interface ControlMetricsOptions {
  /** Most workers with their own `worker_id` series (`metrics.maxWorkerSeries`). */
  readonly maxWorkerSeries: number;
}

export function registerControlMetrics(registry: Registry, view: ControlView, bus: EventBus, options: ControlMetricsOptions = { maxWorkerSeries: 100 }): ControlMetrics {
  const registers = [registry];
  // The three per-task histograms are on the hot path: FastHistogram, not prom-client's.
  const queueWait = new FastHistogram(
    "taskflow_task_queue_wait_seconds",
    "Time from entering the queue (submitted or requeued) to being assigned to a worker",
    TIME_BUCKETS,
    registry,
  );
  const runTime = new FastHistogram("taskflow_task_run_seconds", "Time one attempt ran on a worker, from start to result", TIME_BUCKETS, registry);
  const latency = new FastHistogram("taskflow_task_latency_seconds", "Time from submission to the final result (succeeded or failed)", TIME_BUCKETS, registry);
  const tally = new TaskTally(bus, {
    queueWait: (s) => queueWait.observe(s),
    runTime: (s) => runTime.observe(s),
    latency: (s) => latency.observe(s),
  });

  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter("taskflow_tasks_submitted_total", "Tasks accepted by this control node", () => tally.submitted);
  counter("taskflow_tasks_assigned_total", "Assignments of tasks to workers (one per attempt)", () => tally.assigned);
  counter("taskflow_tasks_completed_total", "Tasks that succeeded", () => tally.succeeded);
  counter("taskflow_tasks_failed_total", "Tasks that failed for good (after their last attempt)", () => tally.failed);
  counter("taskflow_tasks_cancelled_total", "Tasks cancelled", () => tally.cancelled);
  counter(
    "taskflow_tasks_retried_total",
    "Times a task went back to the queue for another attempt (failed or timed-out attempt, lost or draining worker)",
    () => tally.retried,
  );

  new Gauge({
    name: "taskflow_schedules",
    help: "Recurring schedules by state: active, paused, or refused (its pending firing was refused and is being retried)",
    labelNames: ["state"],
    registers,
    collect() {
      const counts = { active: 0, paused: 0, refused: 0 };
      for (const s of view.schedules()) counts[s.paused ? "paused" : s.lastError ? "refused" : "active"]++;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  counter("taskflow_schedule_firings_total", "Firing times of recurring schedules submitted as tasks (a repeated firing that found its task counts too)", () => view.scheduleFirings());

  new Gauge({
    name: "taskflow_store_writable",
    help: "1 while the task store takes writes; 0 while it cannot (full or read-only disk…): results are held back and no work is assigned",
    registers,
    collect() {
      this.set(view.store().writable ? 1 : 0);
    },
  });
  counter("taskflow_store_write_failures_total", "Task store writes that failed (each is retried until it succeeds)", () => view.store().failedWrites);

  new Gauge({
    name: "taskflow_tasks",
    help: "Tasks by state (finished ones until control.resultRetentionMs purges them)",
    labelNames: ["state"],
    registers,
    async collect() {
      const counts = await view.plm.counts();
      for (const state of TASK_STATES) this.set({ state }, counts[state]);
    },
  });
  new Gauge({
    name: "taskflow_queue_depth",
    help: "Queued tasks: in the task heap, parked because no worker can take them now or a rate or concurrency limit holds them back, or delayed until their due time",
    labelNames: ["where"],
    registers,
    collect() {
      const q = view.queue();
      this.set({ where: "heap" }, q.inHeap);
      this.set({ where: "parked" }, q.parked);
      this.set({ where: "delayed" }, q.delayed);
    },
  });
  new Gauge({
    name: "taskflow_task_heap_capacity",
    help: "Most unfinished tasks at once (control.taskHeapCapacity)",
    registers,
    collect() {
      this.set(view.queue().capacity);
    },
  });
  new Gauge({
    name: "taskflow_worker_heap_size",
    help: "Workers that take tasks and have a free slot (the scheduler's worker heap)",
    registers,
    collect() {
      this.set(view.freeWorkers());
    },
  });
  // Aggregates over every worker, from one pass that copies nothing (ADR 0031).
  const workerGauge = (name: string, help: string, read: (s: WorkerCounts) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(view.workerSummary()));
      },
    });
  new Gauge({
    name: "taskflow_workers",
    help: "Workers by state; a disconnected one (within liveness.reconnectGraceMs) counts as alive",
    labelNames: ["state"],
    registers,
    collect() {
      const s = view.workerSummary();
      this.set({ state: "alive" }, s.alive + s.disconnected);
      this.set({ state: "suspect" }, s.suspect);
      this.set({ state: "dead" }, 0);
      this.set({ state: "draining" }, s.draining);
    },
  });
  workerGauge("taskflow_workers_disconnected", "Workers whose session broke, within their reconnect grace (liveness.reconnectGraceMs)", (s) => s.disconnected);
  workerGauge("taskflow_workers_slots", "Task slots of every worker together", (s) => s.slots);
  workerGauge("taskflow_workers_running_tasks", "Tasks every worker together holds now (their load)", (s) => s.running);
  workerGauge("taskflow_workers_heartbeat_age_max_seconds", "Seconds since the least recent heartbeat of a connected worker", (s) => s.oldestHeartbeatAgeSeconds);
  // Per-worker series, for the first metrics.maxWorkerSeries workers to join: reset each scrape
  // so workers that left disappear, and bounded so a scrape stays small at any number of workers.
  const perWorker = (name: string, help: string, read: (w: WorkerRecord, now: number) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["worker_id"],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const w of view.firstWorkers(options.maxWorkerSeries)) this.set({ worker_id: w.id }, read(w, now));
      },
    });
  const limited = ` (the first ${options.maxWorkerSeries} workers to join: metrics.maxWorkerSeries)`;
  perWorker("taskflow_worker_running_tasks", `Tasks a worker holds now (its load)${limited}`, (w) => w.running);
  perWorker("taskflow_worker_slots", `Tasks a worker runs at once${limited}`, (w) => w.slots);
  perWorker("taskflow_worker_heartbeat_age_seconds", `Seconds since a worker's last heartbeat${limited}`, (w, now) => Math.max(0, (now - w.lastHeartbeat) / 1000));

  counter("taskflow_scheduler_turns_total", "Scheduler loop turns", () => view.schedulerStats().turns);
  counter("taskflow_scheduler_busy_seconds_total", "Time spent in scheduler loop turns; divided by turns, the mean loop duration", () =>
    Number(view.schedulerStats().busyNs) / 1e9,
  );
  new Gauge({
    name: "taskflow_scheduler_loop_seconds",
    help: "Mean scheduler loop turn duration since the previous scrape (0 when no turn ran)",
    registers,
    collect: (() => {
      let last = { turns: 0, busyNs: 0n };
      return function (this: Gauge) {
        const now = view.schedulerStats();
        const turns = now.turns - last.turns;
        this.set(turns > 0 ? Number(now.busyNs - last.busyNs) / 1e9 / turns : 0);
        last = { turns: now.turns, busyNs: now.busyNs };
      };
    })(),
  });
  new Counter({
    name: "taskflow_grpc_server_errors_total",
    help: "gRPC calls answered with an error status, by code",
    labelNames: ["code"],
    registers,
    collect() {
      this.reset();
      for (const [code, n] of view.grpcErrors()) this.inc({ code }, n);
    },
  });

  // Per tenant, with one label value per tenant named in tenants.quotas or a token (at most 100)
  // and "other" for the rest: the series stay bounded whatever tenants the store holds.
  const perTenant = (make: typeof Counter | typeof Gauge, name: string, help: string, read: (u: TenantUsage) => number) =>
    new make({
      name,
      help,
      labelNames: ["tenant"],
      registers,
      collect(this: Counter | Gauge) {
        this.reset();
        for (const usage of view.plm.tenantUsage()) (this as Gauge).inc({ tenant: usage.label }, read(usage));
      },
    });
  perTenant(Counter, "taskflow_tenant_tasks_submitted_total", "Tasks accepted, by tenant", (u) => u.submitted);
  perTenant(Gauge, "taskflow_tenant_tasks_unfinished", "Tasks accepted and not finished (queued, waiting for a retry, or with a worker), by tenant: what tenants.*.maxUnfinishedTasks limits", (u) => u.unfinished);
  new Counter({
    name: "taskflow_tenant_quota_refusals_total",
    help: "Tasks in submits refused by a tenant quota, by tenant and quota (max_unfinished_tasks, submits_per_second)",
    labelNames: ["tenant", "quota"],
    registers,
    collect() {
      this.reset();
      for (const u of view.plm.tenantUsage()) {
        this.inc({ tenant: u.label, quota: "max_unfinished_tasks" }, u.refusedUnfinished);
        this.inc({ tenant: u.label, quota: "submits_per_second" }, u.refusedRate);
      }
    },
  });

  new Counter({
    name: "taskflow_submit_rejected_total",
    help: "Submit requests refused (a SubmitTask or SubmitTasks call, or one SubmitTaskStream batch, whose refusal is its acknowledgement), by status code and TASKFLOW_ERR_* reason",
    labelNames: ["code", "reason"],
    registers,
    collect() {
      this.reset();
      for (const { code, reason, count } of view.submitRejections()) this.inc({ code, reason }, count);
    },
  });
  new Gauge({
    name: "taskflow_memory_bytes",
    help: "Control node memory against control.memoryBudget, by kind (heap: V8 heap in use, rss: resident set) and what (used, budget); submits are refused with TASKFLOW_ERR_MEMORY past the budget",
    labelNames: ["kind", "what"],
    registers,
    collect() {
      const m = view.memory();
      this.set({ kind: "heap", what: "used" }, m.heapUsed);
      this.set({ kind: "heap", what: "budget" }, Math.round(m.heapBudget));
      this.set({ kind: "rss", what: "used" }, m.rss);
      this.set({ kind: "rss", what: "budget" }, Math.round(m.rssBudget));
    },
  });
  new Gauge({
    name: "taskflow_memory_refusing",
    help: "1 while submits are refused because memory reached control.memoryBudget (until it falls below its resumeFraction), else 0",
    registers,
    collect() {
      this.set(view.memory().refusing ? 1 : 0);
    },
  });
  counter("taskflow_workers_refused_total", "Worker hellos refused because the register was full (control.workerHeapCapacity)", () => view.workersRefused());

  new Counter({
    name: "taskflow_auth_failures_total",
    help: "calls refused by authentication or authorization, by reason (missing_token, bad_token, wrong_role, worker_id_taken, task_types)",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of view.authFailures()) this.inc({ reason }, n);
    },
  });

  return { tally, close: () => tally.close() };
}
