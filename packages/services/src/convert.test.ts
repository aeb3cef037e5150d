import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeSpecAttributes, isPlainQueuedRecord } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { specFromWire } from "./convert.js";

describe("specFromWire", () => {
  it("leaves unset attributes absent: a plain submit stores no attributes", () => {
    // What a client that sets none of them sends: proto3's defaults ("" for the limit keys).
    const spec = specFromWire({ type: "echo", payload: new Uint8Array([1]), concurrencyKey: "", rateLimitKey: "", dependsOn: [], metadata: {} } as never);
    assert.equal(encodeSpecAttributes(spec), "");
    assert.ok(isPlainQueuedRecord(makeTaskRecord({ ...spec })), "a restart reads it only once");
  });

  it("keeps the limit keys that are set", () => {
    const spec = specFromWire({ type: "echo", concurrencyKey: "tenant-a", rateLimitKey: "api" } as never);
    assert.deepEqual([spec.concurrencyKey, spec.rateLimitKey], ["tenant-a", "api"]);
    assert.equal(encodeSpecAttributes(spec), '{"concurrencyKey":"tenant-a","rateLimitKey":"api"}');
  });
});
