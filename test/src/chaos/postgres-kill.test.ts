/**
 * The Postgres store end to end: a real PostgreSQL server (started here, stopped after), a
 * control node on it, real worker processes; the control node is killed with -9 while a client
 * submits and tasks run, restarted on the same database, and every acknowledged task finishes,
 * its handler completing once.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { startTestPostgres, type TestPostgres } from "@taskflow/store-postgres/testing";
import { eventually, freePort, startNode, tempDir } from "../harness.js";

/** A handler that appends the task ID to a log once it has finished, to count real runs. */
const HANDLERS = `import { appendFileSync } from "node:fs";
export default {
  work: async (payload, ctx) => {
    await new Promise((r) => setTimeout(r, payload.ms));
    appendFileSync(process.env.TASKFLOW_PG_E2E_LOG, ctx.taskId + "\\n");
    return payload.i;
  },
};
`;

let server: TestPostgres | undefined;
before(async () => {
  server = await startTestPostgres();
});
after(() => server?.stop());

describe("control node on the Postgres store", () => {
  it("keeps every acknowledged task through a kill -9 of the control node, and finishes each once", async (t) => {
    const dir = tempDir();
    const workersDir = tempDir();
    const finished = path.join(workersDir, "finished.log");
    writeFileSync(finished, "");
    process.env["TASKFLOW_PG_E2E_LOG"] = finished;
    const port = await freePort();
    const controlConfig = { roles: ["control" as const], control: { port }, store: { kind: "postgres" as const, url: server!.url, schema: "e2e_kill" } };
    let control = await startNode(controlConfig, { dir, timeoutMs: 60_000 });
    const workers = await startNode(
      { roles: ["worker"], worker: { processes: 2, slots: 16, controlAddress: `127.0.0.1:${port}`, handlers: "handlers.mjs" } },
      { dir: workersDir, files: { "handlers.mjs": HANDLERS } },
    );
    const client = new TaskflowClient({ address: control.address, clientId: "pg-survivor" });
    try {
      const total = 800;
      const submits: Promise<string>[] = [];
      for (let i = 0; i < total; i++) {
        submits.push(client.submit("work", { ms: 5, i }, { maxAttempts: 5 }));
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 25));
        if (i === 400) {
          // Tasks in every stage (some finished) when the kill comes.
          await eventually(async () => ((await client.list({ states: [TaskState.SUCCEEDED], pageSize: 1 })).totalSize > 0n ? true : undefined), 60_000, "a finished task");
          await control.kill9();
          control = await startNode(controlConfig, { dir, timeoutMs: 60_000 });
        }
      }
      const ids = await Promise.all(submits);
      assert.equal(new Set(ids).size, total, "every submit got its own task");
      const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
      assert.deepEqual(outcomes.filter((o) => o.state !== "succeeded").map((o) => `${o.taskId} ${o.state} ${o.error}`), []);
      assert.equal(Number((await client.list({ pageSize: 1 })).totalSize), total, "no task was made twice");

      // Only the control node died, so no handler ran to the end twice. (An attempt can still be
      // counted twice: an assignment the server committed while the node died before sending it
      // is given again after the restart, so `attempt` is not the measure here.)
      const runs = new Map<string, number>();
      for (const id of readFileSync(finished, "utf8").split("\n")) if (id) runs.set(id, (runs.get(id) ?? 0) + 1);
      assert.deepEqual([...runs].filter(([, n]) => n > 1), [], "tasks whose handler finished twice");
      assert.equal(runs.size, total, "every task's handler finished");
      t.diagnostic(`tasks given a second attempt after the kill: ${outcomes.filter((o) => o.attempt > 1).length}`);

      // What the control node reports is what is in Postgres.
      const db = new pg.Client({ connectionString: server!.url });
      await db.connect();
      try {
        const { rows } = await db.query<{ state: string; n: number }>("SELECT state, count(*)::int AS n FROM e2e_kill.tasks GROUP BY state");
        assert.deepEqual(rows, [{ state: "succeeded", n: total }]);
      } finally {
        await db.end();
      }
    } finally {
      client.close();
      await workers.stop();
      await control.stop();
    }
  });
});
