/** Real crashes: kill -9 of worker processes and of the control node; timeouts, retries, drain. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { ClusterService, TaskService, TaskState, WorkerService, timestampMs, type SessionResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";

/** Records every result the server sends on a client's stream, to catch duplicates. */
async function recordResults(address: string, clientId: string) {
  const raw = createClient(TaskService, address);
  const counts = new Map<string, number>();
  const stream = raw.subscribeResults({ clientId });
  await new Promise<void>((resolve) => stream.once("data", () => resolve()));
  stream.on("data", (msg: { results: { taskId: string }[] }) => {
    for (const r of msg.results) counts.set(r.taskId, (counts.get(r.taskId) ?? 0) + 1);
  });
  stream.on("error", () => {});
  return {
    counts,
    close() {
      stream.cancel();
      raw.raw.close();
    },
  };
}

describe("kill -9 of worker processes during a run", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ worker: { processes: 2, slots: 8, prefetch: 8 } });
  });
  after(async () => {
    await node.stop();
  });

  it("completes every one of 10,000 tasks, delivers each result once, and records the attempts", async () => {
    const client = new TaskflowClient({ address: node.address, clientId: "chaos" });
    const recorder = await recordResults(node.address, "chaos");
    try {
      const ids = await Promise.all(Array.from({ length: 10_000 }, (_, i) => client.submit("sleep", { ms: 10, i }, { maxAttempts: 20 })));
      const results = Promise.all(ids.map((id) => client.outcome(id)));
      let kills = 0;
      while (kills < 20) {
        await new Promise((r) => setTimeout(r, 250));
        const pids = node.workerPids();
        if (pids.length === 0) continue;
        process.kill(pids[Math.floor(Math.random() * pids.length)]!, "SIGKILL");
        kills++;
      }
      const outcomes = await results;
      const failed = outcomes.filter((o) => o.state !== "succeeded");
      assert.equal(failed.length, 0, `failed: ${JSON.stringify(failed.slice(0, 3))}`);
      await eventually(() => (recorder.counts.size === 10_000 ? true : undefined), 10_000, "every result on the stream");
      const duplicates = [...recorder.counts.entries()].filter(([, n]) => n > 1);
      assert.deepEqual(duplicates, [], "no result delivered twice");
      // Some tasks were on a killed worker: they ran again, and their attempts say why.
      const retried = outcomes.filter((o) => o.attempt > 1);
      assert.ok(retried.length > 0, "the kills hit running tasks");
      const sample = await client.get(retried[0]!.taskId);
      assert.equal(sample.attempts.length, sample.attempt);
      assert.ok(sample.attempts.slice(0, -1).every((a) => a.error.length > 0), "each lost attempt has its reason");
    } finally {
      recorder.close();
      client.close();
    }
  });
});

describe("kill -9 of the control node with the durable store", () => {
  it("completes every acknowledged task after a restart", async () => {
    const dir = tempDir();
    const port = await freePort();
    const controlConfig = {
      roles: ["control" as const],
      control: { port },
      store: { kind: "sqlite" as const, path: "tasks.db" },
    };
    let control = await startNode(controlConfig, { dir });
    const workers = await startNode({ roles: ["worker"], worker: { processes: 2, controlAddress: `127.0.0.1:${port}` } }, { dir: tempDir() });
    const acknowledged: string[] = [];
    const submitter = new TaskflowClient({ address: control.address });
    try {
      const pending: Promise<void>[] = [];
      for (let i = 0; i < 30; i++) {
        const batch = Array.from({ length: 100 }, (_, j) => ({ type: "sleep", payload: { ms: 5, n: i * 100 + j } }));
        pending.push(
          submitter.submitMany(batch).then(
            (ids) => void acknowledged.push(...ids),
            (err: unknown) => assert.fail(`a submit failed: ${String(err)}`),
          ),
        );
        if (i === 15) {
          // Crash mid-run: some batches acknowledged, later ones in flight or not yet sent.
          await eventually(() => (acknowledged.length >= 500 ? true : undefined), 20_000, "acknowledgements before the crash");
          await control.kill9();
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      // The SDK resends what the crash cut off (same request IDs) once the node is back.
      control = await startNode(controlConfig, { dir });
      await Promise.all(pending);
      assert.equal(acknowledged.length, 3000, "every submit was acknowledged, also those the crash cut off");
      assert.equal(new Set(acknowledged).size, 3000);
      const checker = new TaskflowClient({ address: control.address });
      try {
        // Every acknowledged task is known to the restarted node and reaches SUCCEEDED.
        let open = [...acknowledged];
        await eventually(async () => {
          const still: string[] = [];
          for (const id of open) {
            const task = await checker.get(id);
            if (task.state !== TaskState.SUCCEEDED) {
              assert.notEqual(task.state, TaskState.FAILED, `task ${id} failed: ${task.error}`);
              still.push(id);
            }
          }
          open = still;
          return open.length === 0 ? true : undefined;
        }, 30_000, "every acknowledged task to succeed");
      } finally {
        checker.close();
      }
    } finally {
      submitter.close();
      await workers.stop();
      await control.stop();
    }
  });
});

describe("timeouts, retries, idempotency, drain and liveness", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({
      worker: { processes: 2, slots: 2, prefetch: 0 },
      liveness: { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1000, ackTimeoutMs: 300 },
    });
  });
  after(async () => {
    await node.stop();
  });

  it("times a task out on the worker, retries it with backoff, and fails it with the last reason", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const id = await client.submit("sleep", { ms: 30_000 }, { timeoutMs: 200, maxAttempts: 3 });
      const outcome = await client.outcome(id);
      assert.equal(outcome.state, "failed");
      assert.match(outcome.error, /timed out after 200 ms/);
      const task = await client.get(id);
      assert.equal(task.attempts.length, 3);
      for (let i = 1; i < task.attempts.length; i++) {
        const gap = timestampMs(task.attempts[i]!.startedAt!) - timestampMs(task.attempts[i - 1]!.finishedAt!);
        assert.ok(gap >= 40, `attempt ${i + 1} waited out a backoff (${gap} ms)`);
      }
      // The slot was reclaimed: the worker runs the next task at once.
      assert.deepEqual(await client.run("echo", 1), 1);
    } finally {
      client.close();
    }
  });

  it("returns the existing task for a repeated idempotency key", async () => {
    const tasks = createClient(TaskService, node.address);
    try {
      const first = await tasks.submitTask({ spec: { type: "echo", payload: new TextEncoder().encode('"a"'), idempotencyKey: "order-42" } });
      const second = await tasks.submitTask({ spec: { type: "echo", payload: new TextEncoder().encode('"b"'), idempotencyKey: "order-42" } });
      assert.equal(second.taskId, first.taskId);
      assert.equal(second.deduplicated, true);
      assert.equal(first.deduplicated, false);
    } finally {
      tasks.raw.close();
    }
  });

  it("suspects and then drops a worker that heartbeats but never takes its assignments", async () => {
    // A fake worker: says hello, heartbeats, but ignores assignments and never acknowledges them.
    const workers = createClient(WorkerService, node.address);
    const session = workers.session();
    let assigned = 0;
    session.on("data", (msg: SessionResponse) => {
      if (msg.kind.case === "assign") assigned += msg.kind.value.assignments.length;
    });
    session.on("error", () => {});
    session.write({ kind: { case: "hello", value: { workerId: "zombie", slots: 100, prefetch: 0, taskTypes: ["zombie-food"] } } });
    const beat = setInterval(() => session.write({ kind: { case: "heartbeat", value: { running: 0 } } }), 50);
    const client = new TaskflowClient({ address: node.address });
    try {
      const id = await client.submit("zombie-food", {});
      await eventually(() => (assigned > 0 ? true : undefined), 5000, "the zombie got the task");
      const cluster = createClient(ClusterService, node.address);
      await eventually(async () => {
        const state = await cluster.getClusterState({});
        return state.workers.some((w) => w.workerId === "zombie") ? undefined : true;
      }, 5000, "the zombie to be dropped");
      cluster.raw.close();
      const task = await client.get(id);
      assert.equal(task.state, TaskState.QUEUED, "its task went back to the queue");
      assert.match(task.attempts[0]!.error, /unacknowledged/);
      await client.cancel(id);
    } finally {
      clearInterval(beat);
      session.cancel();
      workers.raw.close();
      client.close();
    }
  });

  it("drains a worker: its running tasks finish, it takes no new ones, and it leaves", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const state = await client.clusterState();
      const target = state.workers.find((w) => w.taskTypes.includes("sleep"))!.workerId;
      const ids = await Promise.all(Array.from({ length: 4 }, () => client.submit("sleep", { ms: 600 })));
      await eventually(async () => {
        const tasks = await Promise.all(ids.map((id) => client.get(id)));
        return tasks.filter((t) => t.workerId === target && t.state === TaskState.RUNNING).length > 0 ? true : undefined;
      }, 5000, "a task running on the target");
      const drained = await cli(["drain", target], { TASKFLOW_ADDRESS: node.address });
      assert.equal(drained.code, 0, drained.stderr);
      const later = await client.submit("echo", { after: "drain" });
      const outcomes = await Promise.all([...ids, later].map((id) => client.outcome(id)));
      assert.ok(outcomes.every((o) => o.state === "succeeded"), JSON.stringify(outcomes));
      assert.notEqual(outcomes.at(-1)!.workerId, target, "no new task went to the draining worker");
      await eventually(async () => ((await client.clusterState()).workers.some((w) => w.workerId === target) ? undefined : true), 5000, "the drained worker to leave");
    } finally {
      client.close();
    }
  });
});
