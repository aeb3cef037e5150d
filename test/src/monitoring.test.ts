import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskState, TaskflowClient } from "@taskflow/client";
import { cli, eventually, startNode, type StartedNode } from "./harness.js";
import { scrape, sum, value } from "./prometheus.js";

describe("metrics after a workload", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  const OK = 300;
  const FAILING = 5;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 2, slots: 8 }, log: { level: "debug" } });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("prints the metrics and dashboard addresses on the ready line", () => {
    assert.match(node.metricsUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.match(node.dashboardUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it("counts what ran: submitted, completed, failed, retried, cancelled, histograms, workers, gRPC errors", async () => {
    const ok = await Promise.all(Array.from({ length: OK }, (_, i) => client.submit(i % 2 ? "noop" : "echo", { i })));
    const failing = await Promise.all(Array.from({ length: FAILING }, () => client.submit("fail", undefined, { maxAttempts: 2 })));
    const long = await client.submit("sleep", { ms: 30_000 });
    await eventually(async () => ((await client.get(long)).state === TaskState.RUNNING ? true : undefined), 10_000, "the sleep task to run");
    await client.cancel(long, "test");
    for (const id of ok) assert.equal((await client.outcome(id)).state, "succeeded");
    for (const id of failing) assert.equal((await client.outcome(id)).state, "failed");
    await assert.rejects(client.get("00000000-0000-0000-0000-000000000000"));

    const m = await scrape(node.metricsUrl!);
    const submitted = OK + FAILING + 1;
    assert.equal(value(m, "taskflow_tasks_submitted_total"), submitted);
    assert.equal(value(m, "taskflow_tasks_completed_total"), OK);
    assert.equal(value(m, "taskflow_tasks_failed_total"), FAILING);
    assert.equal(value(m, "taskflow_tasks_cancelled_total"), 1);
    assert.equal(value(m, "taskflow_tasks_retried_total"), FAILING, "each failing task retried once (maxAttempts 2)");
    assert.equal(value(m, "taskflow_tasks_assigned_total"), OK + 2 * FAILING + 1);
    assert.equal(value(m, "taskflow_tasks", { state: "succeeded" }), OK);
    assert.equal(value(m, "taskflow_tasks", { state: "failed" }), FAILING);
    assert.equal(value(m, "taskflow_tasks", { state: "cancelled" }), 1);
    assert.equal(value(m, "taskflow_tasks", { state: "queued" }), 0);
    assert.equal(value(m, "taskflow_task_latency_seconds_count"), OK + FAILING);
    assert.equal(value(m, "taskflow_task_queue_wait_seconds_count"), OK + 2 * FAILING + 1);
    assert.equal(value(m, "taskflow_task_run_seconds_count"), OK + 2 * FAILING + 1);
    assert.equal(value(m, "taskflow_task_latency_seconds_bucket", { le: "+Inf" }), OK + FAILING);
    assert.ok(value(m, "taskflow_task_latency_seconds_sum") > 0);
    assert.equal(value(m, "taskflow_workers", { state: "alive" }), 2);
    assert.equal(sum(m, "taskflow_worker_slots"), 16);
    assert.equal(value(m, "taskflow_queue_depth", { where: "heap" }), 0);
    assert.ok(value(m, "taskflow_scheduler_turns_total") > 0);
    assert.ok(value(m, "taskflow_scheduler_busy_seconds_total") > 0);
    assert.ok(value(m, "taskflow_grpc_server_errors_total", { code: "NOT_FOUND" }) >= 1);
    assert.ok(value(m, "nodejs_heap_size_used_bytes") > 0);

    // The worker role's processes, over IPC: every attempt, by outcome.
    const w = await eventually(async () => {
      const s = await scrape(node.metricsUrl!);
      return sum(s, "taskflow_worker_process_tasks_total", { outcome: "cancelled" }) === 1 ? s : undefined;
    }, 10_000, "the worker to count the cancelled attempt");
    assert.equal(sum(w, "taskflow_worker_process_tasks_total", { outcome: "completed" }), OK);
    assert.equal(sum(w, "taskflow_worker_process_tasks_total", { outcome: "failed" }), 2 * FAILING);
    assert.equal(w.filter((s) => s.name === "taskflow_worker_process_heap_used_bytes").length, 2);
    assert.ok(sum(w, "taskflow_worker_process_heap_used_bytes") > 0);
  });

  it("logs every task transition at debug level with the task ID", async () => {
    const id = await client.submit("echo", { hello: "logs" });
    await client.outcome(id);
    const lines = await eventually(() => {
      const mine = node
        .logs()
        .split("\n")
        .filter((l) => l.includes(id) && l.endsWith("}"))
        .map((l) => JSON.parse(l) as { taskId?: string; msg: string });
      return mine.some((l) => l.msg === "task succeeded") ? mine : undefined;
    }, 5000, "the task's log lines");
    const transitions = lines.filter((l) => l.msg.startsWith("task ")).map((l) => l.msg);
    assert.deepEqual(transitions.slice(0, 2), ["task queued", "task assigned"]);
    assert.equal(transitions.at(-1), "task succeeded");
    assert.ok(lines.every((l) => l.taskId === id));
  });

  it("taskflow top --once shows the workers and the totals", async () => {
    const r = await cli(["top", "--once", "--interval", "200"], { TASKFLOW_ADDRESS: node.address });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /taskflow top — 127\.0\.0\.1:\d+ {3}policy fifo/);
    assert.match(r.stdout, new RegExp(`totals {3}succeeded ${(OK + 1).toLocaleString("en-US")} {3}failed ${FAILING} {3}cancelled 1`));
    assert.equal(r.stdout.split("\n").filter((l) => /-w[01] +alive/.test(l)).length, 2);
  });
});

describe("monitoring off", () => {
  it("serves neither metrics nor the dashboard, and the ready line says only the control address", async () => {
    const node = await startNode({ roles: ["control"], metrics: { enabled: false }, dashboard: { enabled: false } });
    try {
      assert.equal(node.metricsUrl, undefined);
      assert.equal(node.dashboardUrl, undefined);
      assert.ok(node.port > 0);
      const c = new TaskflowClient({ address: node.address });
      try {
        assert.equal((await c.clusterState()).policy, "fifo");
      } finally {
        c.close();
      }
    } finally {
      assert.equal(await node.stop(), 0);
    }
  });
});
