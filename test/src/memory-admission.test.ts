/**
 * Admission control by memory across real processes (docs/adr/0021-memory-admission.md): a
 * control node with a small `control.memoryBudget.rssBytes` takes big payloads until its memory
 * nears the budget, then refuses submits on every RPC path with RESOURCE_EXHAUSTED
 * (`TASKFLOW_ERR_MEMORY`) naming the key; it stays up and SERVING, the refusals are counted, and
 * every task it accepted completes once a worker runs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { TaskflowClient, TaskflowWorker } from "@taskflow/client";
import { TaskflowError } from "@taskflow/core";
import { TaskService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { eventually, startNode, type StartedNode } from "./harness.js";
import { scrape, sum, value } from "./prometheus.js";

const MiB = 1024 * 1024;
/** The node starts near 100 MB resident (ADR 0018); each accepted task adds its 1 MiB payload. */
const RSS_BUDGET = 300 * MiB;
/** Submits tried on one path before the test gives up waiting for a refusal (300 MiB of payloads). */
const MOST_SUBMITS = 300;

/** Submits one task at a time until one is refused; returns the accepted IDs and the refusal. */
async function fillUntilRefused(submit: () => Promise<string[]>): Promise<{ ids: string[]; refusal: TaskflowError }> {
  const ids: string[] = [];
  for (let i = 0; i < MOST_SUBMITS; i++) {
    try {
      ids.push(...(await submit()));
    } catch (err) {
      const refusal = TaskflowError.from(err);
      return { ids, refusal };
    }
  }
  assert.fail(`${MOST_SUBMITS} submits of 1 MiB were all accepted under a ${RSS_BUDGET / MiB} MiB budget`);
}

function assertMemoryRefusal(err: TaskflowError, path: string): void {
  assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, `${path}: ${err.message}`);
  assert.match(err.message, /memory is near its budget: .*control\.memoryBudget\.rssBytes/, path);
  assert.match(err.message, /retry later/, path);
}

describe("submits near control.memoryBudget", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  let worker: TaskflowWorker | undefined;
  before(async () => {
    node = await startNode({ roles: ["control"], control: { memoryBudget: { rssBytes: RSS_BUDGET, sampleIntervalMs: 100 } } }, { timeoutMs: 60_000 });
    client = new TaskflowClient({ address: node.address, maxBatchSize: 1, maxInFlightBatches: 1 });
  });
  after(async () => {
    await worker?.stop();
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("are refused on every path with TASKFLOW_ERR_MEMORY naming the key; the node stays up and every accepted task completes", { timeout: 240_000 }, async (t) => {
    const payload = "x".repeat(MiB);
    // The same JSON string as the SDK sends, so that the worker's JSON codec reads it.
    const bytes = new TextEncoder().encode(JSON.stringify(payload));

    // SubmitTaskStream (the SDK's path): its refusal is the batch's acknowledgement, with no reason field.
    const stream = await fillUntilRefused(async () => [await client.submit("big", payload)]);
    assertMemoryRefusal(stream.refusal, "SubmitTaskStream");
    t.diagnostic(`accepted ${stream.ids.length} tasks of 1 MiB before the first refusal`);
    assert.ok(stream.ids.length > 0, "the budget left room for some tasks");

    const raw = createClient(TaskService, node.address, { channelOptions: { "grpc.max_send_message_length": 8 * MiB } });
    const accepted = [...stream.ids];
    try {
      for (const [path, submit] of [
        ["SubmitTask", async () => [(await raw.submitTask({ spec: { type: "big", payload: bytes } })).taskId]],
        ["SubmitTasks", async () => (await raw.submitTasks({ specs: [{ type: "big", payload: bytes }] })).taskIds],
      ] as const) {
        const { ids, refusal } = await fillUntilRefused(submit);
        accepted.push(...ids);
        assertMemoryRefusal(refusal, path);
        assert.equal(refusal.reason, "TASKFLOW_ERR_MEMORY", `${path} carries the reason in its trailer`);
      }
    } finally {
      raw.raw.close();
    }

    // Up and SERVING: workers must keep draining while submits are refused.
    const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, "Health");
    const health = new Health(node.address, grpc.credentials.createInsecure()) as unknown as {
      check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string | number }) => void): void;
      close(): void;
    };
    try {
      const res = await new Promise<{ status: string | number }>((resolve, reject) => health.check({ service: "" }, (err, r) => (err ? reject(err) : resolve(r))));
      assert.ok(res.status === "SERVING" || res.status === 1, `health: ${res.status}`);
    } finally {
      health.close();
    }

    const metrics = await eventually(async () => {
      const m = await scrape(node.metricsUrl!);
      return sum(m, "taskflow_submit_rejected_total") >= 3 ? m : undefined;
    });
    assert.ok(value(metrics, "taskflow_submit_rejected_total", { code: "RESOURCE_EXHAUSTED", reason: "TASKFLOW_ERR_MEMORY" }) >= 2, "the unary refusals, by reason");
    assert.equal(value(metrics, "taskflow_memory_bytes", { kind: "rss", what: "budget" }), RSS_BUDGET);
    assert.ok(value(metrics, "taskflow_memory_bytes", { kind: "rss", what: "used" }) > 100 * MiB);
    assert.equal(value(metrics, "taskflow_tasks_submitted_total"), accepted.length);

    // A worker drains every accepted task.
    worker = new TaskflowWorker({ address: node.address, workerId: "mem-w1", slots: 4, handlers: { big: (input: unknown) => (input as string).length } });
    await worker.start();
    const outcomes = await Promise.all(accepted.map((id) => client.outcome(id)));
    assert.deepEqual(
      outcomes.map((o) => [o.state, o.value]),
      accepted.map(() => ["succeeded", MiB]),
    );
    assert.equal(node.process.exitCode, null, "the node is still running");
  });
});
