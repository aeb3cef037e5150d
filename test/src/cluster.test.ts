import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskService, TaskState } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { eventually, startNode, type StartedNode } from "./harness.js";

describe("a single-host cluster (control node + 2 worker processes)", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 2, slots: 8 } });
  });
  after(async () => {
    assert.equal(await node.stop(), 0, "the node exits 0 on SIGTERM");
    // Its workers drained and left; none looked like a broken session.
    assert.doesNotMatch(node.logs(), /waiting for it to reconnect/);
  });

  it("runs 1,000 tasks, each exactly once, with correct results", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const ids = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.submit("echo", { i })));
      assert.equal(new Set(ids).size, 1000, "every task gets its own ID");
      const values = await Promise.all(ids.map((id) => client.result<{ i: number }>(id)));
      values.forEach((v, i) => assert.deepEqual(v, { i }));
      // Each ran once: one attempt, one assignment (epoch 1), and it succeeded.
      let seen = 0;
      let pageToken = "";
      do {
        const page = await client.list({ clientId: client.clientId, pageSize: 400, pageToken });
        for (const t of page.tasks) {
          assert.equal(t.state, TaskState.SUCCEEDED);
          assert.equal(t.attempt, 1, `task ${t.id} ran ${t.attempt} times`);
          assert.equal(t.epoch, 1n);
          assert.equal(t.attempts.length, 1);
          seen++;
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.equal(seen, 1000);
    } finally {
      client.close();
    }
  });

  it("gives two clients only their own results", async () => {
    const a = new TaskflowClient({ address: node.address, clientId: "client-a" });
    const b = new TaskflowClient({ address: node.address, clientId: "client-b" });
    // A raw subscriber on A's results stream records exactly what the server sends to A.
    const raw = createClient(TaskService, node.address);
    const seenByA = new Set<string>();
    const stream = raw.subscribeResults({ clientId: "client-a" });
    await new Promise<void>((resolve) => stream.once("data", () => resolve()));
    stream.on("data", (msg: { results: { taskId: string }[] }) => msg.results.forEach((r) => seenByA.add(r.taskId)));
    stream.on("error", () => {});
    try {
      const [idsA, idsB] = await Promise.all([
        Promise.all(Array.from({ length: 200 }, (_, i) => a.submit("echo", { from: "a", i }))),
        Promise.all(Array.from({ length: 200 }, (_, i) => b.submit("echo", { from: "b", i }))),
      ]);
      const [resA, resB] = await Promise.all([Promise.all(idsA.map((id) => a.result<{ from: string }>(id))), Promise.all(idsB.map((id) => b.result<{ from: string }>(id)))]);
      assert.ok(resA.every((r) => r.from === "a"));
      assert.ok(resB.every((r) => r.from === "b"));
      await eventually(() => (seenByA.size >= 200 ? true : undefined), 5000, "A's stream");
      assert.deepEqual([...seenByA].sort(), [...idsA].sort(), "A's stream carries exactly A's tasks");
    } finally {
      stream.cancel();
      raw.raw.close();
      a.close();
      b.close();
    }
  });

  it("reports a handler's failure after its attempts, with the error", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const id = await client.submit("fail", { message: "boom" }, { maxAttempts: 2 });
      const outcome = await client.outcome(id);
      assert.equal(outcome.state, "failed");
      assert.match(outcome.error, /boom/);
      assert.equal(outcome.attempt, 2);
      await assert.rejects(client.result(id), (err: { code: number; reason: string }) => err.code === 10 && err.reason === "TASKFLOW_ERR_TASK_FAILED");
      const task = await client.get(id);
      assert.equal(task.attempts.length, 2);
      assert.ok(task.attempts.every((a) => /boom/.test(a.error)));
    } finally {
      client.close();
    }
  });
});

describe("cancellation", () => {
  let node: StartedNode;
  before(async () => {
    // One slot, no prefetch: the second task must wait in the queue behind the first.
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1, slots: 1, prefetch: 0 } });
  });
  after(async () => {
    await node.stop();
  });

  it("cancels a queued task and a running one, and the slot is free again", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const running = await client.submit("sleep", { ms: 60_000 });
      await eventually(async () => ((await client.get(running)).state === TaskState.RUNNING ? true : undefined), 10_000, "running");
      const queued = await client.submit("echo", { x: 1 });
      const q = await client.get(queued);
      assert.equal(q.state, TaskState.QUEUED);
      assert.match(q.waitingReason, /all 1 worker\(s\) that can take it are busy/, "get says why it waits");

      const cancelledQueued = await client.cancel(queued, "not needed");
      assert.equal(cancelledQueued.state, TaskState.CANCELLED);
      assert.equal(cancelledQueued.error, "not needed");
      const cancelledRunning = await client.cancel(running);
      assert.equal(cancelledRunning.state, TaskState.CANCELLED);
      await assert.rejects(client.result(running), (err: { code: number }) => err.code === 1);

      // The worker aborted the sleeping handler, so its only slot takes the next task at once.
      const started = Date.now();
      assert.deepEqual(await client.run("echo", { after: "cancel" }), { after: "cancel" });
      assert.ok(Date.now() - started < 10_000);
      await assert.rejects(client.cancel(running), (err: { code: number }) => err.code === 9, "cancelling a finished task is FAILED_PRECONDITION");
    } finally {
      client.close();
    }
  });
});
