/**
 * A client built with a second, independent gRPC implementation (connect-es's gRPC transport)
 * from the proto contract alone submits tasks and awaits their results.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TaskService, TaskState } from "@taskflow/proto";
import { startNode, type StartedNode } from "./harness.js";

describe("interop: a connect-node gRPC client", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
  });
  after(async () => {
    await node.stop();
  });

  it("submits tasks, streams their results and reads them by ID", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${node.address}` });
    const client = createClient(TaskService, transport);
    const clientId = "connect-client";
    const results = client.subscribeResults({ clientId });
    const iterator = results[Symbol.asyncIterator]();
    const first = await iterator.next(); // the subscription is live
    assert.equal(first.value?.results.length, 0);

    const encoder = new TextEncoder();
    const { taskIds } = await client.submitTasks({
      clientId,
      specs: [1, 2, 3].map((n) => ({ type: "echo", payload: encoder.encode(JSON.stringify({ n })) })),
    });
    assert.equal(taskIds.length, 3);
    const got = new Map<string, string>();
    while (got.size < 3) {
      const next = await iterator.next();
      assert.ok(!next.done);
      for (const r of next.value.results) got.set(r.taskId, new TextDecoder().decode(r.result));
    }
    assert.deepEqual(taskIds.map((id) => JSON.parse(got.get(id)!)), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await iterator.return?.();

    const { task } = await client.getTask({ taskId: taskIds[0]! });
    assert.equal(task?.state, TaskState.SUCCEEDED);
    const single = await client.submitTask({ spec: { type: "echo", payload: encoder.encode('"x"') } });
    const watched = [];
    for await (const msg of client.watchTask({ taskId: single.taskId })) watched.push(msg.task?.state);
    assert.equal(watched.at(-1), TaskState.SUCCEEDED);
  });
});
