/**
 * Standby control nodes (ADR 0028) serving gRPC over TLS with bearer tokens, on one real
 * Postgres: a standby's NOT_LEADER answer names the leader by an address the SDK can verify the
 * certificate of; the SDK and a worker given both addresses (standby first) follow the leader
 * over TLS, also across a kill -9 of the leader; and the standby elected late serves the control
 * metrics and the dashboard as the node that led from the start did (HTTPS, the node's
 * certificate).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { Code, TaskflowError } from "@taskflow/core";
import { startTestPostgres, type TestPostgres } from "@taskflow/store-postgres/testing";
import { makePki, type TestPki } from "./certs.js";
import { eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";
import { parsePrometheus, sum } from "./prometheus.js";

const LEASE_TTL_MS = 2000;
const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;
const T = { client: tok("client"), viewer: tok("viewer"), worker: tok("worker") };
const tokens = [
  { hash: sha(T.client), role: "client", tenant: "acme", name: "app" },
  { hash: sha(T.viewer), role: "viewer", tenant: "ops", name: "ops" },
  { hash: sha(T.worker), role: "worker", tenant: "ops", name: "workers" },
];

let pg: TestPostgres | undefined;
let pki: TestPki | undefined;
before(async () => {
  pg = await startTestPostgres();
  pki = makePki(tempDir("taskflow-pki-"));
});
after(async () => {
  await pg?.stop();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

/** GET over HTTPS trusting the test CA: the status and the body. */
function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("standby control nodes over TLS with tokens", () => {
  it("name the leader by a verifiable address; the SDK and workers follow it over TLS, across a kill -9; the late leader serves metrics and the dashboard", async () => {
    const ca = pki!.read(pki!.ca);
    const [c0, c1, m0, m1, d0, d1] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const addresses = [`127.0.0.1:${c0}`, `127.0.0.1:${c1}`];
    const config = (control: number, metrics: number, dashboard: number) => ({
      roles: ["control" as const],
      control: { port: control },
      store: { kind: "postgres" as const, url: pg!.url, schema: "e2e_ha_tls" },
      ha: { enabled: true, leaseTtlMs: LEASE_TTL_MS },
      tls: { cert: pki!.serverCert, key: pki!.serverKey, ca: pki!.ca },
      auth: { tokens: tokens as never },
      metrics: { port: metrics },
      dashboard: { port: dashboard },
    });
    const roleOf = async (address: string) => {
      const c = new TaskflowClient({ address, tls: { ca }, token: T.viewer, submitRetryTimeoutMs: 0 });
      try {
        const l = (await c.clusterState()).leadership;
        return l ? { role: l.role, epoch: Number(l.epoch), leader: l.leader } : undefined;
      } catch {
        return undefined;
      } finally {
        c.close();
      }
    };
    const metricsOf = async (port: number) => {
      const res = await httpsGet(`https://127.0.0.1:${port}/metrics`, ca);
      assert.equal(res.status, 200, res.body);
      return parsePrometheus(res.body);
    };

    const nodes: StartedNode[] = [await startNode(config(c0, m0, d0), { timeoutMs: 60_000 })];
    let workers: StartedNode | undefined;
    const client = new TaskflowClient({ address: [addresses[1]!, addresses[0]!], tls: { ca }, token: T.client });
    try {
      const first = await eventually(async () => {
        const r = await roleOf(addresses[0]!);
        return r?.role === "leader" ? r : undefined;
      }, 30_000, "node 0 to lead");
      nodes.push(await startNode(config(c1, m1, d1), { timeoutMs: 60_000 }));
      await eventually(async () => ((await roleOf(addresses[1]!))?.leader === addresses[0] ? true : undefined), 30_000, "node 1 to name the leader");
      // A worker given the standby first, with the CA and its token.
      workers = await startNode({ roles: ["worker"], worker: { processes: 1, slots: 2, token: T.worker, controlAddress: `${addresses[1]},${addresses[0]}` }, tls: { ca: pki!.ca } });

      // Over TLS, the standby refuses a client call with the leader's address, which passes the certificate check.
      const direct = new TaskflowClient({ address: addresses[1]!, tls: { ca }, token: T.client, submitRetryTimeoutMs: 0 });
      try {
        const err = await direct.get("no-such-task").then(
          () => assert.fail("a standby answered a task query"),
          (e: unknown) => e,
        );
        assert.ok(TaskflowError.is(err));
        assert.equal(err.code, Code.UNAVAILABLE, err.message);
        assert.equal(err.reason, "TASKFLOW_ERR_NOT_LEADER");
        assert.equal(err.metadata["leader"], addresses[0]);
      } finally {
        direct.close();
      }

      // The SDK (standby first) reaches the leader over TLS; the worker did too.
      assert.deepEqual(await client.run("echo", { n: 1 }), { n: 1 });
      // The first leader serves the control metrics and the dashboard; the standby has neither yet.
      assert.ok(sum(await metricsOf(m0), "taskflow_tasks_submitted_total") >= 1, "the leader counts the task");
      assert.equal(sum(await metricsOf(m1), "taskflow_tasks_submitted_total"), 0, "a standby has no control metrics");
      assert.equal((await httpsGet(`https://127.0.0.1:${d0}/api/state`, ca)).status, 200);
      await assert.rejects(httpsGet(`https://127.0.0.1:${d1}/api/state`, ca), /ECONNREFUSED/, "a standby serves no dashboard");

      // kill -9 of the leader: its lease runs out and the standby takes over.
      await nodes[0]!.kill9();
      const next = await eventually(async () => {
        const r = await roleOf(addresses[1]!);
        return r?.role === "leader" ? r : undefined;
      }, 30_000, "node 1 to lead");
      assert.equal(next.epoch, first.epoch + 1);
      // The same client follows it over TLS, and so does the worker.
      assert.deepEqual(await client.run("echo", { n: 2 }), { n: 2 });

      // The late leader serves metrics and the dashboard like the first one did.
      const samples = await metricsOf(m1);
      assert.ok(sum(samples, "taskflow_tasks_submitted_total") >= 1, "the new leader counts the task submitted to it");
      assert.ok(sum(samples, "taskflow_tasks_completed_total") >= 1, "and its result");
      const state = await httpsGet(`https://127.0.0.1:${d1}/api/state`, ca);
      assert.equal(state.status, 200, state.body);
      const counts = (JSON.parse(state.body) as { counts: Record<string, number> }).counts;
      assert.ok((counts["succeeded"] ?? 0) >= 2, `its dashboard shows both tasks from the shared store: ${state.body.slice(0, 200)}`);
    } finally {
      client.close();
      await workers?.stop();
      for (const n of nodes) await n.stop();
    }
  });
});
