import type { ClusterEvent, EventBus, TaskRecord } from "@taskflow/core";

/** Receives task timings in seconds (histograms). */
export interface TaskTimings {
  /** From entering the queue (submitted or requeued) to an assignment. */
  queueWait(seconds: number): void;
  /** One attempt, from the worker starting it to its result. */
  runTime(seconds: number): void;
  /** From submission to the final result (succeeded or failed). */
  latency(seconds: number): void;
}

/**
 * Counts task transitions from the EventBus: O(1) work per event, plain integer increments
 * plus the optional timings. Metrics and the dashboard's charts read the totals when they need
 * them.
 *
 * How an event is classified (the PLM publishes the record at each change):
 * - `queued` with epoch 0: submitted; `queued` with epoch > 0: back in the queue for another
 *   attempt (a failed or timed-out attempt, a lost worker, a draining worker's hand-back) = retried;
 * - `assigned`: assigned (queue wait observed);
 * - `succeeded`, `failed`, `cancelled`: finished (run time and latency observed).
 */
export class TaskTally {
  submitted = 0;
  assigned = 0;
  retried = 0;
  succeeded = 0;
  failed = 0;
  cancelled = 0;
  private readonly unsubscribe: () => void;

  constructor(bus: EventBus, private readonly timings?: TaskTimings) {
    this.unsubscribe = bus.subscribe((event) => this.onEvent(event));
  }

  close(): void {
    this.unsubscribe();
  }

  /** Attempts whose run time was observed, so none counts twice. */
  private readonly observedAttempts = new WeakSet<object>();

  private onEvent(event: ClusterEvent): void {
    if (event.kind !== "task") return;
    const task = event.task;
    switch (task.state) {
      case "queued":
        if (task.epoch === 0) {
          this.submitted++;
        } else {
          this.retried++;
          this.observeRun(task);
        }
        return;
      case "assigned":
        this.assigned++;
        if (this.timings) {
          const previous = task.attempts.length >= 2 ? task.attempts[task.attempts.length - 2]!.finishedAt : 0;
          const enteredQueue = Math.max(task.createdAt, previous);
          if (task.assignedAt >= enteredQueue) this.timings.queueWait((task.assignedAt - enteredQueue) / 1000);
        }
        return;
      case "succeeded":
        this.succeeded++;
        this.observeRun(task);
        this.timings?.latency((task.finishedAt - task.createdAt) / 1000);
        return;
      case "failed":
        this.failed++;
        this.observeRun(task);
        this.timings?.latency((task.finishedAt - task.createdAt) / 1000);
        return;
      case "cancelled":
        this.cancelled++;
        this.observeRun(task);
        return;
      default:
        return;
    }
  }

  /** The attempt this transition closed, if it had started. */
  private observeRun(task: TaskRecord): void {
    if (!this.timings) return;
    const last = task.attempts[task.attempts.length - 1];
    // Each attempt once: a task cancelled while it waits out a retry backoff closes no new one.
    // (A time window here dropped attempts when the clock moved a few ms within one transition.)
    if (!last || last.epoch !== task.epoch || !last.finishedAt || this.observedAttempts.has(last)) return;
    this.observedAttempts.add(last);
    // startedAt: the worker's start notice, or the result's arrival for an attempt that finished
    // within one worker flush (it runs for microseconds then); assignment as a last resort.
    const began = last.startedAt || task.assignedAt;
    if (began) this.timings.runTime((last.finishedAt - began) / 1000);
  }
}
