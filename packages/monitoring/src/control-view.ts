import type { Plm, Register, ScheduleRecord, WorkerRecord } from "@taskflow/core";

/** Every worker counted; `disconnected` ones are within their reconnect grace. */
export interface WorkerCounts {
  readonly total: number;
  readonly alive: number;
  readonly suspect: number;
  readonly draining: number;
  readonly disconnected: number;
  /** Task slots of all workers, and the tasks they hold (running and prefetched). */
  readonly slots: number;
  readonly running: number;
  /** Seconds since the least recent heartbeat of a connected worker (0 with none). */
  readonly oldestHeartbeatAgeSeconds: number;
}

/**
 * What monitoring reads from the control role. A narrow view, assembled in `apps/node`, so this
 * package depends on contracts only, and every read is a snapshot taken when a scrape or a
 * dashboard request asks (never on the scheduling hot path).
 */
export interface ControlView {
  readonly plm: Plm;
  readonly register: Register;
  readonly policyName: string;
  /**
   * Tasks waiting in the task heap, tasks parked because no worker can take them (or a rate or concurrency limit holds them), delayed tasks
   * waiting for their due time (all three queued), and the heap's capacity.
   */
  queue(): { inHeap: number; parked: number; delayed: number; capacity: number };
  /** Workers in the worker heap: schedulable, with a free slot. */
  freeWorkers(): number;
  /** Counts over every worker, in one pass that copies nothing (ADR 0031). */
  workerSummary(): WorkerCounts;
  /** The first `limit` workers to join (a bounded list: metrics series, the dashboard). */
  firstWorkers(limit: number): WorkerRecord[];
  /** Scheduler loop totals since start. */
  schedulerStats(): { readonly turns: number; readonly assigned: number; readonly busyNs: bigint };
  /** gRPC calls that ended in an error, by status code name. */
  grpcErrors(): ReadonlyMap<string, number>;
  /** Calls refused by authentication or authorization, by reason. */
  authFailures(): ReadonlyMap<string, number>;
  /**
   * Submit requests refused (a SubmitTask or SubmitTasks call, one SubmitTaskStream batch), by
   * status code name and `TASKFLOW_ERR_*` reason (`""` when none): a stream batch's refusal
   * travels in its acknowledgement, so `grpcErrors` does not see it.
   */
  submitRejections(): Iterable<{ readonly code: string; readonly reason: string; readonly count: number }>;
  /** Worker hellos refused because the register was full (`control.workerHeapCapacity`). */
  workersRefused(): number;
  /** Memory in use against `control.memoryBudget` (last sample), and whether submits are refused for it. */
  memory(): { readonly heapUsed: number; readonly heapBudget: number; readonly rss: number; readonly rssBudget: number; readonly refusing: boolean };
  /** Every tenant's recurring schedules, by tenant and ID (ADR 0025). */
  schedules(): readonly ScheduleRecord[];
  /** Firing times of schedules submitted since the start. */
  scheduleFirings(): number;
  /** Whether the task store takes writes, and how many writes failed since the start. */
  store(): { readonly kind: string; readonly writable: boolean; readonly error: string; readonly failedWrites: number };
}
