/**
 * The wire contract as a client that is not the SDK sees it: raw grpc-js calls built from the
 * proto descriptors alone, against real nodes with the durable (SQLite) store.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { TaskService, type SubmitTaskStreamResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { startNode, type StartedNode } from "./harness.js";

describe("SubmitTaskStream with the SQLite store", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  before(async () => {
    node = await startNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  it("acknowledges every batch before it ends a call the client half-closed", async () => {
    for (let trial = 0; trial < 10; trial++) {
      const call = tasks.submitTaskStream();
      const acks: SubmitTaskStreamResponse[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (ack: SubmitTaskStreamResponse) => acks.push(ack));
        call.on("error", reject);
        call.on("end", resolve);
      });
      // Everything at once, then the half-close: what a generated client in another language does.
      for (let batch = 1; batch <= 4; batch++) {
        call.write({ batchId: BigInt(batch), clientId: `trial-${trial}`, specs: [1, 2, 3, 4].map((n) => ({ type: "echo", payload: new TextEncoder().encode(String(n)) })) });
      }
      call.end();
      await ended;
      assert.deepEqual(
        acks.map((a) => a.batchId).sort(),
        [1n, 2n, 3n, 4n],
        `trial ${trial}: every batch acknowledged before the call ended`,
      );
      for (const ack of acks) {
        assert.equal(ack.errorCode, 0, ack.errorMessage);
        assert.equal(ack.taskIds.length, 4);
      }
    }
  });

  it("acknowledges a rejected batch too, and still ends the call OK", async () => {
    const call = tasks.submitTaskStream();
    const acks: SubmitTaskStreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (ack: SubmitTaskStreamResponse) => acks.push(ack));
      call.on("error", reject);
      call.on("end", resolve);
    });
    call.write({ batchId: 1n, specs: [{ type: "echo" }] });
    call.write({ batchId: 2n, specs: [{ type: "not a type" }] });
    call.write({ batchId: 3n, specs: [{ type: "echo" }] });
    call.end();
    await ended;
    const byId = new Map(acks.map((a) => [a.batchId, a]));
    assert.equal(byId.size, 3);
    assert.equal(byId.get(1n)!.taskIds.length, 1);
    assert.equal(byId.get(2n)!.errorCode, status.INVALID_ARGUMENT);
    assert.match(byId.get(2n)!.errorMessage, /1-128 characters/);
    assert.equal(byId.get(3n)!.taskIds.length, 1);
  });
});
