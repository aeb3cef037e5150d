import type { Plm, Register, ScheduleRecord } from "@taskflow/core";

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
