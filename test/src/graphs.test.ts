/**
 * Task graphs across processes, with the SQLite store: a diamond flow runs in order and its join
 * gets both results; a failed dependency cancels or runs its dependents; a flow with a cycle is
 * refused and nothing is stored; the raw wire contract (not the SDK) refuses an unknown ID; and a
 * kill -9 of the control node with a graph half done: it finishes after the restart.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient } from "@taskflow/client";
import { Code, TaskflowError } from "@taskflow/core";
import { TaskState, DependencyFailure, type Task } from "@taskflow/proto";
import { cli, code, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";
import { rawTaskServiceNode } from "./raw-task-service.js";

/**
 * step: its payload's value after `ms` milliseconds; fail: throws; join: how each dependency
 * ended, as its handler context shows them.
 */
const HANDLERS = `
export default {
  step: async (p) => { await new Promise((r) => setTimeout(r, p?.ms ?? 0)); return p?.value ?? null; },
  fail: async (p) => { throw new Error(p?.why ?? "failed on purpose"); },
  join: async (p, ctx) => ctx.dependencies.map((d) => ({ id: d.taskId, state: d.state, result: d.result ?? null, error: d.error })),
};
`;

const WORKER = { processes: 1, slots: 4, handlers: "./handlers.mjs" } as const;

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

async function finished(client: TaskflowClient, id: string, timeoutMs = 30_000): Promise<Task> {
  return eventually(async () => {
    const t = await client.get(id);
    return t.state === TaskState.SUCCEEDED || t.state === TaskState.FAILED || t.state === TaskState.CANCELLED ? t : undefined;
  }, timeoutMs, `task ${id} to finish`);
}

describe("task graphs on a real node and worker (SQLite store)", { timeout: 120_000 }, () => {
  let node: StartedNode;
  let client: TaskflowClient;
  before(async () => {
    node = await startNode({ store: { kind: "sqlite", path: "tasks.db" }, worker: WORKER }, { files: { "handlers.mjs": HANDLERS } });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("runs a diamond flow in order; the join's handler receives both results", async () => {
    const ids = await client.flow({
      root: { type: "step", payload: { value: "r", ms: 200 } },
      left: { type: "step", payload: { value: "L", ms: 100 }, dependsOn: ["root"] },
      right: { type: "step", payload: { value: "R", ms: 300 }, dependsOn: ["root"] },
      join: { type: "join", dependsOn: ["left", "right"] },
    });
    const joined = await client.result<{ id: string; state: string; result: unknown }[]>(ids.join);
    assert.deepEqual(joined, [
      { id: ids.left, state: "succeeded", result: "L", error: "" },
      { id: ids.right, state: "succeeded", result: "R", error: "" },
    ]);
    const [root, left, right, join] = await Promise.all([ids.root, ids.left, ids.right, ids.join].map((id) => client.get(id)));
    for (const branch of [left!, right!]) assert.ok(ms(branch.startedAt) >= ms(root!.finishedAt), "a branch starts after the root finished");
    assert.ok(ms(join!.startedAt) >= Math.max(ms(left!.finishedAt), ms(right!.finishedAt)), "the join starts after both branches finished");
    assert.deepEqual(join!.spec!.dependsOn, [ids.left, ids.right]);
    assert.deepEqual(join!.waitingOn, []);
  });

  it("shows a waiting dependent as QUEUED with its reason, and its dependency's dependents, in GetTask and the CLI", async () => {
    const slow = await client.submit("step", { value: 1, ms: 60_000 });
    const waiting = await client.submit("step", { value: 2 }, { dependsOn: [slow] });
    const t = await client.get(waiting);
    assert.equal(t.state, TaskState.QUEUED);
    assert.equal(t.waitingReason, `waiting for 1 of 1 dependencies: ${slow}`);
    assert.deepEqual(t.waitingOn, [slow]);
    const dep = await client.get(slow);
    assert.deepEqual([dep.dependents, dep.dependentCount], [[waiting], 1]);
    const shown = await cli(["get", waiting, "--address", node.address]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`depends on \\(1, on failure: cancel\\):\\n  ${slow}  (running|assigned|queued)`));
    const shownDep = await cli(["get", slow, "--address", node.address]);
    assert.match(shownDep.stdout, new RegExp(`dependents waiting \\(1\\):\\n  ${waiting}  queued \\(waiting for 1 of 1 dependencies`));
    await client.cancel(slow, "test over");
    const cancelled = await finished(client, waiting);
    assert.equal(cancelled.state, TaskState.CANCELLED, "cancelling a dependency cascades");
    assert.equal(cancelled.error, `dependency ${slow} was cancelled: test over`);
  });

  it("cancels the dependents of a failed dependency, or runs those that asked to run anyway", async () => {
    const failing = await client.submit("fail", { why: "no disk" }, { maxAttempts: 1 });
    const cancelled = await client.submit("step", { value: "never" }, { dependsOn: [failing] });
    const anyway = await client.submit("join", null, { dependsOn: [failing], onDependencyFailure: "run" });
    const c = await finished(client, cancelled);
    assert.equal(c.state, TaskState.CANCELLED);
    assert.equal(c.error, `dependency ${failing} failed: no disk`);
    assert.equal(c.attempts.length, 0, "it never ran");
    assert.deepEqual(await client.result(anyway), [{ id: failing, state: "failed", result: null, error: "no disk" }]);
  });

  it("refuses a flow with a cycle, naming its nodes, and stores none of it", async () => {
    const before = (await client.list({ type: "cyclic", pageSize: 10 })).tasks.length;
    await assert.rejects(
      client.flow({
        a: { type: "cyclic", dependsOn: ["c"] },
        b: { type: "cyclic", dependsOn: ["a"] },
        c: { type: "cyclic", dependsOn: ["b"] },
      }),
      (err: unknown) => {
        assert.ok(err instanceof TaskflowError, String(err));
        assert.equal(err.code, Code.INVALID_ARGUMENT);
        assert.match(err.message, /nodes\[\d\]\.depends_on_nodes forms a cycle: (\d) → \d → \d → \1/);
        return true;
      },
    );
    assert.equal(before, 0);
    assert.equal((await client.list({ type: "cyclic", pageSize: 10 })).tasks.length, 0, "nothing of the flow was stored");
  });

  it("submits --depends-on from the CLI", async () => {
    const first = await client.submit("step", { value: "first" });
    const out = await cli(["submit", "join", "--depends-on", first, "--wait", "--json", "--address", node.address]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout).result, [{ id: first, state: "succeeded", result: "first", error: "" }]);
  });
});

describe("task graphs through the raw wire contract (not the SDK)", () => {
  const raw = rawTaskServiceNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });

  it("refuses an unknown dependency ID with INVALID_ARGUMENT naming the field and the ID", async () => {
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", dependsOn: ["no-such-task"] } }), code(status.INVALID_ARGUMENT, /^spec\.depends_on\[0\] names no task of this tenant: no-such-task/));
    const { taskId } = await raw.tasks.submitTask({ spec: { type: "echo" } });
    await assert.rejects(
      raw.tasks.submitTasks({ specs: [{ type: "echo", dependsOn: [taskId] }, { type: "echo", dependsOn: [taskId, "gone"] }] }),
      code(status.INVALID_ARGUMENT, /^specs\[1\]\.depends_on\[1\] names no task of this tenant: gone/),
    );
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", dependsOn: [taskId], onDependencyFailure: 9 as DependencyFailure } }), code(status.INVALID_ARGUMENT, /spec\.on_dependency_failure/));
  });

  it("takes a flow by node index, answering the IDs in order; refuses an index out of range", async () => {
    const { taskIds } = await raw.tasks.submitFlow({
      nodes: [
        { spec: { type: "echo" }, dependsOnNodes: [1] },
        { spec: { type: "echo", onDependencyFailure: DependencyFailure.RUN_ANYWAY } },
      ],
    });
    assert.equal(taskIds.length, 2);
    const first = (await raw.tasks.getTask({ taskId: taskIds[0]! })).task!;
    assert.deepEqual(first.spec!.dependsOn, [taskIds[1]]);
    assert.equal(first.spec!.onDependencyFailure, DependencyFailure.CANCEL, "unspecified is stored as cancel");
    assert.deepEqual(first.waitingOn, [taskIds[1]]);
    await assert.rejects(raw.tasks.submitFlow({ nodes: [{ spec: { type: "echo" }, dependsOnNodes: [5] }] }), code(status.INVALID_ARGUMENT, /nodes\[0\]\.depends_on_nodes\[0\] is 5, not a node of this flow/));
    await assert.rejects(raw.tasks.submitFlow({ nodes: [] }), code(status.INVALID_ARGUMENT, /nodes must hold at least one task/));
  });
});

describe("a task graph across a kill -9 of the control node (SQLite store)", { timeout: 180_000 }, () => {
  it("finishes after the restart: the dependent runs once its dependency does, with every result", async () => {
    const port = await freePort();
    const dir = tempDir();
    const controlConfig = { roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } };
    let control = await startNode(controlConfig, { dir });
    const workers = await startNode(
      { roles: ["worker"], worker: { ...WORKER, controlAddress: `127.0.0.1:${port}` } },
      { dir: tempDir(), files: { "handlers.mjs": HANDLERS } },
    );
    try {
      const submitter = new TaskflowClient({ address: control.address });
      const ids = await submitter.flow({
        first: { type: "step", payload: { value: "one" } },
        second: { type: "step", payload: { value: "two", ms: 4000 }, dependsOn: ["first"] },
        last: { type: "join", dependsOn: ["first", "second"] },
      });
      // Half done: the first finished, the second runs, the last waits for it.
      await eventually(async () => ((await submitter.get(ids.second)).state === TaskState.RUNNING ? true : undefined), 30_000, "the second task running");
      assert.equal((await submitter.get(ids.first)).state, TaskState.SUCCEEDED);
      assert.equal((await submitter.get(ids.last)).state, TaskState.QUEUED);
      submitter.close();
      await control.kill9();
      control = await startNode(controlConfig, { dir });

      const checker = new TaskflowClient({ address: control.address });
      try {
        const last = await finished(checker, ids.last, 90_000);
        assert.equal(last.state, TaskState.SUCCEEDED, `the last task ${taskName(last)}`);
        assert.deepEqual(checker.decode(last.result), [
          { id: ids.first, state: "succeeded", result: "one", error: "" },
          { id: ids.second, state: "succeeded", result: "two", error: "" },
        ]);
        assert.equal(last.attempts.length, 1, "the dependent ran once");
        assert.equal((await checker.get(ids.first)).attempts.length, 1, "the finished dependency did not run again");
      } finally {
        checker.close();
      }
    } finally {
      await workers.stop();
      await control.stop();
    }
  });
});

function taskName(t: Task): string {
  return `${TaskState[t.state]}${t.error ? `: ${t.error}` : ""}${t.waitingReason ? ` (${t.waitingReason})` : ""}`;
}
