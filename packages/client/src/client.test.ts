import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TaskService, TaskState, type SubmitTaskStreamRequest, type SubscribeResultsRequest } from "@taskflow/proto";
import { addService } from "@taskflow/proto/grpc";
import { jsonCodec } from "./codec.js";
import { TaskflowClient } from "./client.js";

describe("jsonCodec", () => {
  it("round-trips JSON values and maps undefined to empty bytes", () => {
    for (const value of [{ a: [1, "x"] }, 3, "s", null, true]) assert.deepEqual(jsonCodec.decode(jsonCodec.encode(value)), value);
    assert.equal(jsonCodec.encode(undefined).byteLength, 0);
    assert.equal(jsonCodec.decode(new Uint8Array(0)), undefined);
  });
});

/**
 * A control node whose results overtake its submit replies (as a fast real one can): the
 * client must still hand each result to whoever awaits it.
 */
describe("TaskflowClient", () => {
  const server = new grpc.Server();
  let address = "";
  const batches: number[] = [];
  let results: grpc.ServerWritableStream<SubscribeResultsRequest, unknown> | undefined;
  let seq = 0;
  before(async () => {
    addService(server, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        results = call;
        call.write({ results: [] });
      },
      submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
        call.on("data", (req: SubmitTaskStreamRequest) => {
          batches.push(req.specs.length);
          const ids = req.specs.map(() => `t${++seq}`);
          // Results first, acknowledgement second.
          results!.write({
            results: req.specs.map((spec, i) => ({ taskId: ids[i], state: spec.type === "bad" ? TaskState.FAILED : TaskState.SUCCEEDED, result: spec.payload, error: spec.type === "bad" ? "boom" : "", attempt: 1 })),
          });
          setTimeout(() => call.write({ batchId: req.batchId, taskIds: ids }), 5);
        });
        call.on("end", () => call.end());
        call.on("error", () => {});
      },
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  it("batches submits made in one tick and delivers results that overtake their reply", async () => {
    const client = new TaskflowClient({ address, maxBatchSize: 100 });
    try {
      const values = await Promise.all(Array.from({ length: 250 }, (_, i) => client.run<{ i: number }>("echo", { i })));
      values.forEach((v, i) => assert.deepEqual(v, { i }));
      assert.deepEqual(batches, [100, 100, 50]);
    } finally {
      client.close();
    }
  });

  it("rejects result() of a failed task with TASKFLOW_ERR_TASK_FAILED, and outcome() reports it", async () => {
    const client = new TaskflowClient({ address });
    try {
      const id = await client.submit("bad");
      const outcome = await client.outcome(id);
      assert.equal(outcome.state, "failed");
      assert.equal(outcome.error, "boom");
      const again = await client.submit("bad");
      await assert.rejects(client.result(again), (err: { reason: string; code: number }) => err.reason === "TASKFLOW_ERR_TASK_FAILED" && err.code === 10);
    } finally {
      client.close();
    }
  });

  it("fails pending calls with CANCELLED when closed", async () => {
    const client = new TaskflowClient({ address });
    client.close();
    await assert.rejects(client.submit("echo"), (err: { code: number }) => err.code === 9);
  });
});
