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

/**
 * The outcome() that never settled (issue 15): the results stream breaks while a submit is in
 * flight, the task finishes while no stream listens (its result is lost), and the submit's
 * acknowledgement arrives only after the client subscribed again and caught up. The client must
 * still ask the server about that task when it is awaited.
 */
describe("TaskflowClient across a results stream break", () => {
  const server = new grpc.Server();
  let address = "";
  const subscriptions: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>[] = [];
  let resubscribed: () => void = () => {};
  const getTasks: string[] = [];
  before(async () => {
    addService(server, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        subscriptions.push(call);
        call.on("error", () => {});
        call.write({ results: [] });
        if (subscriptions.length === 2) resubscribed();
      },
      submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
        call.on("data", (req: SubmitTaskStreamRequest) => {
          void (async () => {
            const again = new Promise<void>((resolve) => (resubscribed = resolve));
            // The results stream breaks; the task finishes meanwhile, its result goes nowhere.
            subscriptions[0]!.emit("error", { code: grpc.status.UNAVAILABLE, details: "the results stream broke" });
            await again;
            // The client's catch-up after subscribing again has run: only then the acknowledgement.
            await new Promise((r) => setTimeout(r, 100));
            call.write({ batchId: req.batchId, taskIds: ["done-while-unheard"] });
          })();
        });
        call.on("end", () => call.end());
        call.on("error", () => {});
      },
      getTask: (call: grpc.ServerUnaryCall<{ taskId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        getTasks.push(call.request.taskId);
        cb(null, { task: { id: call.request.taskId, state: TaskState.SUCCEEDED, result: Buffer.from(JSON.stringify("value")), attempt: 1 } });
      },
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  it("settles outcome() of a task acknowledged after the client caught up, whose result went out while no stream listened", async () => {
    const client = new TaskflowClient({ address });
    let timer: NodeJS.Timeout | undefined;
    try {
      const id = await client.submit("echo");
      assert.equal(subscriptions.length, 2, "the client subscribed again before the acknowledgement");
      const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("outcome() did not settle in 5 s")), 5000)));
      const outcome = await Promise.race([client.outcome(id), deadline]);
      assert.equal(outcome.state, "succeeded");
      assert.equal(outcome.value, "value");
      assert.deepEqual(getTasks, [id], "it asked the server about the task");
    } finally {
      clearTimeout(timer);
      client.close();
    }
  });
});

/** A control node that ends the first results stream before anything is sent on it (closing as the client subscribes). */
describe("TaskflowClient when the results stream ends before it is live", () => {
  const server = new grpc.Server();
  let address = "";
  let subscriptions = 0;
  before(async () => {
    addService(server, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        if (++subscriptions === 1) return call.end();
        call.write({ results: [] });
      },
      submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
        call.on("data", (req: SubmitTaskStreamRequest) => call.write({ batchId: req.batchId, taskIds: ["t1"] }));
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

  it("subscribes again and submits, rather than waiting forever", async () => {
    const client = new TaskflowClient({ address });
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("submit() did not settle in 5 s")), 5000)));
      assert.equal(await Promise.race([client.submit("echo"), deadline]), "t1");
      assert.equal(subscriptions, 2);
    } finally {
      clearTimeout(timer);
      client.close();
    }
  });
});

/**
 * The 16–64 outcome() calls of the failover chaos test that never settled: a submit batch whose
 * first send made its tasks on a leader that died before acknowledging it was sent again, and
 * the new leader answered its tasks as deduplicated (the request ID's). The client then followed
 * each on the server with a WatchTask that saw it ASSIGNED but never its end, while its result
 * came on the client's own results stream and was cached for nobody.
 */
describe("TaskflowClient with a resent batch the server reports deduplicated", () => {
  const server = new grpc.Server();
  let address = "";
  let results: grpc.ServerWritableStream<SubscribeResultsRequest, unknown> | undefined;
  let submitStreams = 0;
  let watches = 0;
  const getTasks: string[] = [];
  /** What GetTask answers: the task finished (a result that went out while no stream listened) or not yet. */
  let finished = true;
  let watching: () => void = () => {};
  before(async () => {
    addService(server, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        results = call;
        call.on("error", () => {});
        call.write({ results: [] });
      },
      submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
        const nth = ++submitStreams;
        call.on("data", (req: SubmitTaskStreamRequest) => {
          // The first send is taken (the task is made) but the node dies before acknowledging it.
          if (nth % 2 === 1) return call.emit("error", { code: grpc.status.UNAVAILABLE, details: "the leader died" });
          call.write({ batchId: req.batchId, taskIds: [`resent-${nth}`], deduplicated: [true] });
        });
        call.on("end", () => call.end());
        call.on("error", () => {});
      },
      // A watch that reports the task assigned and then nothing (as the failover test's did).
      watchTask: (call: grpc.ServerWritableStream<{ taskId: string }, unknown>) => {
        watches++;
        call.on("error", () => {});
        call.write({ task: { id: call.request.taskId, state: TaskState.ASSIGNED, attempt: 1 } });
        watching();
      },
      getTask: (call: grpc.ServerUnaryCall<{ taskId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        getTasks.push(call.request.taskId);
        const state = finished ? TaskState.SUCCEEDED : TaskState.RUNNING;
        cb(null, { task: { id: call.request.taskId, state, result: Buffer.from(JSON.stringify("value")), attempt: 1 } });
      },
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  /** `promise`, or a rejection naming what did not settle in 5 s. */
  async function within5s<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle in 5 s`)), 5000)));
    try {
      return await Promise.race([promise, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  it("asks the server about a task a resend found (it is ours), with GetTask rather than a watch", async () => {
    const client = new TaskflowClient({ address });
    try {
      finished = true;
      const id = await within5s(client.submit("echo"), "submit()");
      assert.equal(id, "resent-2", "the batch was sent again on a new stream");
      const outcome = await within5s(client.outcome(id), "outcome()");
      assert.equal(outcome.state, "succeeded");
      assert.equal(outcome.value, "value");
      assert.deepEqual(getTasks, [id]);
      assert.equal(watches, 0, "no watch was opened");
    } finally {
      client.close();
    }
  });

  it("settles the await of a task followed on the server when its result comes on the results stream", async () => {
    const client = new TaskflowClient({ address });
    try {
      const id = await within5s(client.submit("echo"), "submit()");
      // Another client's task (or one whose outcome left the cache) is followed with WatchTask.
      const other = `${id}-followed`;
      const opened = new Promise<void>((resolve) => (watching = resolve));
      const waited = client.outcome(other);
      await within5s(opened, "the watch");
      results!.write({ results: [{ taskId: other, state: TaskState.SUCCEEDED, result: Buffer.from(JSON.stringify(7)), error: "", attempt: 1 }] });
      const outcome = await within5s(waited, "outcome() of a followed task whose result came on the stream");
      assert.equal(outcome.state, "succeeded");
      assert.equal(outcome.value, 7);
    } finally {
      client.close();
    }
  });
});
