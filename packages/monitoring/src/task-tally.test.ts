import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterEvent, EventBus, TaskRecord } from "@taskflow/core";
import { TaskTally } from "./task-tally.js";

function bus(): EventBus & { listeners: Set<(e: ClusterEvent) => void> } {
  const listeners = new Set<(e: ClusterEvent) => void>();
  return {
    listeners,
    publish: (e) => listeners.forEach((l) => l(e)),
    subscribe: (l) => (listeners.add(l), () => void listeners.delete(l)),
    get hasSubscribers() {
      return listeners.size > 0;
    },
  };
}

function task(patch: Partial<TaskRecord>): TaskRecord {
  return {
    type: "t", payload: new Uint8Array(), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "",
    expectedDurationMs: 0, id: "a", seq: 1, tenant: "default", clientId: "", state: "queued", attempt: 0, epoch: 0, workerId: "", createdAt: 1000,
    assignedAt: 0, startedAt: 0, finishedAt: 0, notBefore: 0, result: undefined, error: "", waitingReason: "", attempts: [],
    ...patch,
  };
}

describe("TaskTally", () => {
  it("classifies transitions and observes queue wait, run time and latency in seconds", () => {
    const b = bus();
    const seen = { wait: [] as number[], run: [] as number[], latency: [] as number[] };
    const tally = new TaskTally(b, { queueWait: (s) => seen.wait.push(s), runTime: (s) => seen.run.push(s), latency: (s) => seen.latency.push(s) });
    const attempt1 = { attempt: 1, epoch: 1, workerId: "w", startedAt: 1100, finishedAt: 1300, error: "boom" };
    const attempt2 = { attempt: 2, epoch: 2, workerId: "w", startedAt: 0, finishedAt: 1700, error: "" };
    const events: [number, Partial<TaskRecord>][] = [
      [1000, { state: "queued" }],
      [1050, { state: "assigned", epoch: 1, attempt: 1, assignedAt: 1050, attempts: [{ ...attempt1, startedAt: 0, finishedAt: 0 }] }],
      [1300, { state: "queued", epoch: 1, attempt: 1, assignedAt: 1050, attempts: [attempt1] }],
      [1500, { state: "assigned", epoch: 2, attempt: 2, assignedAt: 1500, attempts: [attempt1, { ...attempt2, finishedAt: 0 }] }],
      [1700, { state: "succeeded", epoch: 2, attempt: 2, assignedAt: 1500, finishedAt: 1700, attempts: [attempt1, attempt2] }],
    ];
    for (const [time, patch] of events) b.publish({ kind: "task", time, task: task(patch) });
    assert.deepEqual(
      { submitted: tally.submitted, assigned: tally.assigned, retried: tally.retried, succeeded: tally.succeeded, failed: tally.failed },
      { submitted: 1, assigned: 2, retried: 1, succeeded: 1, failed: 0 },
    );
    assert.deepEqual(seen.wait, [0.05, 0.2], "first from submission, then from the failed attempt's end");
    assert.deepEqual(seen.run, [0.2, 0.2], "the second attempt reported no start: measured from its assignment");
    assert.deepEqual(seen.latency, [0.7]);
    tally.close();
    assert.equal(b.listeners.size, 0);
  });

  it("does not count a run twice when a task is cancelled while it waits out a retry backoff", () => {
    const b = bus();
    const runs: number[] = [];
    const tally = new TaskTally(b, { queueWait() {}, runTime: (s) => runs.push(s), latency() {} });
    const attempt = { attempt: 1, epoch: 1, workerId: "w", startedAt: 1100, finishedAt: 1300, error: "boom" };
    b.publish({ kind: "task", time: 1300, task: task({ state: "queued", epoch: 1, attempt: 1, attempts: [attempt] }) });
    b.publish({ kind: "task", time: 1400, task: task({ state: "cancelled", epoch: 1, attempt: 1, finishedAt: 1400, attempts: [attempt] }) });
    assert.deepEqual(runs, [0.2]);
    assert.equal(tally.cancelled, 1);
  });
});
