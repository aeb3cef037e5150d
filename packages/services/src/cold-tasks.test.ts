/** The cold task table on its own: which records may go cold, and a freeze/thaw round trip. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { makeTaskRecord } from "@taskflow/core/testing";
import type { TaskRecord } from "@taskflow/core";
import { COLD_PAYLOAD_MAX_BYTES, ColdTasks, isPlain } from "./cold-tasks.js";

const plain = (overrides: Partial<TaskRecord> = {}): TaskRecord =>
  makeTaskRecord({ id: randomUUID(), state: "queued", attempt: 0, epoch: 0, workerId: "", attempts: [], idempotencyKey: "", notBefore: 0, waitingReason: "", ...overrides });

describe("isPlain", () => {
  it("takes a first-time queued task with only the plain fields", () => {
    assert.equal(isPlain(plain()), true);
    assert.equal(isPlain(plain({ concurrencyKey: "", rateLimitKey: "" })), true, '"" limit keys are none');
    assert.equal(isPlain(plain({ payload: new Uint8Array(COLD_PAYLOAD_MAX_BYTES) })), true);
  });

  it("refuses anything unusual, one field at a time", () => {
    const cases: [string, Partial<TaskRecord>][] = [
      ["running", { state: "running" }],
      ["retried", { attempt: 1 }],
      ["fenced", { epoch: 2 }],
      ["keyed", { idempotencyKey: "k" }],
      ["delayed", { notBefore: 5 }],
      ["with a reason", { waitingReason: "parked" }],
      ["big payload", { payload: new Uint8Array(COLD_PAYLOAD_MAX_BYTES + 1) }],
      ["fractional duration", { expectedDurationMs: 1.5 }],
      ["metadata", { metadata: { a: "b" } }],
      ["deadline", { deadline: 10 }],
      ["concurrency key", { concurrencyKey: "db" }],
      ["dependencies", { dependsOn: ["x"] }],
      ["a schedule's", { schedule: { id: "s", at: 1 } }],
    ];
    for (const [what, overrides] of cases) assert.equal(isPlain(plain(overrides)), false, what);
  });
});

describe("ColdTasks", () => {
  it("gives back every field it was given, finds by ID, and frees the id on thaw", () => {
    const cold = new ColdTasks<{ name: string }>(8);
    const account = { name: "acme" };
    const rec = plain({ type: "resize", tenant: "acme", clientId: "c9", priority: -4, maxAttempts: 5, timeoutMs: 2_000_000_000, expectedDurationMs: 77, seq: 123, createdAt: 1_700_000_000_123, payload: Uint8Array.of(9, 8, 7), requiredLabels: { zone: "b", gpu: "yes" } });
    assert.equal(cold.freeze(3, rec, { handle: 11, key: 2.5, enqueuedAt: 99, account }), true);
    assert.equal(cold.freeze(3, plain(), { handle: 1, key: 1, enqueuedAt: 1, account }), false, "an id holds one task");
    assert.equal(cold.freeze(8, plain(), { handle: 1, key: 1, enqueuedAt: 1, account }), false, "past capacity");
    assert.equal(cold.freeze(4, plain({ id: "not-a-uuid" }), { handle: 1, key: 1, enqueuedAt: 1, account }), false, "an ID that is not a UUID");
    assert.equal(cold.find(rec.id), 3);
    assert.deepEqual([cold.field(3, "type"), cold.field(3, "tenant"), cold.field(3, "clientId"), cold.seqOf(3)], ["resize", "acme", "c9", 123]);
    const back = cold.thaw(3);
    assert.deepEqual({ ...back.rec, payload: [...back.rec.payload] }, { ...rec, payload: [9, 8, 7] });
    assert.deepEqual([back.handle, back.key, back.enqueuedAt, back.account], [11, 2.5, 99, account]);
    assert.equal(cold.size, 0);
    assert.equal(cold.has(3), false);
    assert.equal(cold.find(rec.id), -1);
  });

  it("shares one label set between tasks whatever the order of its entries", () => {
    const cold = new ColdTasks<object>(4);
    cold.freeze(0, plain({ requiredLabels: { a: "1", b: "2" } }), { handle: 0, key: 0, enqueuedAt: 0, account: {} });
    cold.freeze(1, plain({ requiredLabels: { b: "2", a: "1" } }), { handle: 1, key: 0, enqueuedAt: 0, account: {} });
    assert.equal(cold.record(0).requiredLabels, cold.record(1).requiredLabels);
    assert.deepEqual(cold.record(1).requiredLabels, { a: "1", b: "2" });
  });
});
