/**
 * Delayed tasks across processes: the SDK against a real node and worker, a kill -9 of the
 * control node with the SQLite store, a raw protobuf client (not the SDK), and the CLI. The
 * guarantee checked is "not before its due time"; how late it runs is measured by
 * `npm run bench:delay`, not asserted here (that would be timing-flaky on a loaded machine).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient } from "@taskflow/client";
import { TaskState, type SubmitTaskStreamResponse, type Task } from "@taskflow/proto";
import { cli, code, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";
import { rawTaskServiceNode } from "./raw-task-service.js";
import { scrape, value } from "./prometheus.js";

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

describe("a delayed task on a real node and worker", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  before(async () => {
    node = await startNode({ worker: { processes: 1, slots: 4 } });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("with delayMs 1500 does not start before 1.5 s and finishes after", async () => {
    const t0 = Date.now();
    const id = await client.submit("echo", { n: 1 }, { delayMs: 1500 });
    const waiting = await client.get(id);
    const created = ms(waiting.createdAt);
    // On a loaded machine the get may come after the due time; what it says then is not delay's.
    if (waiting.state === TaskState.QUEUED) {
      assert.equal(waiting.spec!.runAtMs, BigInt(created + 1500), "the Task carries its due time");
      assert.match(waiting.waitingReason, /^delayed until \d{4}-\d\d-\d\dT[\d:.]+Z \(in (1s|\d+ms)\)$/);
    }

    const outcome = await client.outcome(id);
    const elapsed = Date.now() - t0;
    assert.equal(outcome.state, "succeeded");
    assert.deepEqual(outcome.value, { n: 1 });
    assert.ok(elapsed >= 1500, `finished ${elapsed} ms after the submit`);
    const done = await client.get(id);
    assert.ok(ms(done.startedAt) >= created + 1500, `started ${ms(done.startedAt) - created} ms after it was created`);
    assert.equal(done.attempts.length, 1);
  });

  it("with runAt runs at that time; cancelled while it waits, it never runs", async () => {
    const due = Date.now() + 1200;
    const [ran, cancelled] = await client.submitMany([
      { type: "echo", payload: "at", runAt: new Date(due) },
      { type: "echo", payload: "never", delayMs: 600_000 },
    ]);
    await client.cancel(cancelled!, "changed my mind");
    const c = await client.get(cancelled!);
    assert.equal(c.state, TaskState.CANCELLED);
    assert.equal(c.error, "changed my mind");
    const outcome = await client.outcome(ran!);
    assert.equal(outcome.state, "succeeded");
    assert.ok(ms((await client.get(ran!)).startedAt) >= due);
    assert.equal((await client.get(cancelled!)).attempts.length, 0);
  });
});

describe("a delayed task across a kill -9 of the control node (SQLite store)", () => {
  it("still runs at its time after the restart, once", async () => {
    const port = await freePort();
    const dir = tempDir();
    const controlConfig = { roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } };
    let control = await startNode(controlConfig, { dir });
    const workers = await startNode({ roles: ["worker"], worker: { processes: 1, controlAddress: `127.0.0.1:${port}` } }, { dir: tempDir() });
    try {
      const submitter = new TaskflowClient({ address: control.address });
      const id = await submitter.submit("echo", "later", { delayMs: 6000 });
      const created = ms((await submitter.get(id)).createdAt);
      submitter.close();
      await control.kill9();
      control = await startNode(controlConfig, { dir });

      const checker = new TaskflowClient({ address: control.address });
      try {
        const before = await checker.get(id);
        // A restart slower than the delay (a loaded machine) may already have run it: then only the times below tell.
        if (before.state === TaskState.QUEUED) {
          assert.match(before.waitingReason, /^delayed until /);
          assert.equal(before.spec!.runAtMs, BigInt(created + 6000), "the due time survived the crash");
        }
        const done = await eventually(async () => {
          const t = await checker.get(id);
          return t.state === TaskState.SUCCEEDED ? t : undefined;
        }, 60_000, "the delayed task to succeed after the restart");
        assert.ok(ms(done.startedAt) >= created + 6000, `started ${ms(done.startedAt) - created} ms after it was created`);
        assert.equal(done.attempt, 1, "it ran once");
        assert.equal(done.attempts.length, 1);
      } finally {
        checker.close();
      }
    } finally {
      await workers.stop();
      await control.stop();
    }
  });
});

describe("delayed tasks through the raw wire contract (not the SDK)", () => {
  const raw = rawTaskServiceNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });

  it("submits with delay_ms on SubmitTask and run_at_ms on SubmitTasks; GetTask shows the due time; CancelTask cancels", async () => {
    const { taskId } = await raw.tasks.submitTask({ spec: { type: "echo", delayMs: 300_000n } });
    const runAtMs = BigInt(Date.now() + 3_600_000);
    const { taskIds } = await raw.tasks.submitTasks({ specs: [{ type: "echo", runAtMs }, { type: "nobody-serves-this" }] });
    const delayed: Task = (await raw.tasks.getTask({ taskId })).task!;
    assert.equal(delayed.state, TaskState.QUEUED);
    assert.equal(delayed.spec!.runAtMs, BigInt(ms(delayed.createdAt) + 300_000));
    assert.equal(delayed.spec!.delayMs, 0n);
    assert.match(delayed.waitingReason, /^delayed until .* \(in [45]m \d+s\)$/);
    const atTime = (await raw.tasks.getTask({ taskId: taskIds[0]! })).task!;
    assert.equal(atTime.spec!.runAtMs, runAtMs);
    assert.match(atTime.waitingReason, new RegExp(`^delayed until ${new Date(Number(runAtMs)).toISOString().replace(/\./g, "\\.")}`));
    assert.equal((await raw.tasks.getTask({ taskId: taskIds[1]! })).task!.spec!.runAtMs, 0n, "an undelayed task has no due time");
    const listed = await raw.tasks.listTasks({ states: [TaskState.QUEUED], pageSize: 10 });
    assert.ok(listed.tasks.some((t) => t.id === taskId && t.spec!.runAtMs === delayed.spec!.runAtMs), "ListTasks shows the due time");
    const metrics = await scrape(raw.node.metricsUrl!);
    assert.equal(value(metrics, "taskflow_queue_depth", { where: "delayed" }), 2, "two delayed tasks, in the metrics");
    assert.equal(value(metrics, "taskflow_queue_depth", { where: "heap" }), 1);
    for (const id of [taskId, ...taskIds]) await raw.tasks.cancelTask({ taskId: id });
    assert.equal((await raw.tasks.getTask({ taskId })).task!.state, TaskState.CANCELLED);
  });

  it("refuses both fields, a negative delay and one past 365 days with INVALID_ARGUMENT naming the field", async () => {
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", delayMs: 5n, runAtMs: BigInt(Date.now() + 5) } }), code(status.INVALID_ARGUMENT, /^spec\.delay_ms and spec\.run_at_ms are exclusive/));
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", delayMs: -1n } }), code(status.INVALID_ARGUMENT, /^spec\.delay_ms must be 0 … 31536000000 \(365 days\), got -1/));
    await assert.rejects(raw.tasks.submitTasks({ specs: [{ type: "echo" }, { type: "echo", delayMs: 31_536_000_001n }] }), code(status.INVALID_ARGUMENT, /^specs\[1\]\.delay_ms must be 0 … 31536000000/));
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", runAtMs: BigInt(Date.now() + 400 * 86_400_000) } }), code(status.INVALID_ARGUMENT, /^spec\.run_at_ms .* is more than 365 days ahead/));
    await assert.rejects(raw.tasks.submitTask({ spec: { type: "echo", runAtMs: -1n } }), code(status.INVALID_ARGUMENT, /^spec\.run_at_ms must be epoch milliseconds/));

    // The bulk stream refuses just that batch, with the same message.
    const call = raw.tasks.submitTaskStream();
    const acks: SubmitTaskStreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (ack: SubmitTaskStreamResponse) => acks.push(ack));
      call.on("error", reject);
      call.on("end", resolve);
    });
    call.write({ batchId: 1n, specs: [{ type: "echo", delayMs: -5n }] });
    call.write({ batchId: 2n, specs: [{ type: "echo", delayMs: 60_000n }] });
    call.end();
    await ended;
    const byId = new Map(acks.map((a) => [a.batchId, a]));
    assert.equal(byId.get(1n)!.errorCode, status.INVALID_ARGUMENT);
    assert.match(byId.get(1n)!.errorMessage, /delay_ms must be 0 … 31536000000/);
    assert.equal(byId.get(2n)!.errorCode, 0, byId.get(2n)!.errorMessage);
    const streamed = (await raw.tasks.getTask({ taskId: byId.get(2n)!.taskIds[0]! })).task!;
    assert.match(streamed.waitingReason, /^delayed until /);
    await raw.tasks.cancelTask({ taskId: streamed.id });
  });

  it("taskflow submit --delay / --at, get and list show the due time, cancel works, bad values are refused", async () => {
    const env = { TASKFLOW_ADDRESS: raw.node.address };
    const submitted = await cli(["submit", "echo", '"later"', "--delay", "5m", "--json"], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = (JSON.parse(submitted.stdout) as { id: string }).id;
    const got = await cli(["get", id], env);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^due: {7}\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
    assert.match(got.stdout, /^waiting: {3}delayed until .* \(in 4m \d+s\)$/m);
    const at = "2099-01-01T09:00:00Z";
    const atResult = await cli(["submit", "echo", "--at", "2030-01-01T09:00:00+01:00", "--json"], env);
    assert.equal(atResult.code, 2, "2030 is more than 365 days ahead: INVALID_ARGUMENT, a usage error");
    assert.match(atResult.stderr, /run_at_ms .* is more than 365 days ahead/);
    const soon = new Date(Date.now() + 86_400_000).toISOString();
    const atOk = await cli(["submit", "echo", "--at", soon, "--json"], env);
    assert.equal(atOk.code, 0, atOk.stderr);
    const listed = await cli(["list", "--state", "queued"], env);
    assert.match(listed.stdout, /DUE/);
    assert.ok(listed.stdout.includes(soon), listed.stdout);
    const cancelled = await cli(["cancel", id], env);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match((await cli(["get", id, "--json"], env)).stdout, /"state": "cancelled"/);

    const bad = await cli(["submit", "echo", "--delay", "5 minutes"], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--delay is a whole number with a unit: 250ms, 30s, 5m, 2h or 1d/);
    const both = await cli(["submit", "echo", "--delay", "5m", "--at", at], env);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /--delay and --at are exclusive/);
    const help = await cli(["submit", "--help"], env);
    assert.match(help.stdout, /--delay <duration>/);
    assert.match(help.stdout, /--at <time>/);
  });
});
