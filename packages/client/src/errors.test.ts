import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core";
import { TaskService, statusMessage } from "@taskflow/proto";
import { addService, createClient, statusTrailers } from "@taskflow/proto/grpc";
import { UnrecoverableError, statusError, wireError } from "./errors.js";

describe("wireError", () => {
  // A real grpc-js server and client: the trailers go through HTTP/2 as in production.
  const server = new grpc.Server();
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  let trailers: () => grpc.Metadata = () => new grpc.Metadata();
  before(async () => {
    addService(server, TaskService, {
      getTask: (_call: unknown, callback: grpc.sendUnaryData<never>) =>
        callback({ code: grpc.status.NOT_FOUND, details: "task t1 not found", metadata: trailers() }),
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    tasks = createClient(TaskService, `127.0.0.1:${port}`);
  });
  after(() => {
    tasks.raw.close();
    server.forceShutdown();
  });

  async function failure(): Promise<TaskflowError> {
    try {
      await tasks.getTask({ taskId: "t1" });
    } catch (err) {
      return wireError(err);
    }
    throw new Error("the call succeeded");
  }

  it("reads the reason and metadata from the google.rpc.Status details", async () => {
    trailers = () => statusTrailers(Code.NOT_FOUND, "task t1 not found", "TASKFLOW_ERR_TASK_NOT_FOUND", { taskId: "t1" });
    const e = await failure();
    assert.equal(e.code, Code.NOT_FOUND);
    assert.equal(e.message, "task t1 not found");
    assert.equal(e.reason, "TASKFLOW_ERR_TASK_NOT_FOUND");
    assert.deepEqual({ ...e.metadata }, { taskId: "t1" });
  });

  it("falls back to the taskflow-reason trailer of an older control node", async () => {
    trailers = () => {
      const m = new grpc.Metadata();
      m.set("taskflow-reason", "TASKFLOW_ERR_TASK_NOT_FOUND");
      return m;
    };
    const e = await failure();
    assert.equal(e.reason, "TASKFLOW_ERR_TASK_NOT_FOUND");
    assert.deepEqual({ ...e.metadata }, {});
  });

  it("keeps code and message when the details are missing or do not decode", async () => {
    trailers = () => {
      const m = new grpc.Metadata();
      m.set("grpc-status-details-bin", Buffer.from([0x1a, 0xff, 0xff]));
      return m;
    };
    const e = await failure();
    assert.equal(e.code, Code.NOT_FOUND);
    assert.equal(e.message, "task t1 not found");
    assert.equal(e.reason, undefined);
  });

  it("passes TaskflowErrors and plain errors through as TaskflowError.from does", () => {
    const own = new TaskflowError(Code.ABORTED, "x", { reason: "TASKFLOW_ERR_TASK_FAILED" });
    assert.equal(wireError(own), own);
    assert.equal(wireError(new Error("boom"), Code.UNAVAILABLE).code, Code.UNAVAILABLE);
  });
});

describe("statusError", () => {
  it("reads the ErrorInfo of a status sent inside a message", () => {
    const e = statusError(Code.RESOURCE_EXHAUSTED, "too big", statusMessage(Code.RESOURCE_EXHAUSTED, "too big", "TASKFLOW_ERR_PAYLOAD_TOO_LARGE", { limitBytes: "1024" }));
    assert.equal(e.reason, "TASKFLOW_ERR_PAYLOAD_TOO_LARGE");
    assert.equal(e.metadata["limitBytes"], "1024");
    assert.equal(statusError(Code.INTERNAL, "no status", undefined).reason, undefined);
  });
});

describe("UnrecoverableError", () => {
  it("is recognised, also when made by another copy of the SDK", () => {
    assert.ok(UnrecoverableError.is(new UnrecoverableError("bad input")));
    const foreign = Object.assign(new Error("from another copy"), { [Symbol.for("taskflow:UnrecoverableError")]: true });
    assert.ok(UnrecoverableError.is(foreign));
    assert.ok(!UnrecoverableError.is(new Error("retry me")));
    assert.ok(!UnrecoverableError.is(undefined));
  });
});
