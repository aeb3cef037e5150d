/**
 * Task metadata and deadlines across processes: a raw protobuf client (not the SDK) submits with
 * TaskSpec fields 11 and 12 and reads them back from GetTask; the SDK submits with `metadata`
 * and `deadline`, and an SDK worker's handler sees the metadata in its context; the CLI's
 * `submit --metadata --deadline --expected-duration` and `get` show them; bad values are refused
 * with INVALID_ARGUMENT naming the field.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient, TaskflowWorker, type TaskContext } from "@taskflow/client";
import { TaskService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, startNode, type StartedNode } from "./harness.js";

describe("task metadata and deadline on a real control node", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  let client: TaskflowClient;
  let worker: TaskflowWorker;
  before(async () => {
    node = await startNode({ roles: ["control"] });
    tasks = createClient(TaskService, node.address);
    client = new TaskflowClient({ address: node.address });
    worker = new TaskflowWorker({
      address: node.address,
      workerId: "meta-w1",
      slots: 2,
      handlers: { "meta.echo": (_: unknown, ctx: TaskContext) => ({ metadata: ctx.metadata }) },
    });
    await worker.start();
  });
  after(async () => {
    await worker.stop(1000);
    client.close();
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  it("raw protobuf: SubmitTasks with metadata and deadline_ms; GetTask returns them", async () => {
    const deadlineMs = BigInt(Date.now() + 3_600_000);
    const { taskIds } = await tasks.submitTasks({
      specs: [{ type: "nobody-serves-this", metadata: { trace: "t-1", "ünï": "✓" }, deadlineMs, expectedDurationMs: 2000 }, { type: "nobody-serves-this" }],
    });
    const withAttrs = (await tasks.getTask({ taskId: taskIds[0]! })).task!;
    assert.deepEqual({ ...withAttrs.spec!.metadata }, { trace: "t-1", "ünï": "✓" });
    assert.equal(withAttrs.spec!.deadlineMs, deadlineMs);
    assert.equal(withAttrs.spec!.expectedDurationMs, 2000);
    const without = (await tasks.getTask({ taskId: taskIds[1]! })).task!;
    assert.deepEqual({ ...without.spec!.metadata }, {});
    assert.equal(without.spec!.deadlineMs, 0n);
  });

  it("raw protobuf: too many metadata entries, a long value or a negative deadline is INVALID_ARGUMENT naming the field", async () => {
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
    await assert.rejects(tasks.submitTask({ spec: { type: "echo", metadata: many } }), code(status.INVALID_ARGUMENT, /^spec\.metadata has 65 entries; at most 64$/));
    await assert.rejects(
      tasks.submitTasks({ specs: [{ type: "echo" }, { type: "echo", metadata: { note: "x".repeat(1025) } }] }),
      code(status.INVALID_ARGUMENT, /^specs\[1\]\.metadata\["note"\] is 1025 characters; at most 1024$/),
    );
    await assert.rejects(tasks.submitTask({ spec: { type: "echo", deadlineMs: -5n } }), code(status.INVALID_ARGUMENT, /^spec\.deadline_ms must be epoch milliseconds/));
  });

  it("SDK: submit with metadata and a Date deadline (the streaming hot path); the handler sees the metadata", async () => {
    const deadline = new Date(Date.now() + 60_000);
    const id = await client.submit("meta.echo", null, { metadata: { region: "eu", trace: "abc" }, deadline });
    const outcome = await client.outcome(id);
    assert.equal(outcome.state, "succeeded");
    assert.deepEqual(outcome.value, { metadata: { region: "eu", trace: "abc" } });
    const task = await client.get(id);
    assert.equal(task.spec!.deadlineMs, BigInt(deadline.getTime()));
    // A task without metadata: the handler gets an empty object, not undefined.
    const plain = await client.outcome(await client.submit("meta.echo", null));
    assert.deepEqual(plain.value, { metadata: {} });
  });

  it("CLI: submit --metadata --deadline --expected-duration, and get shows them", async () => {
    const submitted = await cli(["-a", node.address, "submit", "nobody-serves-this", "--metadata", "team=search", "--metadata", "trace=t-9", "--deadline", "+5m", "--expected-duration", "2s"]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    const shown = await cli(["-a", node.address, "get", id, "--json"]);
    assert.equal(shown.code, 0, shown.stderr);
    const json = JSON.parse(shown.stdout) as { metadata: Record<string, string>; deadline: string; expectedDurationMs: number };
    assert.deepEqual(json.metadata, { team: "search", trace: "t-9" });
    assert.equal(json.expectedDurationMs, 2000);
    const ahead = Date.parse(json.deadline) - Date.now();
    assert.ok(ahead > 3 * 60_000 && ahead <= 5 * 60_000, `deadline ${json.deadline} is about 5 minutes ahead`);
    const text = await cli(["-a", node.address, "get", id]);
    assert.match(text.stdout, /^metadata: {2}team=search$/m);
    assert.match(text.stdout, /^deadline: {2}\d{4}-/m);
    assert.match(text.stdout, /^expected: {2}2000 ms$/m);
    const bad = await cli(["-a", node.address, "submit", "echo", "--deadline", "tomorrow"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--deadline is an ISO 8601 time/);
  });
});
