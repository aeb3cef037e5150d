/**
 * Retries and deduplication as users do them: "submit again with the same key, then await", from
 * the same client, another one, or a new client with the same client ID; and `request_id` on the
 * wire, which makes a retried submit call answer the tasks it made the first time.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskService } from "@taskflow/proto";
import { encodeSubmitTaskStream, type decodeSubmitAck } from "@taskflow/proto/fast";
import { createClient } from "@taskflow/proto/grpc";
import { startNode, type StartedNode } from "../harness.js";

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** Settles or fails within `ms`: an await that never settles is the defect under test. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms).unref())]);
}

for (const kind of ["memory", "sqlite"] as const) {
  describe(`awaiting a deduplicated task (${kind} store)`, () => {
    let node: StartedNode;
    before(async () => {
      node = await startNode({ store: { kind, path: "tasks.db" }, worker: { processes: 1, slots: 8 } });
    });
    after(async () => {
      await node.stop();
    });

    it("settles for the same client, after the task finished", async () => {
      const client = new TaskflowClient({ address: node.address });
      try {
        const first = await client.submit("echo", { n: 1 }, { idempotencyKey: `same-${kind}` });
        assert.deepEqual(await client.result(first), { n: 1 });
        const again = await client.submit("echo", { n: 2 }, { idempotencyKey: `same-${kind}` });
        assert.equal(again, first);
        assert.deepEqual(await within(client.result(again), 5000, "result() of a deduplicated ID"), { n: 1 });
        const outcome = await within(client.outcome(again), 5000, "outcome() of a deduplicated ID");
        assert.equal(outcome.state, "succeeded");
      } finally {
        client.close();
      }
    });

    it("settles for the same client while the first await is pending, and both awaits get it", async () => {
      const client = new TaskflowClient({ address: node.address });
      try {
        const first = await client.submit("sleep", { ms: 300 }, { idempotencyKey: `pending-${kind}` });
        const firstWait = client.outcome(first);
        const again = await client.submit("sleep", { ms: 300 }, { idempotencyKey: `pending-${kind}` });
        assert.equal(again, first);
        const [a, b] = await within(Promise.all([firstWait, client.outcome(again)]), 5000, "both awaits");
        assert.equal(a.state, "succeeded");
        assert.equal(b.state, "succeeded");
      } finally {
        client.close();
      }
    });

    it("settles for another client and for a new client with the same client ID", async () => {
      const owner = new TaskflowClient({ address: node.address, clientId: `owner-${kind}` });
      const other = new TaskflowClient({ address: node.address });
      const reborn = new TaskflowClient({ address: node.address, clientId: `owner-${kind}` });
      try {
        const id = await owner.submit("sleep", { ms: 200 }, { idempotencyKey: `shared-${kind}` });
        const fromOther = await other.submit("sleep", { ms: 200 }, { idempotencyKey: `shared-${kind}` });
        assert.equal(fromOther, id);
        assert.equal((await within(other.outcome(fromOther), 5000, "another client's await")).state, "succeeded");
        assert.equal((await owner.outcome(id)).state, "succeeded");
        const fromReborn = await reborn.submit("sleep", { ms: 200 }, { idempotencyKey: `shared-${kind}` });
        assert.equal(fromReborn, id);
        assert.equal((await within(reborn.outcome(fromReborn), 5000, "a new client's await")).state, "succeeded");
      } finally {
        owner.close();
        other.close();
        reborn.close();
      }
    });

    it("answers a repeated request_id with the same tasks, deduplicated, and makes none twice", async () => {
      const raw = createClient(TaskService, node.address);
      try {
        const specs = [{ type: "echo", payload: json(1) }, { type: "echo", payload: json(2), idempotencyKey: `rk-${kind}` }, { type: "echo", payload: json(3) }];
        const clientId = `raw-${kind}`;
        const first = await raw.submitTasks({ specs, clientId, requestId: "req-1" });
        assert.deepEqual(first.deduplicated, [], "new tasks carry no flags");
        const second = await raw.submitTasks({ specs, clientId, requestId: "req-1" });
        assert.deepEqual(second.taskIds, first.taskIds);
        assert.deepEqual(second.deduplicated, [true, true, true]);
        // Another client's request with the same ID is its own request.
        const foreign = await raw.submitTasks({ specs: [specs[0]!], clientId: `raw2-${kind}`, requestId: "req-1" });
        assert.ok(!first.taskIds.includes(foreign.taskIds[0]!));
        const single = await raw.submitTask({ spec: specs[0]!, clientId, requestId: "req-2" });
        const singleAgain = await raw.submitTask({ spec: specs[0]!, clientId, requestId: "req-2" });
        assert.equal(singleAgain.taskId, single.taskId);
        assert.equal(singleAgain.deduplicated, true);
        // The bulk stream, with both copies in flight at once: the second waits for the first.
        const stream = raw.submitTaskStream();
        const acks: ReturnType<typeof decodeSubmitAck>[] = [];
        stream.on("data", (ack: ReturnType<typeof decodeSubmitAck>) => acks.push(ack));
        const ended = new Promise<void>((resolve, reject) => {
          stream.on("end", resolve);
          stream.on("error", reject);
        });
        const batch = encodeSubmitTaskStream(7, [{ type: "echo", payload: json(4), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0 }], clientId, "req-3");
        stream.write(batch as never);
        stream.write(batch as never);
        stream.end();
        await ended;
        assert.equal(acks.length, 2);
        assert.equal(acks[0]!.taskIds[0], acks[1]!.taskIds[0]);
        assert.deepEqual(acks.map((a) => a.deduplicated.length ? a.deduplicated[0] : false).sort(), [false, true]);
        const listed = await raw.listTasks({ clientId, pageSize: 100 });
        assert.equal(Number(listed.totalSize), 5, "req-1 made 3 tasks, req-2 one, req-3 one");
        await assert.rejects(raw.submitTask({ spec: specs[0]!, clientId, requestId: "r".repeat(129) }), /request_id must be at most 128/);
      } finally {
        raw.raw.close();
      }
    });
  });
}
