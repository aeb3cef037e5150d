import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, MAX_DELAY_MS, Reason, TaskflowError, type TaskSpec } from "@taskflow/core";
import { TaskSpecSchema } from "@taskflow/proto";
import { specFromWire, taskToWire } from "./convert.js";
import { MAX_METADATA_ENTRIES, validateSpec } from "./validation.js";
import { spec } from "./control-plane.test.fixture.js";

const now = 1_700_000_000_000;
const limits = { maxPayloadBytes: 1024, now };

function refused(s: TaskSpec, message: RegExp, index = -1): void {
  assert.throws(
    () => validateSpec(s, limits, index),
    (err: unknown) => err instanceof TaskflowError && err.code === Code.INVALID_ARGUMENT && err.reason === Reason.INVALID_REQUEST && message.test(err.message),
  );
}

describe("validateSpec", () => {
  describe("metadata", () => {
    it("accepts 64 entries with keys up to 128 and values up to 1024 characters", () => {
      const metadata = Object.fromEntries(Array.from({ length: MAX_METADATA_ENTRIES }, (_, i) => [`${i}`.padEnd(128, "k"), "v".repeat(1024)]));
      validateSpec(spec("echo", { metadata }), limits);
      validateSpec(spec("echo", { metadata: { trace: "" } }), limits);
    });

    it("refuses a 65th entry, an empty or long key and a long value, naming the field", () => {
      const tooMany = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
      refused(spec("echo", { metadata: tooMany }), /^spec\.metadata has 65 entries; at most 64$/);
      refused(spec("echo", { metadata: { "": "x" } }), /^specs\[2\]\.metadata has an empty key$/, 2);
      refused(spec("echo", { metadata: { ["k".repeat(129)]: "x" } }), /^spec\.metadata key "k{40}…" is 129 characters; at most 128$/);
      refused(spec("echo", { metadata: { trace: "v".repeat(1025) } }), /^spec\.metadata\["trace"\] is 1025 characters; at most 1024$/);
    });
  });

  describe("deadline", () => {
    it("accepts epoch ms up to 365 days ahead, and a past deadline", () => {
      validateSpec(spec("echo", { deadline: now + MAX_DELAY_MS }), limits);
      validateSpec(spec("echo", { deadline: now - 1000 }), limits);
    });

    it("refuses a negative, fractional or far-future deadline, naming deadline_ms", () => {
      refused(spec("echo", { deadline: -1 }), /^spec\.deadline_ms must be epoch milliseconds \(0 or more\), got -1$/);
      refused(spec("echo", { deadline: 1.5 }), /deadline_ms must be epoch milliseconds/);
      // Seconds mistaken for ms would be in 1970; µs would be far ahead: refused.
      refused(spec("echo", { deadline: now * 1000 }), /^spec\.deadline_ms .* is more than 365 days ahead of the control node's clock/);
    });
  });
});

describe("specFromWire and taskToWire", () => {
  it("carry metadata and deadline_ms both ways; empty and 0 mean none", () => {
    const wire = create(TaskSpecSchema, { type: "echo", metadata: { trace: "t-1" }, deadlineMs: 1_767_225_600_000n });
    const core = specFromWire(wire);
    assert.deepEqual(core.metadata, { trace: "t-1" });
    assert.equal(core.deadline, 1_767_225_600_000);
    const none = specFromWire(create(TaskSpecSchema, { type: "echo" }));
    assert.equal("metadata" in none, false);
    assert.equal("deadline" in none, false);
    const rec = { ...core, id: "t", seq: 1, tenant: "default", clientId: "c", state: "queued" as const, attempt: 0, epoch: 0, workerId: "", createdAt: now, assignedAt: 0, startedAt: 0, finishedAt: 0, notBefore: 0, result: undefined, error: "", waitingReason: "", attempts: [] };
    const task = taskToWire(rec);
    assert.deepEqual(task.spec?.metadata, { trace: "t-1" });
    assert.equal(task.spec?.deadlineMs, 1_767_225_600_000n);
  });
});
