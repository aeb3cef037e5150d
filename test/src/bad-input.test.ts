import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient } from "@taskflow/client";
import { ClusterService, TaskState, WorkerService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { code, eventually } from "./harness.js";
import { rawTaskServiceNode } from "./raw-task-service.js";

describe("bad input gets a precise status and loses nothing", () => {
  const raw = rawTaskServiceNode({
    roles: ["control", "worker"],
    control: { maxPayloadBytes: 1024, taskHeapCapacity: 50 },
    worker: { processes: 1, slots: 2 },
  });
  let cluster: ReturnType<typeof createClient<typeof ClusterService.method>>;
  before(() => {
    cluster = createClient(ClusterService, raw.node.address);
  });
  after(() => {
    cluster.raw.close();
  });

  it("rejects a submit without a type", async () => {
    await assert.rejects(raw.tasks.submitTask({ spec: { payload: new Uint8Array(1) } }), code(status.INVALID_ARGUMENT, /spec\.type is required/));
    await assert.rejects(raw.tasks.submitTask({}), code(status.INVALID_ARGUMENT, /type/));
  });

  it("rejects a malformed type and an oversize payload", async () => {
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "no spaces please" } }), code(status.INVALID_ARGUMENT, /1-128 characters/));
    await assert.rejects(
      raw.tasks.submitTask({ spec: { type: "echo", payload: new Uint8Array(2048) } }),
      code(status.RESOURCE_EXHAUSTED, /2048 bytes, over the limit of 1024 \(control\.maxPayloadBytes\)/),
    );
  });

  it("rejects a batch as a whole when one spec is bad, and accepts none of it", async () => {
    const initial = await cluster.getClusterState({});
    const countBefore = initial.queued + initial.succeeded;
    await assert.rejects(
      raw.tasks.submitTasks({ specs: [{ type: "echo" }, { type: "" }] }),
      code(status.INVALID_ARGUMENT, /specs\[1\]\.type is required/),
    );
    await assert.rejects(raw.tasks.submitTasks({ specs: [] }), code(status.INVALID_ARGUMENT, /at least one task/));
    const afterState = await cluster.getClusterState({});
    assert.equal(afterState.queued + afterState.succeeded, countBefore);
    // The SDK's bulk path (one SubmitTaskStream) reports a bad batch with the same status.
    const client = new TaskflowClient({ address: raw.node.address });
    try {
      await assert.rejects(client.submit("bad type!"), (err: { code: number; message: string }) => err.code === status.INVALID_ARGUMENT && /1-128 characters/.test(err.message));
      assert.deepEqual(await client.run("echo", "after a bad batch"), "after a bad batch");
    } finally {
      client.close();
    }
  });

  it("answers NOT_FOUND for unknown task IDs and INVALID_ARGUMENT for empty ones", async () => {
    await assert.rejects(raw.tasks.getTask({ taskId: "no-such-task" }), code(status.NOT_FOUND, /no-such-task not found/));
    await assert.rejects(raw.tasks.getTask({ taskId: "" }), code(status.INVALID_ARGUMENT, /task_id is required/));
    await assert.rejects(raw.tasks.cancelTask({ taskId: "no-such-task" }), code(status.NOT_FOUND));
    await assert.rejects(cluster.drainWorker({ workerId: "no-such-worker" }), code(status.NOT_FOUND));
    const watch = raw.tasks.watchTask({ taskId: "no-such-task" });
    await assert.rejects(
      new Promise((resolve, reject) => {
        watch.on("data", resolve);
        watch.on("error", reject);
      }),
      code(status.NOT_FOUND),
    );
  });

  it("rejects bad list paging and an empty results subscription", async () => {
    await assert.rejects(raw.tasks.listTasks({ pageSize: 5000 }), code(status.INVALID_ARGUMENT, /page_size must be at most 1000/));
    await assert.rejects(raw.tasks.listTasks({ pageToken: "garbage" }), code(status.INVALID_ARGUMENT, /page_token/));
    const sub = raw.tasks.subscribeResults({ clientId: "" });
    await assert.rejects(
      new Promise((resolve, reject) => {
        sub.on("data", resolve);
        sub.on("error", reject);
      }),
      code(status.INVALID_ARGUMENT, /client_id is required/),
    );
  });

  it("keeps a task no worker serves queued, with the reason visible in get", async () => {
    const { taskId } = await raw.tasks.submitTask({ spec: { type: "nobody-serves-this" } });
    const task = await eventually(async () => {
      const t = (await raw.tasks.getTask({ taskId })).task!;
      return t.waitingReason ? t : undefined;
    }, 5000, "a waiting reason");
    assert.equal(task.state, TaskState.QUEUED);
    assert.match(task.waitingReason, /no worker serves task type "nobody-serves-this"/);
    // The rest of the queue is not blocked behind it.
    const client = new TaskflowClient({ address: raw.node.address });
    try {
      assert.deepEqual(await client.run("echo", { still: "flows" }), { still: "flows" });
    } finally {
      client.close();
    }
    await raw.tasks.cancelTask({ taskId });
  });

  it("answers RESOURCE_EXHAUSTED when the task queue is full, and nothing is lost", async () => {
    const accepted: string[] = [];
    let rejected: unknown;
    for (let i = 0; i < 60 && !rejected; i++) {
      try {
        accepted.push((await raw.tasks.submitTask({ spec: { type: "nobody-serves-this" } })).taskId);
      } catch (err) {
        rejected = err;
      }
    }
    assert.ok(rejected, "the 51st queued task is refused");
    code(status.RESOURCE_EXHAUSTED, /task queue is full .*control\.taskHeapCapacity/)(rejected);
    assert.equal(accepted.length, 50);
    for (const taskId of accepted) {
      const t = (await raw.tasks.getTask({ taskId })).task!;
      assert.equal(t.state, TaskState.QUEUED);
      await raw.tasks.cancelTask({ taskId });
    }
  });

  it("rejects a worker session that does not start with hello", async () => {
    const workers = createClient(WorkerService, raw.node.address);
    try {
      const session = workers.session();
      const failed = new Promise((resolve, reject) => {
        session.on("data", resolve);
        session.on("error", reject);
      });
      session.write({ kind: { case: "heartbeat", value: { running: 0 } } });
      await assert.rejects(failed, code(status.INVALID_ARGUMENT, /first message of a session must be hello/));
      const second = workers.session();
      const failed2 = new Promise((resolve, reject) => {
        second.on("data", resolve);
        second.on("error", reject);
      });
      second.write({ kind: { case: "hello", value: { workerId: "w", slots: 0, taskTypes: ["echo"] } } });
      await assert.rejects(failed2, code(status.INVALID_ARGUMENT, /slots must be at least 1/));
    } finally {
      workers.raw.close();
    }
  });
});
