import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { ERROR_DOMAIN, encodeStatus, reasonFromStatusBytes } from "./status.js";
import { reasonFromTrailers, statusTrailers } from "./grpc.js";

describe("encodeStatus", () => {
  it("writes a google.rpc.Status whose one detail is an ErrorInfo, as any protobuf library reads it", () => {
    const status = fromBinary(StatusSchema, encodeStatus(8, "the task queue is full", "TASKFLOW_ERR_HEAP_FULL", { capacity: "2" }));
    assert.equal(status.code, 8);
    assert.equal(status.message, "the task queue is full");
    assert.equal(status.details.length, 1);
    assert.equal(status.details[0]!.typeUrl, "type.googleapis.com/google.rpc.ErrorInfo");
    const info = anyUnpack(status.details[0]!, ErrorInfoSchema)!;
    assert.deepEqual([info.reason, info.domain, { ...info.metadata }], ["TASKFLOW_ERR_HEAP_FULL", ERROR_DOMAIN, { capacity: "2" }]);
  });

  it("has no details without a reason", () => {
    assert.equal(fromBinary(StatusSchema, encodeStatus(13, "internal")).details.length, 0);
  });
});

describe("reasonFromStatusBytes", () => {
  it("round-trips the reason and metadata, and gives undefined for bytes that do not decode", () => {
    assert.deepEqual(reasonFromStatusBytes(encodeStatus(5, "gone", "TASKFLOW_ERR_TASK_NOT_FOUND", { taskId: "t" })), {
      reason: "TASKFLOW_ERR_TASK_NOT_FOUND",
      metadata: { taskId: "t" },
    });
    assert.equal(reasonFromStatusBytes(encodeStatus(5, "gone")), undefined);
    assert.equal(reasonFromStatusBytes(new Uint8Array([0x1a, 0xff, 0xff])), undefined);
  });
});

describe("statusTrailers and reasonFromTrailers", () => {
  it("send the details and the older taskflow-reason trailer, and read the details first", () => {
    const trailers = statusTrailers(3, "bad", "TASKFLOW_ERR_INVALID_REQUEST", { messageType: "x" });
    assert.ok(Buffer.isBuffer(trailers.get("grpc-status-details-bin")[0]));
    assert.deepEqual(trailers.get("taskflow-reason"), ["TASKFLOW_ERR_INVALID_REQUEST"]);
    assert.deepEqual(reasonFromTrailers(trailers), { reason: "TASKFLOW_ERR_INVALID_REQUEST", metadata: { messageType: "x" } });
    assert.equal(statusTrailers(13, "internal").get("taskflow-reason").length, 0);
    assert.equal(reasonFromTrailers(undefined), undefined);
  });
});
