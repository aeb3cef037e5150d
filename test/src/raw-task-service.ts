/**
 * For e2e files that talk the raw wire contract (the generated protobuf client over grpc-js, not
 * the SDK): one node and one raw TaskService client on it per describe.
 */
import assert from "node:assert/strict";
import { after, before } from "node:test";
import type { TaskflowConfigInput } from "@taskflow/core";
import { TaskService } from "@taskflow/proto";
import { createClient, type ServiceClient } from "@taskflow/proto/grpc";
import { startNode, type StartedNode } from "./harness.js";

/** The generated TaskService client: requests and answers exactly as on the wire. */
export type RawTaskService = ServiceClient<typeof TaskService.method>;

/**
 * Registers, in the calling describe, a `before` that starts a node with `config` and a raw
 * TaskService client on it, and an `after` that closes the client and stops the node, asserting
 * that it exits 0. Read `node` and `tasks` from the returned object inside tests and hooks.
 *
 * @example
 * const raw = rawTaskServiceNode({ roles: ["control"] });
 * it("…", async () => { await raw.tasks.submitTask({ spec: { type: "echo" } }); });
 */
export function rawTaskServiceNode(config: TaskflowConfigInput): { readonly node: StartedNode; readonly tasks: RawTaskService } {
  let node: StartedNode | undefined;
  let tasks: RawTaskService | undefined;
  before(async () => {
    node = await startNode(config);
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks?.raw.close();
    if (node) assert.equal(await node.stop(), 0, "the node stops cleanly");
  });
  return {
    get node() {
      assert.ok(node, "the node starts in before()");
      return node;
    },
    get tasks() {
      assert.ok(tasks, "the client is made in before()");
      return tasks;
    },
  };
}
