/**
 * The task table's numbers: the submission sequence and how many tasks are in each state
 * (finished ones too, as the store counts them). New records take their `seq` here.
 */
import { SPEC_ATTRIBUTE_KEYS, TASK_STATES, type Clock, type TaskRecord, type TaskSpec, type TaskState } from "@taskflow/core";
import { delayedUntil, dueTime } from "./due-time.js";

export class TaskTally {
  private seq = 0;
  private readonly stateCounts: Record<TaskState, number> = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;

  constructor(private readonly clock: Clock) {}

  /** After a restart: continue the store's sequence and state counts. */
  restore(maxSeq: number, counts: Record<TaskState, number>): void {
    this.seq = maxSeq;
    for (const state of TASK_STATES) this.stateCounts[state] = counts[state];
  }

  /** Tasks in each state (finished ones too, as the store counts them). */
  counts(): Record<TaskState, number> {
    return { ...this.stateCounts };
  }

  /** A task moved from one state to another. */
  count(from: TaskState, to: TaskState): void {
    this.stateCounts[from]--;
    this.stateCounts[to]++;
  }

  /** Tasks entered the table as queued (just inserted in the store). */
  countNew(n: number): void {
    this.stateCounts.queued += n;
  }

  /** A new task record with the next sequence number, queued. */
  newRecord(spec: TaskSpec, tenant: string, clientId: string, id: string): TaskRecord {
    const now = this.clock.now();
    const notBefore = spec.delayMs || spec.runAt ? dueTime(spec, now) : 0;
    // Every field spelled out: a spread here makes V8 build slow dictionary-mode objects (~25x slower).
    const rec: TaskRecord = {
      type: spec.type,
      payload: spec.payload,
      priority: spec.priority,
      requiredLabels: spec.requiredLabels,
      maxAttempts: spec.maxAttempts,
      timeoutMs: spec.timeoutMs,
      idempotencyKey: spec.idempotencyKey,
      expectedDurationMs: spec.expectedDurationMs,
      id,
      seq: ++this.seq,
      tenant,
      clientId,
      state: "queued",
      attempt: 0,
      epoch: 0,
      workerId: "",
      createdAt: now,
      assignedAt: 0,
      startedAt: 0,
      finishedAt: 0,
      notBefore,
      result: undefined,
      error: "",
      waitingReason: notBefore ? delayedUntil(notBefore) : "",
      attempts: [],
    };
    // The optional submission attributes (metadata, deadline, …), only those set: most tasks have none.
    for (const key of SPEC_ATTRIBUTE_KEYS) if (spec[key] !== undefined) (rec as unknown as Record<string, unknown>)[key] = spec[key];
    return rec;
  }
}
