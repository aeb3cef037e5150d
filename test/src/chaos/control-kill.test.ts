/**
 * kill -9 of the control node (SQLite store) while an SDK client keeps submitting and workers keep
 * finishing tasks: every submit resolves (the SDK resends with the same request ID), no task is
 * made twice, none is lost, and none runs twice (workers keep results until they are stored).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { freePort, startNode, tempDir } from "../harness.js";

describe("kill -9 of the control node during submits and results", () => {
  it("resolves every submit once, loses nothing and finishes nothing twice", async () => {
    const dir = tempDir();
    const port = await freePort();
    const controlConfig = { roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } };
    let control = await startNode(controlConfig, { dir });
    const workers = await startNode({ roles: ["worker"], worker: { processes: 2, slots: 16, controlAddress: `127.0.0.1:${port}` } });
    const client = new TaskflowClient({ address: control.address, clientId: "survivor" });
    try {
      const total = 1500;
      const submits: Promise<string>[] = [];
      const kills = [300, 900];
      for (let i = 0; i < total; i++) {
        submits.push(client.submit("sleep", { ms: 5, i }, { maxAttempts: 5 }));
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 25));
        if (kills.includes(i)) {
          await control.kill9();
          await new Promise((r) => setTimeout(r, 300));
          control = await startNode(controlConfig, { dir });
        }
      }
      const ids = await Promise.all(submits);
      assert.equal(new Set(ids).size, total, "every submit got its own task");
      const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
      assert.deepEqual(outcomes.filter((o) => o.state !== "succeeded").map((o) => `${o.taskId} ${o.state} ${o.error}`), []);
      const listed = await client.list({ pageSize: 1 });
      assert.equal(Number(listed.totalSize), total, "no task was made twice");
      const twice = outcomes.filter((o) => o.attempt > 1);
      assert.deepEqual(
        twice.map((o) => o.taskId),
        [],
        "a task runs again only when the process running it died; here only the control node died",
      );
      const page = await client.list({ states: [TaskState.SUCCEEDED], pageSize: 1 });
      assert.equal(Number(page.totalSize), total);
    } finally {
      client.close();
      await workers.stop();
      await control.stop();
    }
  });
});
