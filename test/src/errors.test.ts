/**
 * Errors carry their reason on the wire: a client that is not the SDK (raw grpc-js and the
 * generated protobuf-es types) reads the `google.rpc.Status` in `grpc-status-details-bin`; the SDK
 * and the CLI give the reason; a handler's UnrecoverableError fails its task without a retry.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { TaskflowClient } from "@taskflow/client";
import { Code, TaskflowError } from "@taskflow/core";
import {
  ErrorInfoSchema,
  GetTaskRequestSchema,
  GetTaskResponseSchema,
  StatusSchema,
  SubmitTaskRequestSchema,
  SubmitTaskResponseSchema,
  type ErrorInfo,
} from "@taskflow/proto";
import { cli, repoRoot, startNode, type StartedNode } from "./harness.js";

/** What a failed call ended with, as a plain gRPC client in any language would read it. */
interface Failure {
  code: number;
  details: string;
  status: MessageShape<typeof StatusSchema>;
  info: ErrorInfo | undefined;
  legacyReason: string | undefined;
}

function rawUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: string,
  input: I,
  output: O,
  request: MessageInitShape<I> | Buffer,
): Promise<Failure> {
  const bytes = Buffer.isBuffer(request) ? request : Buffer.from(toBinary(input, create(input, request)));
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      method,
      (b: Buffer) => b,
      (b: Buffer) => fromBinary(output, b),
      bytes,
      (err: grpc.ServiceError | null) => {
        if (!err) return reject(new Error(`${method} succeeded; a failure was expected`));
        const details = err.metadata.get("grpc-status-details-bin");
        assert.equal(details.length, 1, "one grpc-status-details-bin trailer");
        assert.ok(Buffer.isBuffer(details[0]), "the details trailer is binary");
        const decoded = fromBinary(StatusSchema, details[0] as Buffer);
        const any = decoded.details[0];
        const legacy = err.metadata.get("taskflow-reason")[0];
        resolve({
          code: err.code,
          details: err.details,
          status: decoded,
          info: any && anyUnpack(any, ErrorInfoSchema),
          legacyReason: typeof legacy === "string" ? legacy : undefined,
        });
      },
    );
  });
}

describe("errors with reasons, as a client that is not the SDK reads them", () => {
  let node: StartedNode;
  let raw: grpc.Client;
  before(async () => {
    // Control only, so submitted tasks stay queued and a heap of two fills up.
    node = await startNode({ roles: ["control"], control: { maxPayloadBytes: 1024, taskHeapCapacity: 2 } });
    raw = new grpc.Client(node.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    assert.equal(await node.stop(), 0);
  });

  function submitTask(request: MessageInitShape<typeof SubmitTaskRequestSchema> | Buffer) {
    return rawUnary(raw, "/taskflow.v1.TaskService/SubmitTask", SubmitTaskRequestSchema, SubmitTaskResponseSchema, request);
  }

  function assertStatus(f: Failure, code: number, reason: string): ErrorInfo {
    assert.equal(f.code, code, f.details);
    // The details repeat the call's status, as the gRPC rich error model asks.
    assert.equal(f.status.code, code);
    assert.equal(f.status.message, f.details);
    assert.equal(f.status.details.length, 1);
    assert.equal(f.status.details[0]!.typeUrl, "type.googleapis.com/google.rpc.ErrorInfo");
    assert.ok(f.info, "the details hold a google.rpc.ErrorInfo");
    assert.equal(f.info.reason, reason);
    assert.equal(f.info.domain, "taskflow.dev");
    assert.equal(f.legacyReason, reason, "the taskflow-reason trailer is still sent for older clients");
    return f.info;
  }

  it("an oversized payload: RESOURCE_EXHAUSTED, TASKFLOW_ERR_PAYLOAD_TOO_LARGE with its sizes", async () => {
    const f = await submitTask({ spec: { type: "echo", payload: new Uint8Array(1025) } });
    const info = assertStatus(f, status.RESOURCE_EXHAUSTED, "TASKFLOW_ERR_PAYLOAD_TOO_LARGE");
    assert.match(f.details, /payload is 1025 bytes, over the limit of 1024 \(control\.maxPayloadBytes\)/);
    assert.deepEqual({ ...info.metadata }, { index: "0", sizeBytes: "1025", limitBytes: "1024" });
  });

  it("an invalid argument: INVALID_ARGUMENT, TASKFLOW_ERR_INVALID_REQUEST naming the field", async () => {
    const f = await submitTask({ spec: { type: "" } });
    assertStatus(f, status.INVALID_ARGUMENT, "TASKFLOW_ERR_INVALID_REQUEST");
    assert.match(f.details, /spec\.type is required/);
  });

  it("bytes that are no message: INVALID_ARGUMENT, TASKFLOW_ERR_INVALID_REQUEST with the message type", async () => {
    const f = await submitTask(Buffer.from([0x0a, 0xff, 0xff]));
    const info = assertStatus(f, status.INVALID_ARGUMENT, "TASKFLOW_ERR_INVALID_REQUEST");
    assert.equal(info.metadata["messageType"], "taskflow.v1.SubmitTaskRequest");
  });

  it("an unknown task: NOT_FOUND, TASKFLOW_ERR_TASK_NOT_FOUND with its ID", async () => {
    const f = await rawUnary(raw, "/taskflow.v1.TaskService/GetTask", GetTaskRequestSchema, GetTaskResponseSchema, { taskId: "no-such-task" });
    const info = assertStatus(f, status.NOT_FOUND, "TASKFLOW_ERR_TASK_NOT_FOUND");
    assert.equal(info.metadata["taskId"], "no-such-task");
  });

  it("the SDK throws TaskflowErrors with the reason and metadata, from unary calls and submit batches", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      await assert.rejects(client.get("no-such-task"), (err: unknown) => {
        assert.ok(TaskflowError.is(err));
        assert.equal(err.code, Code.NOT_FOUND);
        assert.equal(err.reason, "TASKFLOW_ERR_TASK_NOT_FOUND");
        assert.equal(err.metadata["taskId"], "no-such-task");
        return true;
      });
      // Submits travel on the SubmitTaskStream: the refused batch's acknowledgement carries the status.
      await assert.rejects(client.submit("echo", "x".repeat(2000)), (err: unknown) => {
        assert.ok(TaskflowError.is(err));
        assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
        assert.equal(err.reason, "TASKFLOW_ERR_PAYLOAD_TOO_LARGE");
        assert.equal(err.metadata["limitBytes"], "1024");
        return true;
      });
    } finally {
      client.close();
    }
  });

  it("the CLI prints the code and the reason; a full heap is TASKFLOW_ERR_HEAP_FULL", async () => {
    const env = { TASKFLOW_ADDRESS: node.address };
    const unknown = await cli(["get", "no-such-task"], env);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /^taskflow: error: NOT_FOUND \(TASKFLOW_ERR_TASK_NOT_FOUND\): task no-such-task not found/m);
    // Fill the heap of two with tasks nothing runs (this node has no workers).
    const client = new TaskflowClient({ address: node.address });
    try {
      await client.submit("echo", 1);
      await client.submit("echo", 2);
      await assert.rejects(client.submit("echo", 3), (err: unknown) => {
        assert.ok(TaskflowError.is(err));
        assert.equal(err.reason, "TASKFLOW_ERR_HEAP_FULL");
        assert.equal(err.metadata["capacity"], "2");
        return true;
      });
    } finally {
      client.close();
    }
    const full = await cli(["submit", "echo", "3"], env);
    assert.equal(full.code, 5, full.stderr);
    assert.match(full.stderr, /^taskflow: error: RESOURCE_EXHAUSTED \(TASKFLOW_ERR_HEAP_FULL\): the task queue is full/m);
  });
});

describe("UnrecoverableError, thrown by a handler in a real worker process", () => {
  let node: StartedNode;
  before(async () => {
    // The handlers module imports the SDK by file URL: another copy of the module as far as the
    // handler knows, which the worker still recognises.
    const sdk = pathToFileURL(path.join(repoRoot, "packages/client/dist/index.js")).href;
    node = await startNode(
      { worker: { processes: 1, slots: 2, handlers: "handlers.mjs" } },
      {
        files: {
          "handlers.mjs": `import { UnrecoverableError } from ${JSON.stringify(sdk)};
            export default {
              fatal: async (payload, ctx) => { throw new UnrecoverableError("no order ID in " + JSON.stringify(payload) + " at attempt " + ctx.attempt); },
              flaky: () => { throw new Error("try again"); },
            };`,
        },
      },
    );
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
  });

  it("fails the task at its first attempt, whatever maxAttempts says, and records that attempt", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const id = await client.submit("fatal", { n: 1 }, { maxAttempts: 5 });
      const outcome = await client.outcome(id);
      assert.equal(outcome.state, "failed");
      assert.equal(outcome.attempt, 1);
      assert.match(outcome.error, /no order ID in \{"n":1\} at attempt 1/);
      const task = await client.get(id);
      assert.equal(task.attempts.length, 1);
      assert.match(task.attempts[0]!.error, /no order ID/);
      await assert.rejects(client.result(id), (err: unknown) => TaskflowError.is(err) && err.reason === "TASKFLOW_ERR_TASK_FAILED");
    } finally {
      client.close();
    }
  });

  it("leaves other errors retried as before", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const id = await client.submit("flaky", null, { maxAttempts: 2 });
      const outcome = await client.outcome(id);
      assert.equal(outcome.state, "failed");
      assert.equal(outcome.attempt, 2);
      assert.equal((await client.get(id)).attempts.length, 2);
    } finally {
      client.close();
    }
  });
});
