/**
 * The wire contract as a client that is not the SDK sees it: raw grpc-js calls built from the
 * proto descriptors alone, against real nodes with the durable (SQLite) store.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { ClusterService, ScheduleService, TaskService, TaskState, WorkerService, type SubmitTaskStreamResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, eventually, startNode, type StartedNode } from "./harness.js";
import { scrape, sum } from "./prometheus.js";


describe("SubmitTaskStream with the SQLite store", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  before(async () => {
    node = await startNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  it("acknowledges every batch before it ends a call the client half-closed", async () => {
    for (let trial = 0; trial < 10; trial++) {
      const call = tasks.submitTaskStream();
      const acks: SubmitTaskStreamResponse[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (ack: SubmitTaskStreamResponse) => acks.push(ack));
        call.on("error", reject);
        call.on("end", resolve);
      });
      // Everything at once, then the half-close: what a generated client in another language does.
      for (let batch = 1; batch <= 4; batch++) {
        call.write({ batchId: BigInt(batch), clientId: `trial-${trial}`, specs: [1, 2, 3, 4].map((n) => ({ type: "echo", payload: new TextEncoder().encode(String(n)) })) });
      }
      call.end();
      await ended;
      assert.deepEqual(
        acks.map((a) => a.batchId).sort(),
        [1n, 2n, 3n, 4n],
        `trial ${trial}: every batch acknowledged before the call ended`,
      );
      for (const ack of acks) {
        assert.equal(ack.errorCode, 0, ack.errorMessage);
        assert.equal(ack.taskIds.length, 4);
      }
    }
  });

  it("acknowledges a rejected batch too, and still ends the call OK", async () => {
    const call = tasks.submitTaskStream();
    const acks: SubmitTaskStreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (ack: SubmitTaskStreamResponse) => acks.push(ack));
      call.on("error", reject);
      call.on("end", resolve);
    });
    call.write({ batchId: 1n, specs: [{ type: "echo" }] });
    call.write({ batchId: 2n, specs: [{ type: "not a type" }] });
    call.write({ batchId: 3n, specs: [{ type: "echo" }] });
    call.end();
    await ended;
    const byId = new Map(acks.map((a) => [a.batchId, a]));
    assert.equal(byId.size, 3);
    assert.equal(byId.get(1n)!.taskIds.length, 1);
    assert.equal(byId.get(2n)!.errorCode, status.INVALID_ARGUMENT);
    assert.match(byId.get(2n)!.errorMessage, /1-128 characters/);
    assert.equal(byId.get(3n)!.taskIds.length, 1);
  });
});

describe("ListTasks paging with the SQLite store", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  const submitted: string[] = [];
  before(async () => {
    node = await startNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });
    tasks = createClient(TaskService, node.address);
    submitted.push(...(await tasks.submitTasks({ clientId: "pager", specs: Array.from({ length: 23 }, () => ({ type: "echo" })) })).taskIds);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  it("accepts its own next_page_token and pages through every task once", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await tasks.listTasks({ clientId: "pager", pageSize: 5, pageToken });
      assert.equal(page.totalSize, 23n);
      seen.push(...page.tasks.map((t) => t.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken && pages < 10);
    assert.equal(pages, 5);
    assert.deepEqual(seen, [...submitted].reverse());
  });

  it("still refuses a token it did not give out, with INVALID_ARGUMENT", async () => {
    await assert.rejects(tasks.listTasks({ pageToken: "garbage" }), code(status.INVALID_ARGUMENT, /page_token/));
    await assert.rejects(tasks.listTasks({ pageToken: "not a token!" }), code(status.INVALID_ARGUMENT, /page_token/));
  });

  it("lets the CLI continue with list --page-token", async () => {
    const env = { TASKFLOW_ADDRESS: node.address };
    const first = await cli(["list", "--client", "pager", "--limit", "20", "--json"], env);
    assert.equal(first.code, 0, first.stderr);
    const firstPage = JSON.parse(first.stdout) as { tasks: { id: string }[]; nextPageToken: string | null };
    assert.equal(firstPage.tasks.length, 20);
    assert.ok(firstPage.nextPageToken);
    const second = await cli(["list", "--client", "pager", "--limit", "20", "--page-token", firstPage.nextPageToken, "--json"], env);
    assert.equal(second.code, 0, second.stderr);
    const secondPage = JSON.parse(second.stdout) as { tasks: { id: string }[]; nextPageToken: string | null };
    assert.deepEqual(secondPage.tasks.map((t) => t.id), submitted.slice(0, 3).reverse());
    assert.equal(secondPage.nextPageToken, null);
  });
});

describe("uint32 fields of a task spec at their extremes", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  async function settled(taskId: string) {
    return eventually(async () => {
      const task = (await tasks.getTask({ taskId })).task!;
      return task.state === TaskState.SUCCEEDED || task.state === TaskState.FAILED ? task : undefined;
    }, 10_000, `task ${taskId} to finish`);
  }

  it("refuses a timeout_ms past what a timer can hold, naming the field and the maximum", async () => {
    for (const timeoutMs of [2_147_482_648, 2_147_483_647, 4_294_967_295]) {
      await assert.rejects(
        tasks.submitTask({ spec: { type: "echo", timeoutMs } }),
        code(status.INVALID_ARGUMENT, /spec\.timeout_ms must be at most 2000000000 \(about 23 days\), got \d+/),
      );
    }
    await assert.rejects(
      tasks.submitTasks({ specs: [{ type: "echo" }, { type: "echo", timeoutMs: 3_000_000_000 }] }),
      code(status.INVALID_ARGUMENT, /specs\[1\]\.timeout_ms must be at most 2000000000/),
    );
  });

  it("runs a task with the largest timeout_ms it accepts, without timing it out", async () => {
    const { taskId } = await tasks.submitTask({ spec: { type: "sleep", payload: new TextEncoder().encode('{"ms":300}'), timeoutMs: 2_000_000_000 } });
    const task = await settled(taskId);
    assert.equal(task.state, TaskState.SUCCEEDED, task.error);
  });

  it("takes the largest expected_duration_ms, a hint that sets no timer", async () => {
    const { taskId } = await tasks.submitTask({ spec: { type: "echo", expectedDurationMs: 4_294_967_295, maxAttempts: 100 } });
    const task = await settled(taskId);
    assert.equal(task.state, TaskState.SUCCEEDED, task.error);
    assert.equal(task.spec?.expectedDurationMs, 4_294_967_295);
  });
});

describe("malformed protobuf bytes", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
  });

  // A length-delimited field 1 claiming far more bytes than follow, a varint that never ends,
  // and field number 0: what a broken encoder or a truncated frame sends.
  const garbage = [
    Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
    Buffer.alloc(12, 0xff),
    Buffer.from([0x00, 0x01]),
  ];

  /** Sends `bytes` as the (first) request of `method` and returns the status the call ends with. */
  function callWith(client: grpc.Client, method: { name: string; methodKind: string }, typeName: string, bytes: Buffer): Promise<grpc.StatusObject> {
    const path = `/${typeName}/${method.name}`;
    const identity = (b: Buffer) => b;
    return new Promise((resolve) => {
      if (method.methodKind === "unary") {
        const call = client.makeUnaryRequest(path, identity, identity, bytes, () => {});
        call.on("status", resolve);
      } else if (method.methodKind === "server_streaming") {
        const call = client.makeServerStreamRequest(path, identity, identity, bytes);
        call.on("data", () => {});
        call.on("error", () => {});
        call.on("status", resolve);
      } else {
        const call = client.makeBidiStreamRequest(path, identity, identity);
        call.on("data", () => {});
        call.on("error", () => {});
        call.on("status", resolve);
        call.write(bytes);
        call.end();
      }
    });
  }

  it("answers INVALID_ARGUMENT on every RPC, and the node keeps serving", async () => {
    const client = new grpc.Client(node.address, grpc.credentials.createInsecure());
    const tasks = createClient(TaskService, node.address);
    try {
      for (const service of [TaskService, WorkerService, ClusterService, ScheduleService]) {
        for (const method of service.methods) {
          for (const bytes of garbage) {
            const ended = await callWith(client, method, service.typeName, bytes);
            assert.equal(
              ended.code,
              status.INVALID_ARGUMENT,
              `${service.typeName}/${method.name} with ${bytes.toString("hex")}: ${status[ended.code]} ${ended.details}`,
            );
            assert.match(ended.details, /request is not a valid .*message/, `${method.name}: ${ended.details}`);
          }
        }
      }
      // Counted as the client's fault, not the server's.
      const samples = await scrape(node.metricsUrl!);
      const calls = [TaskService, WorkerService, ClusterService, ScheduleService].reduce((n, s) => n + s.methods.length, 0) * garbage.length;
      assert.equal(sum(samples, "taskflow_grpc_server_errors_total", { code: "INVALID_ARGUMENT" }), calls);
      assert.equal(sum(samples, "taskflow_grpc_server_errors_total", { code: "INTERNAL" }), 0);
      // Still serving, and still running tasks.
      const { taskId } = await tasks.submitTask({ spec: { type: "echo", payload: new TextEncoder().encode('"ok"') } });
      const task = await eventually(async () => {
        const t = (await tasks.getTask({ taskId })).task!;
        return t.state === TaskState.SUCCEEDED ? t : undefined;
      }, 10_000, "the echo task after the garbage");
      assert.equal(new TextDecoder().decode(task.result), '"ok"');
    } finally {
      client.close();
      tasks.raw.close();
    }
  });
});

describe("the example handlers check their payload", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  async function finished(type: string, payload: string) {
    const { taskId } = await tasks.submitTask({ spec: { type, payload: new TextEncoder().encode(payload), maxAttempts: 1 } });
    return eventually(async () => {
      const t = (await tasks.getTask({ taskId })).task!;
      return t.state === TaskState.SUCCEEDED || t.state === TaskState.FAILED ? t : undefined;
    }, 10_000, `${type} ${payload} to finish`);
  }

  it("fails a sleep task whose ms is not a whole number of ms, saying why", async () => {
    for (const payload of ['{"ms":"abc"}', '{"ms":-5}', '{"ms":1e12}', '"abc"']) {
      const task = await finished("sleep", payload);
      assert.equal(task.state, TaskState.FAILED, `sleep ${payload}`);
      assert.match(task.error, /^sleep: (payload\.ms must be a whole number of milliseconds from 0 to 2147483647, got |the payload must be a JSON object)/, `sleep ${payload}`);
    }
    const ok = await finished("sleep", '{"ms":5}');
    assert.equal(ok.state, TaskState.SUCCEEDED);
    assert.equal(new TextDecoder().decode(ok.result), '{"slept":5}');
  });

  it("fails a cpu task with a bad ms and a fail task with a bad message the same way", async () => {
    const cpu = await finished("cpu", '{"ms":"abc"}');
    assert.equal(cpu.state, TaskState.FAILED);
    assert.match(cpu.error, /^cpu: payload\.ms must be a whole number/);
    const fail = await finished("fail", '{"message":{"not":"a string"}}');
    assert.equal(fail.state, TaskState.FAILED);
    assert.equal(fail.error, 'fail: payload.message must be a string, got {"not":"a string"}');
  });
});
