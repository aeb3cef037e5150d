/**
 * Standby control nodes (config `ha`, ADR 0028) against a real Postgres: what a standby answers
 * (UNAVAILABLE, TASKFLOW_ERR_NOT_LEADER, the leader's address in the ErrorInfo), the roles in
 * GetClusterState and `taskflow status`, the SDK and a worker given both addresses, a clean
 * stop of the leader handing over at once (the lease is released, not waited out), and another
 * client's outcome() and watch() of a deduplicated task waiting through that handover.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import { TaskflowClient } from "@taskflow/client";
import { TaskService, TaskState } from "@taskflow/proto";
import { createClient, reasonFromTrailers } from "@taskflow/proto/grpc";
import { startTestPostgres, type TestPostgres } from "@taskflow/store-postgres/testing";
import { cli, eventually, freePort, startNode, type StartedNode } from "./harness.js";

const LEASE_TTL_MS = 2000;

let server: TestPostgres | undefined;
before(async () => {
  server = await startTestPostgres();
});
after(() => server?.stop());

async function roleOf(address: string): Promise<{ role: string; epoch: number; leader: string } | undefined> {
  const c = new TaskflowClient({ address, submitRetryTimeoutMs: 0 });
  try {
    const l = (await c.clusterState()).leadership;
    return l ? { role: l.role, epoch: Number(l.epoch), leader: l.leader } : undefined;
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

describe("standby control nodes on one Postgres", () => {
  it("answer NOT_LEADER with the leader's address, show their roles, and hand over at once on a clean stop", async () => {
    const ports = [await freePort(), await freePort()];
    const addresses = ports.map((p) => `127.0.0.1:${p}`);
    const config = (port: number) => ({
      roles: ["control" as const],
      control: { port },
      store: { kind: "postgres" as const, url: server!.url, schema: "e2e_ha" },
      ha: { enabled: true, leaseTtlMs: LEASE_TTL_MS },
    });
    // The first leads (it starts alone); the second is a standby.
    const nodes: StartedNode[] = [await startNode(config(ports[0]!), { timeoutMs: 60_000 })];
    await eventually(async () => ((await roleOf(addresses[0]!))?.role === "leader" ? true : undefined), 30_000, "node 0 to lead");
    nodes.push(await startNode(config(ports[1]!), { timeoutMs: 60_000 }));
    const workers = await startNode({ roles: ["worker"], worker: { processes: 1, slots: 2, controlAddress: `${addresses[1]},${addresses[0]}` } });
    try {
      const leader = (await roleOf(addresses[0]!))!;
      const standby = await eventually(async () => {
        const r = await roleOf(addresses[1]!);
        return r?.role === "standby" && r.leader ? r : undefined;
      }, 30_000, "node 1 to name the leader");
      assert.equal(standby.leader, addresses[0], "the standby names the leader by its advertised address");
      assert.equal(standby.epoch, leader.epoch);
      assert.equal(leader.leader, addresses[0]);

      // A raw gRPC client: the status, the reason and the leader in the ErrorInfo.
      const raw = createClient(TaskService, addresses[1]!);
      try {
        const err = (await raw.submitTask({ spec: { type: "echo" }, requestId: "r1" }).then(
          () => assert.fail("a standby accepted a task"),
          (e: unknown) => e,
        )) as ServiceError;
        assert.equal(err.code, status.UNAVAILABLE, err.details);
        assert.match(err.details, new RegExp(`standby; the leader is ${addresses[0]}`));
        assert.deepEqual(reasonFromTrailers(err.metadata), { reason: "TASKFLOW_ERR_NOT_LEADER", metadata: { leader: addresses[0] } });
        // Streams too: a worker's session, results.
        const stream = raw.subscribeResults({ clientId: "x" });
        const streamErr = await new Promise<ServiceError>((resolve) => stream.on("error", resolve));
        assert.equal(streamErr.code, status.UNAVAILABLE);
        assert.equal(reasonFromTrailers(streamErr.metadata)?.reason, "TASKFLOW_ERR_NOT_LEADER");
      } finally {
        raw.raw.close();
      }

      // The SDK given the standby first goes to the leader; so does the worker (standby first too).
      const client = new TaskflowClient({ address: [addresses[1]!, addresses[0]!] });
      try {
        assert.deepEqual(await client.run("echo", { hello: 1 }), { hello: 1 });
      } finally {
        client.close();
      }

      const st = await cli(["--control", addresses.join(","), "status", "--json"]);
      assert.equal(st.code, 0, st.stderr);
      const rows = JSON.parse(st.stdout) as { address: string; role: string; epoch: number; leader: string }[];
      assert.deepEqual(
        rows.map((r) => [r.address, r.role, r.epoch, r.leader]),
        [
          [addresses[0], "leader", leader.epoch, addresses[0]],
          [addresses[1], "standby", leader.epoch, addresses[0]],
        ],
      );
      const text = await cli(["status"], { TASKFLOW_CONTROL: addresses.join(",") });
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /NODE\s+ROLE\s+EPOCH\s+LEADER/);
      assert.match(text.stdout, new RegExp(`${addresses[1]}\\s+standby`));

      // A deduplicated task (issue 15): another client's submit with the same idempotency key
      // gets the running task, which it follows with WatchTask, through the handover below.
      const owner = new TaskflowClient({ address: addresses });
      const other = new TaskflowClient({ address: addresses });
      const dupId = await owner.submit("sleep", { ms: 2500 }, { idempotencyKey: "ha-dedup" });
      assert.equal(await other.submit("sleep", { ms: 2500 }, { idempotencyKey: "ha-dedup" }), dupId);
      const followed = other.outcome(dupId);
      const seen: string[] = [];
      const watched = (async () => {
        for await (const task of other.watch(dupId)) seen.push(TaskState[task.state]);
      })();
      await eventually(async () => (seen.includes("RUNNING") ? true : undefined), 30_000, "the deduplicated task to run");

      // A clean stop releases the lease: the standby leads well before the lease would expire.
      const stoppedAt = Date.now();
      assert.equal(await nodes[0]!.stop(), 0);
      const next = await eventually(async () => {
        const r = await roleOf(addresses[1]!);
        return r?.role === "leader" ? r : undefined;
      }, 30_000, "node 1 to lead");
      const tookMs = Date.now() - stoppedAt;
      assert.equal(next.epoch, leader.epoch + 1);
      assert.ok(tookMs < 10_000, `took over ${tookMs} ms after the stop`);
      const after = new TaskflowClient({ address: addresses });
      try {
        assert.deepEqual(await after.run("echo", { again: 2 }), { again: 2 }, "the worker followed the new leader");
      } finally {
        after.close();
      }
      try {
        const outcome = await followed;
        assert.equal(outcome.state, "succeeded", "outcome() of the deduplicated task waited through the handover");
        await watched;
        assert.equal(seen.at(-1), "SUCCEEDED", `watch() ended with the final state: ${seen.join(" ")}`);
        assert.equal(seen.filter((s) => s === "SUCCEEDED").length, 1, `the final state once: ${seen.join(" ")}`);
        assert.equal((await owner.outcome(dupId)).state, "succeeded");
      } finally {
        owner.close();
        other.close();
      }
    } finally {
      await workers.stop();
      for (const n of nodes) await n.stop();
    }
  });

  it("refuses ha without the Postgres store, naming the key and the fix", async () => {
    await assert.rejects(startNode({ roles: ["control"], ha: { enabled: true } }), /ha\.enabled: needs store\.kind "postgres"/);
  });
});
