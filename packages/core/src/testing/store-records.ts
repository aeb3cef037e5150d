/** Task records for store tests, and the assertions the store conformance kit compares them with. */
import assert from "node:assert/strict";
import type { TaskRecord } from "../model.js";
import { isWellFormedPageToken, type TaskPage, type TaskQuery, type TaskStore } from "../store.js";

let nextRecord = 0;

/**
 * A complete, valid task record for tests: queued, with a unique `id` and a `seq` higher than any
 * made before in this process (so records made one after another are in submission order).
 * `overrides` replace any field.
 */
export function makeTaskRecord(overrides: Partial<TaskRecord> = {}): TaskRecord {
  const n = ++nextRecord;
  return {
    id: `task-${n}`,
    seq: n,
    tenant: "default",
    clientId: "client-a",
    state: "queued",
    type: "resize",
    payload: new Uint8Array([n & 0xff, 0, 0xff]),
    priority: 0,
    requiredLabels: {},
    maxAttempts: 0,
    timeoutMs: 0,
    idempotencyKey: "",
    expectedDurationMs: 0,
    attempt: 0,
    epoch: 0,
    workerId: "",
    createdAt: 1_700_000_000_000 + n,
    assignedAt: 0,
    startedAt: 0,
    finishedAt: 0,
    notBefore: 0,
    result: undefined,
    error: "",
    waitingReason: "",
    attempts: [],
    ...overrides,
  };
}

/** A record with every field set to something other than its zero value. */
export function fullRecord(overrides: Partial<TaskRecord> = {}): TaskRecord {
  const base = makeTaskRecord();
  return {
    ...base,
    tenant: "acme-corp.eu_1",
    clientId: "client-ü",
    state: "running",
    type: "thumbnail.v2",
    payload: new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 0]),
    priority: 7,
    requiredLabels: { gpu: "a100", zone: "eu-west-1", "emoji": "🚀" },
    maxAttempts: 5,
    timeoutMs: 30_000,
    idempotencyKey: `key-${base.id}`,
    expectedDurationMs: 1_250,
    attempt: 2,
    epoch: 9,
    workerId: "worker-7",
    assignedAt: base.createdAt + 10,
    startedAt: base.createdAt + 12,
    finishedAt: 0,
    notBefore: base.createdAt + 5,
    result: new Uint8Array([9, 8, 7]),
    error: "previous attempt: boom \n with a newline and 'quotes'",
    waitingReason: "no worker with label gpu=a100",
    deadline: base.createdAt + 60_000,
    concurrencyKey: "customer-ü 42",
    rateLimitKey: "email/customer-42",
    metadata: { team: "ml", "trace-id": "4bf92f35", note: "ünïcode, \"quotes\" and\nnewlines" },
    dependsOn: [`dep-a-${base.id}`, `dep-b-${base.id}`],
    onDependencyFailure: "run",
    schedule: { id: "nightly-report", at: base.createdAt - 1_000 },
    attempts: [
      { attempt: 1, epoch: 8, workerId: "worker-3", startedAt: base.createdAt + 1, finishedAt: base.createdAt + 4, error: "worker died" },
      { attempt: 2, epoch: 9, workerId: "worker-7", startedAt: base.createdAt + 12, finishedAt: 0, error: "" },
    ],
    ...overrides,
  };
}

/** Bytes as plain Uint8Array copies, so a Buffer and a Uint8Array of the same bytes compare equal. */
function normalized(record: TaskRecord): TaskRecord {
  assert.ok(record.payload instanceof Uint8Array, `payload of ${record.id} is a Uint8Array`);
  assert.ok(record.result === undefined || record.result instanceof Uint8Array, `result of ${record.id} is a Uint8Array or undefined`);
  return {
    ...record,
    payload: new Uint8Array(record.payload),
    result: record.result === undefined ? undefined : new Uint8Array(record.result),
    requiredLabels: { ...record.requiredLabels },
    ...(record.metadata === undefined ? {} : { metadata: { ...record.metadata } }),
    ...(record.dependsOn === undefined ? {} : { dependsOn: [...record.dependsOn] }),
    attempts: record.attempts.map((a) => ({ ...a })),
  };
}

export function assertSameRecord(actual: TaskRecord | undefined, expected: TaskRecord, message?: string): void {
  assert.ok(actual, message ?? `task ${expected.id} is stored`);
  assert.deepEqual(normalized(actual), normalized(expected), message);
}

export function ids(records: readonly TaskRecord[]): string[] {
  return records.map((r) => r.id);
}

/** An independent copy, for expectations and for updates that must not alias stored objects. */
export function copy(record: TaskRecord): TaskRecord {
  return structuredClone(record);
}

export async function allPages(store: TaskStore, query: TaskQuery): Promise<{ pages: TaskPage[]; tasks: TaskRecord[] }> {
  const pages: TaskPage[] = [];
  let pageToken = "";
  do {
    const page = await store.list({ ...query, pageToken });
    pages.push(page);
    pageToken = page.nextPageToken;
    // ListTasks checks this form before the store sees the token again.
    if (pageToken) assert.ok(isWellFormedPageToken(pageToken), `page token ${JSON.stringify(pageToken)} has the form ListTasks accepts`);
    assert.ok(pages.length <= 10_000, "paging ends");
  } while (pageToken !== "");
  return { pages, tasks: pages.flatMap((p) => p.tasks) };
}
