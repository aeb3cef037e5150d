/**
 * Awaiting a task's end across a failover (issue 15), over real gRPC with scripted control nodes:
 * a task followed with WatchTask (deduplicated, or not this client's) and a task this client
 * retried must settle, once, whatever the node does meanwhile.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Code, Reason } from "@taskflow/core";
import { TaskService, TaskState, type SubmitTaskStreamRequest, type SubscribeResultsRequest } from "@taskflow/proto";
import { addService, statusTrailers } from "@taskflow/proto/grpc";
import { TaskflowClient } from "./client.js";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

async function listen(server: grpc.Server): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

/** `p`, or a rejection naming `what` after `ms`: a hang fails the test instead of stalling it. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle in ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Results stream and submits of a node that answers every submit as a deduplicated task `dup`. */
function dedupingNode() {
  return {
    subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
      call.on("error", () => {});
      call.write({ results: [] });
    },
    submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
      call.on("data", (req: SubmitTaskStreamRequest) => call.write({ batchId: req.batchId, taskIds: ["dup"], deduplicated: [true] }));
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  };
}

/**
 * Two nodes: A leads, then dies under every watch (the stream breaks with UNAVAILABLE); B, the
 * next address, first answers NOT_LEADER naming itself (elected, still loading), then serves the
 * watch: the task's current state (RUNNING, already reported by A) and then SUCCEEDED.
 */
describe("a watched task across a failover", () => {
  const a = new grpc.Server();
  const b = new grpc.Server();
  let addresses: string[] = [];
  let watchesOnB = 0;
  before(async () => {
    const running = { id: "dup", state: TaskState.RUNNING, attempt: 1, workerId: "w1", epoch: 3n };
    addService(a, TaskService, {
      ...dedupingNode(),
      watchTask: (call: grpc.ServerWritableStream<{ taskId: string }, unknown>) => {
        call.write({ task: running });
        setTimeout(() => call.emit("error", { code: grpc.status.UNAVAILABLE, details: "the leader died" }), 20);
      },
    } as never);
    addService(b, TaskService, {
      ...dedupingNode(),
      watchTask: (call: grpc.ServerWritableStream<{ taskId: string }, unknown>) => {
        if (++watchesOnB === 1) {
          const metadata = statusTrailers(Code.UNAVAILABLE, "standby", Reason.NOT_LEADER, { leader: addresses[1]! });
          return call.emit("error", { code: grpc.status.UNAVAILABLE, details: "elected, loading its tasks", metadata });
        }
        call.write({ task: running });
        setTimeout(() => {
          call.write({ task: { ...running, state: TaskState.SUCCEEDED, result: json("done") } });
          call.end();
        }, 20);
      },
    } as never);
    addresses = [await listen(a), await listen(b)];
  });
  after(() => {
    a.forceShutdown();
    b.forceShutdown();
  });

  it("outcome() of a deduplicated task resumes the watch on the new leader instead of rejecting", async () => {
    watchesOnB = 0;
    const client = new TaskflowClient({ address: addresses });
    try {
      const id = await client.submit("echo", {}, { idempotencyKey: "k" });
      assert.equal(id, "dup");
      const outcome = await within(client.outcome(id), 5000, "outcome() of a deduplicated task");
      assert.equal(outcome.state, "succeeded");
      assert.equal(outcome.value, "done");
      assert.equal(watchesOnB, 2, "refused once (still loading), then served");
    } finally {
      client.close();
    }
  });

  it("watch() yields each state once across the break, the final one last", async () => {
    watchesOnB = 0;
    const client = new TaskflowClient({ address: addresses });
    try {
      const states: string[] = [];
      await within(
        (async () => {
          for await (const task of client.watch("dup")) states.push(TaskState[task.state]);
        })(),
        5000,
        "watch()",
      );
      assert.deepEqual(states, ["RUNNING", "SUCCEEDED"], "RUNNING, sent again by the new leader, is not repeated");
    } finally {
      client.close();
    }
  });

  it("watch() stops when its signal aborts while the leader cannot be reached", async () => {
    const client = new TaskflowClient({ address: [addresses[0]!, addresses[0]!.replace(/:\d+$/, ":1")] });
    try {
      const ac = new AbortController();
      const states: TaskState[] = [];
      const watching = (async () => {
        for await (const task of client.watch("dup", ac.signal)) states.push(task.state);
      })();
      setTimeout(() => ac.abort(), 300);
      await within(watching, 5000, "an aborted watch()");
      assert.deepEqual(states, [TaskState.RUNNING], "the state A sent, once, though A broke the watch again and again");
    } finally {
      client.close();
    }
  });

  it("outcome() of a followed task stops at its signal's timeout with DEADLINE_EXCEEDED", async () => {
    const client = new TaskflowClient({ address: [addresses[0]!, addresses[0]!.replace(/:\d+$/, ":1")] });
    try {
      const started = Date.now();
      await assert.rejects(within(client.outcome("dup", { signal: AbortSignal.timeout(300) }), 5000, "outcome() with a timeout"), (err: { code: number }) => err.code === Code.DEADLINE_EXCEEDED);
      assert.ok(Date.now() - started >= 250, "it waited for the timeout, retrying the watch meanwhile");
    } finally {
      client.close();
    }
  });

  it("outcome() of a followed task fails with CANCELLED when the client closes", async () => {
    const client = new TaskflowClient({ address: [addresses[0]!, addresses[0]!.replace(/:\d+$/, ":1")] });
    const waiting = client.outcome("dup");
    await new Promise((r) => setTimeout(r, 100));
    client.close();
    await assert.rejects(within(waiting, 5000, "outcome() after close()"), (err: { code: number }) => err.code === Code.CANCELLED);
  });
});

/**
 * retry() of this client's own tasks, and the races of a submit: the results stream breaks
 * during the RetryTasks call, or the new result overtakes its reply.
 */
describe("outcome() of a task this client retried", () => {
  const server = new grpc.Server();
  let address = "";
  const subscriptions: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>[] = [];
  let resubscribed: () => void = () => {};
  const getTasks: string[] = [];
  let scenario: "break" | "overtake" | "plain" = "plain";
  before(async () => {
    addService(server, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        subscriptions.push(call);
        call.on("error", () => {});
        call.write({ results: [] });
        resubscribed();
      },
      submitTaskStream: (call: grpc.ServerDuplexStream<SubmitTaskStreamRequest, unknown>) => {
        call.on("data", (req: SubmitTaskStreamRequest) => {
          // The first attempt failed: its result comes, and nobody awaits it yet.
          call.write({ batchId: req.batchId, taskIds: ["r1"] });
          setTimeout(() => subscriptions.at(-1)!.write({ results: [{ taskId: "r1", state: TaskState.FAILED, error: "first", attempt: 1 }] }), 5);
        });
        call.on("end", () => call.end());
        call.on("error", () => {});
      },
      retryTasks: (call: grpc.ServerUnaryCall<{ taskIds: string[] }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const clientId = call.metadata.get("x-client")[0] as string;
        const reply = () => cb(null, { tasks: call.request.taskIds.map((id) => ({ id, clientId, state: TaskState.QUEUED })) });
        const result = { taskId: call.request.taskIds[0], state: TaskState.SUCCEEDED, result: json("second"), attempt: 1 };
        if (scenario === "break") {
          void (async () => {
            const again = new Promise<void>((resolve) => (resubscribed = resolve));
            // The results stream breaks; the retried task finishes meanwhile, its result goes nowhere.
            subscriptions.at(-1)!.emit("error", { code: grpc.status.UNAVAILABLE, details: "the results stream broke" });
            await again;
            resubscribed = () => {};
            // The client's catch-up after subscribing again has run: only then the reply.
            await new Promise((r) => setTimeout(r, 100));
            reply();
          })();
        } else if (scenario === "overtake") {
          subscriptions.at(-1)!.write({ results: [result] });
          setTimeout(reply, 50);
        } else {
          reply();
        }
      },
      getTask: (call: grpc.ServerUnaryCall<{ taskId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        getTasks.push(call.request.taskId);
        cb(null, { task: { id: call.request.taskId, state: TaskState.SUCCEEDED, result: json("second"), attempt: 1 } });
      },
      watchTask: (call: grpc.ServerWritableStream<{ taskId: string }, unknown>) => {
        call.write({ task: { id: call.request.taskId, state: TaskState.SUCCEEDED, result: json("second"), attempt: 1 } });
        call.end();
      },
    } as never);
    address = await listen(server);
  });
  after(() => server.forceShutdown());

  /** A client whose calls name it in the `x-client` metadata, so the scripted RetryTasks replies with its tasks. */
  function clientNamed(clientId: string): TaskflowClient {
    const named: grpc.Interceptor = (options, next) =>
      new grpc.InterceptingCall(next(options), {
        start(metadata, listener, go) {
          metadata.set("x-client", clientId);
          go(metadata, listener);
        },
      });
    return new TaskflowClient({ address, clientId, channelOptions: { interceptors: [named] } as grpc.ChannelOptions });
  }

  /** Submits r1, waits until its first (failed) result is here, retries it in `how`, and awaits it. */
  async function retryAndAwait(how: typeof scenario, clientId: string) {
    const client = clientNamed(clientId);
    try {
      scenario = "plain";
      const id = await client.submit("echo");
      await new Promise((r) => setTimeout(r, 50));
      scenario = how;
      getTasks.length = 0;
      const [retried] = await client.retry(id);
      assert.equal(retried!.clientId, clientId);
      return await within(client.outcome(id), 5000, `outcome() of a task retried (${how})`);
    } finally {
      client.close();
    }
  }

  it("settles when the results stream broke during the call and the result went out meanwhile", async () => {
    const outcome = await retryAndAwait("break", "c-break");
    assert.equal(outcome.state, "succeeded");
    assert.equal(outcome.value, "second");
    assert.deepEqual(getTasks, ["r1"], "it asked the server about the task");
  });

  it("settles when the new result overtook the reply (it is not dropped as the old one)", async () => {
    const outcome = await retryAndAwait("overtake", "c-overtake");
    assert.equal(outcome.state, "succeeded");
    assert.equal(outcome.value, "second");
  });

  it("outcome() of an own task stops when its signal aborts, and a later await still gets the result", async () => {
    const client = clientNamed("c-abort");
    try {
      scenario = "plain";
      const id = await client.submit("echo");
      const ac = new AbortController();
      const stopped = client.outcome(id, { signal: ac.signal });
      ac.abort();
      await assert.rejects(stopped, (err: { code: number }) => err.code === Code.CANCELLED);
      const outcome = await within(client.outcome(id), 5000, "outcome() after an aborted one");
      assert.equal(outcome.state, "failed");
      assert.equal(outcome.error, "first");
    } finally {
      client.close();
    }
  });

  it("an aborted await leaves the others on the same task waiting", async () => {
    const client = clientNamed("c-abort-two");
    try {
      scenario = "plain";
      const id = await client.submit("echo");
      const ac = new AbortController();
      const kept = client.outcome(id);
      const stopped = client.outcome(id, { signal: ac.signal });
      ac.abort();
      await assert.rejects(stopped, (err: { code: number }) => err.code === Code.CANCELLED);
      assert.equal((await within(kept, 5000, "the other outcome()")).error, "first");
    } finally {
      client.close();
    }
  });

  it("follows the task on the server when this client has no results stream yet", async () => {
    const client = clientNamed("c-fresh");
    try {
      scenario = "plain";
      await client.retry("r2");
      const outcome = await within(client.outcome("r2"), 5000, "outcome() of a task retried by a client without a results stream");
      assert.equal(outcome.state, "succeeded");
    } finally {
      client.close();
    }
  });
});

/**
 * flow() during a failover: A is a standby naming B; B was just elected and refuses its first
 * SubmitFlow with NOT_LEADER naming itself (still loading), then serves it.
 */
describe("flow() across a failover", () => {
  const a = new grpc.Server();
  const b = new grpc.Server();
  let addresses: string[] = [];
  const flowRequests: string[] = [];
  before(async () => {
    const refuse = (leader: () => string) => (call: { emit?: (e: string, v: unknown) => void }, cb?: grpc.sendUnaryData<unknown>) => {
      const err = { code: grpc.status.UNAVAILABLE, details: "standby", metadata: statusTrailers(Code.UNAVAILABLE, "standby", Reason.NOT_LEADER, { leader: leader() }) };
      if (cb) cb(err as grpc.ServiceError);
      else call.emit!("error", err);
    };
    addService(a, TaskService, { subscribeResults: refuse(() => addresses[1]!), submitFlow: refuse(() => addresses[1]!) } as never);
    addService(b, TaskService, {
      subscribeResults: (call: grpc.ServerWritableStream<SubscribeResultsRequest, unknown>) => {
        call.on("error", () => {});
        call.write({ results: [] });
      },
      submitFlow: (call: grpc.ServerUnaryCall<{ requestId: string; nodes: unknown[] }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        flowRequests.push(call.request.requestId);
        if (flowRequests.length === 1) return refuse(() => addresses[1]!)(call as never, cb);
        cb(null, { taskIds: call.request.nodes.map((_, i) => `f${i}`), deduplicated: call.request.nodes.map(() => false) });
      },
    } as never);
    addresses = [await listen(a), await listen(b)];
  });
  after(() => {
    a.forceShutdown();
    b.forceShutdown();
  });

  it("subscribes and submits on the new leader, sending the same request again", async () => {
    const client = new TaskflowClient({ address: addresses });
    try {
      const ids = await within(client.flow({ first: { type: "x" }, second: { type: "y", dependsOn: ["first"] } }), 5000, "flow()");
      assert.deepEqual(ids, { first: "f0", second: "f1" });
      assert.equal(flowRequests.length, 2);
      assert.equal(flowRequests[0], flowRequests[1], "the retry carries the same request ID");
    } finally {
      client.close();
    }
  });
});
