/**
 * The refusal paths at capacity, across real processes: a worker past
 * `control.workerHeapCapacity` gets RESOURCE_EXHAUSTED from `start()` and leaves no trace (no
 * phantom, no death-and-reconnect loop, one log line), and submits past
 * `control.taskHeapCapacity` are refused and counted in `taskflow_submit_rejected_total`.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskflowClient, TaskflowWorker } from "@taskflow/client";
import { TaskflowError } from "@taskflow/core";
import { TaskService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { code, eventually, startNode, type StartedNode } from "./harness.js";
import { scrape, sum, value } from "./prometheus.js";

/** Log lines (JSON) of the node whose message is `msg`. */
function lines(node: StartedNode, msg: string): Record<string, unknown>[] {
  return node
    .logs()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

describe("a worker past control.workerHeapCapacity", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  const workers: TaskflowWorker[] = [];
  before(async () => {
    node = await startNode({
      roles: ["control"],
      control: { workerHeapCapacity: 2 },
      // Short liveness, so that the 3 s watched below spans several heartbeat timeouts and graces.
      liveness: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 800, reconnectGraceMs: 500 },
    });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("gets RESOURCE_EXHAUSTED from start(), is logged once, and leaves no phantom and no loop", async (t) => {
    const worker = (id: string) => {
      const w = new TaskflowWorker({ address: node.address, workerId: id, slots: 1, handlers: { echo: (x: unknown) => x } });
      workers.push(w);
      return w;
    };
    await worker("cap-w1").start();
    await worker("cap-w2").start();

    const started = Date.now();
    const refused = await worker("cap-w3").start().then(
      () => assert.fail("the third worker was welcomed"),
      (err: unknown) => err,
    );
    const waitedMs = Date.now() - started;
    assert.ok(TaskflowError.is(refused), `a TaskflowError, got ${String(refused)}`);
    assert.equal(refused.code, status.RESOURCE_EXHAUSTED);
    assert.equal(refused.reason, "TASKFLOW_ERR_WORKER_CAPACITY");
    assert.match(refused.message, /already has its most workers, 2 \(control\.workerHeapCapacity\); fix: raise control\.workerHeapCapacity/);
    t.diagnostic(`refused in ${waitedMs} ms`);
    assert.ok(waitedMs < 10_000, `refused in ${waitedMs} ms`);

    const ids = async () => (await client.clusterState()).workers.map((w) => w.workerId).sort();
    assert.deepEqual(await ids(), ["cap-w1", "cap-w2"]);

    // What a loop would show within a few heartbeat timeouts: deaths, reconnects, more refusals.
    await sleep(3_000);
    assert.deepEqual(await ids(), ["cap-w1", "cap-w2"], "no phantom worker");
    assert.deepEqual(lines(node, "worker is dead"), []);
    const refusals = lines(node, "worker refused: the register is full (control.workerHeapCapacity)");
    assert.deepEqual(refusals.map((l) => [l.workerId, l.capacity]), [["cap-w3", 2]], "one line for the refused worker");
    const metrics = await scrape(node.metricsUrl!);
    assert.equal(value(metrics, "taskflow_workers_refused_total"), 1, "it did not try again");

    // The admitted workers still run tasks.
    assert.deepEqual(await client.run("echo", { ok: 1 }), { ok: 1 });
  });
});

describe("submits past control.taskHeapCapacity", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control"], control: { taskHeapCapacity: 20 } });
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
  });

  it("are refused with RESOURCE_EXHAUSTED in their stream acknowledgements and counted by code and reason", async () => {
    // Batches of 10 on one SubmitTaskStream, one at a time: the first two fill the queue.
    const client = new TaskflowClient({ address: node.address, maxBatchSize: 10, maxInFlightBatches: 1 });
    try {
      const submits = Array.from({ length: 40 }, () => client.submit("nobody-serves-this").then(() => "ok", (err: unknown) => err));
      const outcomes = await Promise.all(submits);
      assert.equal(outcomes.filter((o) => o === "ok").length, 20);
      const rejected = outcomes.filter((o) => o !== "ok");
      assert.equal(rejected.length, 20);
      for (const err of rejected) {
        assert.equal((err as TaskflowError).code, status.RESOURCE_EXHAUSTED);
        assert.match((err as TaskflowError).message, /task queue is full \(20 of 20 unfinished tasks; control\.taskHeapCapacity\)/);
      }
    } finally {
      client.close();
    }
    // A unary refusal counts in the same series, whichever RPC carried the submit.
    const tasks = createClient(TaskService, node.address);
    try {
      await assert.rejects(tasks.submitTask({ spec: { type: "nobody-serves-this" } }), code(status.RESOURCE_EXHAUSTED, /task queue is full/));
    } finally {
      tasks.raw.close();
    }

    const metrics = await eventually(async () => {
      const m = await scrape(node.metricsUrl!);
      return sum(m, "taskflow_submit_rejected_total") >= 3 ? m : undefined;
    });
    assert.equal(value(metrics, "taskflow_submit_rejected_total", { code: "RESOURCE_EXHAUSTED", reason: "TASKFLOW_ERR_HEAP_FULL" }), 3, "two stream batches and one call");
    assert.equal(sum(metrics, "taskflow_submit_rejected_total"), 3);
    assert.equal(value(metrics, "taskflow_tasks_submitted_total"), 20);
  });
});
