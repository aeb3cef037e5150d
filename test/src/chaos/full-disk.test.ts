/**
 * A full disk under the SQLite store (a real tmpfs, filled while tasks run): results reach
 * clients only once stored, the node says why it stalls (health, cluster state, metrics, CLI),
 * takes no new work, and once space is back every task finishes exactly once, also across a
 * restart.
 *
 * A full file system stops SQLite only when a write needs a new block. Once the store's
 * checkpoint thread (ADR 0033) has copied the WAL back, the next commits rewrite the WAL file
 * from its start, in blocks it already has, and the node rightly stores every result on a full
 * disk. So a reader here holds a snapshot from before the tasks were submitted (as a backup
 * would) until the disk is full: the WAL cannot have started over, and the database file must
 * grow to take it in, so every write after the fill needs space.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, unlinkSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { service as healthService } from "grpc-health-check";
import { TaskflowClient } from "@taskflow/client";
import { TaskService, TaskState } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, eventually, freePort, startNode, tempDir, type StartedNode } from "../harness.js";
import { fillUp } from "./scenarios.js";
import { parsePrometheus, value } from "../prometheus.js";

async function healthStatus(address: string): Promise<string> {
  const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, "Health");
  const health = new Health(address, grpc.credentials.createInsecure()) as unknown as {
    check(req: { service: string }, cb: (err: Error | null, res: { status: string | number }) => void): void;
    close(): void;
  };
  try {
    const res = await new Promise<{ status: string | number }>((resolve, reject) => health.check({ service: "" }, (err, r) => (err ? reject(err) : resolve(r))));
    return String(res.status);
  } finally {
    health.close();
  }
}

describe("a full disk under the SQLite store", () => {
  const dir = tempDir();
  const data = path.join(dir, "data");
  const filler = path.join(data, "filler");
  let port: number;
  let node: StartedNode | undefined;

  before(async () => {
    mkdirSync(data);
    // 24 MiB of real file system: enough for the tasks, small enough to fill in a moment.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m", "tmpfs", data]);
    port = await freePort();
  });
  after(async () => {
    await node?.stop();
    execFileSync("umount", ["-l", data]);
    rmSync(dir, { recursive: true, force: true });
  });

  const config = () => ({
    control: { port },
    store: { kind: "sqlite" as const, path: "data/tasks.db" },
    worker: { processes: 1, slots: 40, prefetch: 0 },
    log: { level: "warn" as const },
  });

  it("holds results back until they are stored, says why, takes no new work, and runs nothing twice", async () => {
    node = await startNode(config(), { dir });
    const client = new TaskflowClient({ address: node.address, clientId: "disk" });
    const raw = createClient(TaskService, node.address);
    let reader: Database.Database | undefined = new Database(path.join(data, "tasks.db"), { readonly: true });
    try {
      reader.prepare("BEGIN").run();
      reader.prepare("SELECT COUNT(*) FROM tasks").get();
      // Payloads of a few KiB make every state change write fresh pages, so the log must grow.
      const pad = "x".repeat(4096);
      const ids = await client.submitMany(Array.from({ length: 160 }, (_, i) => ({ type: "sleep", payload: { ms: 1500, i, pad }, maxAttempts: 1 })));
      const outcomes = ids.map((id) => client.outcome(id));
      let delivered = 0;
      for (const o of outcomes) o.then(() => delivered++, () => {});
      await eventually(async () => ((await client.clusterState()).running > 0n ? true : undefined), 10_000, "tasks running");

      fillUp(filler);
      reader.prepare("COMMIT").run();
      reader.close();
      reader = undefined;
      // The running tasks finish 1.5 s after they started; their results cannot be stored.
      const cluster = await eventually(async () => {
        const state = await client.clusterState();
        return state.store?.writable === false ? state : undefined;
      }, 10_000, "the node to notice the full disk");
      assert.match(cluster.store!.error, /full|space/i, "the cluster state says why");
      assert.equal(cluster.store!.kind, "sqlite");
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(delivered, 0, "no result reached the client while it could not be stored");
      assert.equal(await healthStatus(node.address), "NOT_SERVING");
      const metrics = parsePrometheus(await (await fetch(node.metricsUrl!)).text());
      assert.equal(value(metrics, "taskflow_store_writable"), 0);
      assert.ok(value(metrics, "taskflow_store_write_failures_total") > 0);
      const workers = await cli(["workers", "--address", node.address]);
      assert.match(workers.stdout, /STORE CANNOT WRITE \(sqlite\)/);
      assert.match(node.logs(), /the task store cannot save task updates/);
      // New work is refused, naming the cause, with nothing accepted.
      await assert.rejects(
        raw.submitTask({ spec: { type: "echo", payload: new Uint8Array([123, 125]) }, clientId: "disk" }),
        (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE && /store cannot write/.test(err.details),
      );
      // Once the node knew, it assigned nothing more: 40 slots ran (and maybe 40 more assigned
      // while the failing write was still on its way); the rest stay queued.
      const queued = (await client.clusterState()).queued;
      assert.ok(queued >= 80n, `tasks stay queued while the store cannot write (queued ${queued})`);

      unlinkSync(filler);
      const finished = await Promise.all(outcomes);
      assert.deepEqual(
        finished.filter((o) => o.state !== "succeeded").map((o) => `${o.taskId}: ${o.state} ${o.error}`),
        [],
        "every task succeeded once space was back",
      );
      assert.equal(await healthStatus(node.address), "SERVING");
      assert.ok(finished.every((o) => o.attempt === 1), "no task ran twice");
    } finally {
      reader?.close();
      raw.raw.close();
      client.close();
    }

    // What the clients were told is what the store kept: after a restart nothing runs again.
    assert.equal(await node.stop(), 0);
    node = await startNode(config(), { dir });
    const again = new TaskflowClient({ address: node.address });
    try {
      const state = await again.clusterState();
      assert.equal(state.queued + state.running, 0n, "nothing unfinished after the restart");
      assert.equal(state.succeeded, 160n);
      const page = await again.list({ states: [TaskState.SUCCEEDED], pageSize: 200 });
      assert.ok(page.tasks.every((t) => t.attempt === 1));
    } finally {
      again.close();
    }
  });
});
