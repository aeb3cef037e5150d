/**
 * A secured cluster end to end: real certificates (openssl, made here), real tokens, real
 * processes. Each role is allowed what it may do and refused the rest; TLS and mTLS refuse clients
 * without the CA or a client certificate; a fake worker gets nothing; a live worker's ID cannot be
 * taken by another credential.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request } from "node:https";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { TaskflowClient, TaskflowWorker } from "@taskflow/client";
import { Code } from "@taskflow/core";
import { makePki, type TestPki } from "./certs.js";
import { cli, eventually, startNode, tempDir, type StartedNode } from "./harness.js";

const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;

/** One token per role, and two worker tokens: one for the node's workers, one limited to `echo`. */
const T = { client: tok("client"), other: tok("other"), viewer: tok("viewer"), admin: tok("admin"), worker: tok("worker"), worker2: tok("worker2"), echoOnly: tok("echo") };
const tokens = [
  { hash: sha(T.client), role: "client", tenant: "acme", name: "app-acme" },
  { hash: sha(T.other), role: "client", tenant: "globex", name: "app-globex" },
  { hash: sha(T.viewer), role: "viewer", tenant: "ops", name: "grafana" },
  { hash: sha(T.admin), role: "admin", tenant: "ops", name: "root" },
  { hash: sha(T.worker), role: "worker", tenant: "ops", name: "workers-host-a" },
  { hash: sha(T.worker2), role: "worker", tenant: "ops", name: "workers-host-b" },
  { hash: sha(T.echoOnly), role: "worker", tenant: "ops", name: "echo-only", taskTypes: ["echo"] },
] as const;

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[(err as { code: number }).code] ?? String(err);
  }
}

/** GET/POST over HTTPS trusting `ca`; resolves with the status code. */
function https(url: string, ca: Buffer, init: { method?: string; token?: string; body?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca,
        method: init.method ?? "GET",
        headers: {
          ...(init.token && { authorization: `Bearer ${init.token}` }),
          ...(init.body !== undefined && { "content-type": "application/json" }),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

describe("a secured cluster (TLS + tokens)", () => {
  let pki: TestPki;
  let node: StartedNode;
  let ca: Buffer;
  const client = (token: string | undefined, extra: Partial<ConstructorParameters<typeof TaskflowClient>[0]> = {}) =>
    new TaskflowClient({ address: node.address, tls: { ca }, ...(token && { token }), submitRetryTimeoutMs: 500, ...extra });

  before(async () => {
    pki = makePki(tempDir("taskflow-pki-"));
    ca = pki.read(pki.ca);
    node = await startNode({
      roles: ["control", "worker"],
      worker: { processes: 1, slots: 4, token: T.worker, idPrefix: "host-a" },
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
      auth: { tokens: tokens as never },
      // Beyond loopback (all interfaces), so the HTTP ports ask for tokens too.
      metrics: { host: "0.0.0.0" },
      dashboard: { host: "0.0.0.0" },
    });
  });
  after(async () => {
    await node.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it("runs a task for a client with the CA and a client token, over TLS", async () => {
    const c = client(T.client);
    try {
      assert.deepEqual(await c.run("echo", { hi: 1 }), { hi: 1 });
    } finally {
      c.close();
    }
  });

  it("refuses a TLS client that does not trust the node's CA, and a plaintext client", async () => {
    const untrusting = client(T.client, { tls: { ca: pki.read(pki.otherCa) } });
    const plaintext = new TaskflowClient({ address: node.address, token: T.client, submitRetryTimeoutMs: 500 });
    try {
      assert.equal(await code(untrusting.list({})), "UNAVAILABLE");
      assert.equal(await code(plaintext.list({})), "UNAVAILABLE");
    } finally {
      untrusting.close();
      plaintext.close();
    }
  });

  it("answers UNAUTHENTICATED without a token or with an unknown one, and counts both", async () => {
    for (const token of [undefined, "tfk_not_a_real_token"]) {
      const c = client(token);
      try {
        assert.equal(await code(c.submit("echo", {})), "UNAUTHENTICATED");
        assert.equal(await code(c.list({})), "UNAUTHENTICATED");
        assert.equal(await code(c.clusterState()), "UNAUTHENTICATED");
      } finally {
        c.close();
      }
    }
    assert.doesNotMatch(node.logs(), /tfk_not_a_real_token/, "the secret is never logged");
    assert.match(node.logs(), /call refused/);
  });

  it("lets each role do what it may and answers PERMISSION_DENIED for the rest", async () => {
    const [c, viewer, admin, worker] = [client(T.client), client(T.viewer), client(T.admin), client(T.worker)];
    try {
      const id = await c.submit("echo", { n: 1 });
      // client: TaskService, not the cluster's state or a drain
      assert.equal(await code(c.get(id)), "OK");
      assert.equal(await code(c.clusterState()), "PERMISSION_DENIED");
      assert.equal(await code(c.drainWorker("host-a-w0")), "PERMISSION_DENIED");
      // viewer: reads only
      assert.equal(await code(viewer.clusterState()), "OK");
      assert.equal(await code(viewer.list({})), "OK");
      assert.equal(await code(viewer.submit("echo", {})), "PERMISSION_DENIED");
      assert.equal(await code(viewer.cancel(id, "")), "PERMISSION_DENIED");
      assert.equal(await code(viewer.drainWorker("host-a-w0")), "PERMISSION_DENIED");
      // worker: only a worker session
      assert.equal(await code(worker.submit("echo", {})), "PERMISSION_DENIED");
      assert.equal(await code(worker.list({})), "PERMISSION_DENIED");
      // admin: everything (a drain of an unknown worker reaches the register: NOT_FOUND)
      assert.equal(await code(admin.get(id)), "OK");
      assert.equal(await code(admin.clusterState()), "OK");
      assert.equal(await code(admin.drainWorker("no-such-worker")), "NOT_FOUND");
    } finally {
      for (const x of [c, viewer, admin, worker]) x.close();
    }
  });

  it("gives a fake worker without a worker token nothing", async () => {
    for (const token of [undefined, T.client]) {
      const fake = new TaskflowWorker({ address: node.address, tls: { ca }, ...(token && { token }), workerId: `fake-${token ? "client" : "none"}`, handlers: { echo: () => "forged" } });
      assert.equal(await code(fake.start()), token ? "PERMISSION_DENIED" : "UNAUTHENTICATED");
      await fake.stop(100);
    }
    const c = client(T.client);
    try {
      assert.deepEqual(await c.run("echo", "real"), "real", "the real worker ran it");
    } finally {
      c.close();
    }
  });

  it("refuses another credential that claims a live worker's ID, and a worker token offering types it may not take", async () => {
    const admin = client(T.admin);
    try {
      const state = await admin.clusterState();
      assert.ok(state.workers.some((w) => w.workerId === "host-a-w0"), "the node's worker is live");
      const hijacker = new TaskflowWorker({ address: node.address, tls: { ca }, token: T.worker2, workerId: "host-a-w0", handlers: { echo: () => "forged" } });
      assert.equal(await code(hijacker.start()), "PERMISSION_DENIED");
      await hijacker.stop(100);
      const limited = new TaskflowWorker({ address: node.address, tls: { ca }, token: T.echoOnly, workerId: "limited", handlers: { echo: () => 1, cpu: () => 2 } });
      assert.equal(await code(limited.start()), "PERMISSION_DENIED");
      await limited.stop(100);
      const fine = new TaskflowWorker({ address: node.address, tls: { ca }, token: T.echoOnly, workerId: "echo-only-1", handlers: { echo: () => 1 } });
      await fine.start();
      await fine.stop(500);
      // The real worker still has its ID and runs tasks.
      const now = await admin.clusterState();
      assert.equal(now.workers.find((w) => w.workerId === "host-a-w0")?.state, 1 /* ALIVE */);
    } finally {
      admin.close();
    }
  });

  it("serves metrics and the dashboard over HTTPS: viewer reads, admin acts, others are refused", async () => {
    const metrics = node.metricsUrl!;
    const dashboard = node.dashboardUrl!;
    assert.match(metrics, /^https:/);
    assert.equal(await https(metrics, ca), 401);
    assert.equal(await https(metrics, ca, { token: T.client }), 403);
    assert.equal(await https(metrics, ca, { token: T.viewer }), 200);
    assert.equal(await https(`${dashboard}api/state`, ca), 401);
    assert.equal(await https(`${dashboard}api/state`, ca, { token: T.viewer }), 200);
    assert.equal(await https(`${dashboard}api/workers/host-a-w9/drain`, ca, { method: "POST", token: T.viewer, body: "{}" }), 403);
    assert.equal(await https(`${dashboard}api/workers/host-a-w9/drain`, ca, { method: "POST", token: T.admin, body: "{}" }), 404);
    const text = await eventually(async () => {
      const res = await new Promise<string>((resolve, reject) => {
        request(metrics, { ca, headers: { authorization: `Bearer ${T.admin}` } }, (r) => {
          let body = "";
          r.on("data", (d: Buffer) => (body += d.toString()));
          r.on("end", () => resolve(body));
        })
          .on("error", reject)
          .end();
      });
      return /taskflow_auth_failures_total\{reason="bad_token"\} [1-9]/.test(res) ? res : undefined;
    });
    assert.match(text, /taskflow_auth_failures_total\{reason="wrong_role"\} [1-9]/);
  });

  it("works from the CLI with --ca and --token (or TASKFLOW_TOKEN)", async () => {
    const ok = await cli(["--address", node.address, "--ca", pki.ca, "submit", "echo", '{"cli":true}', "--wait"], { TASKFLOW_TOKEN: T.client });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), '{"cli":true}');
    const refused = await cli(["--address", node.address, "--ca", pki.ca, "workers"], { TASKFLOW_TOKEN: T.client });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /role client may not call/);
  });
});

describe("mTLS (tls.requireClientCert)", () => {
  let pki: TestPki;
  let node: StartedNode;
  before(async () => {
    pki = makePki(tempDir("taskflow-pki-"));
    node = await startNode({
      roles: ["control", "worker"],
      worker: { processes: 1, token: T.worker },
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireClientCert: true },
      auth: { tokens: tokens as never },
    });
  });
  after(async () => {
    await node.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it("refuses a client without a client certificate and serves one with a certificate from the CA", async () => {
    const ca = pki.read(pki.ca);
    const without = new TaskflowClient({ address: node.address, tls: { ca }, token: T.client, submitRetryTimeoutMs: 500 });
    const app = pki.client("app-1");
    const withCert = new TaskflowClient({ address: node.address, tls: { ca, cert: pki.read(app.cert), key: pki.read(app.key) }, token: T.client });
    try {
      assert.equal(await code(without.list({})), "UNAVAILABLE");
      assert.deepEqual(await withCert.run("echo", 7), 7, "the node's own worker connected with the node's certificate");
    } finally {
      without.close();
      withCert.close();
    }
  });

  it("binds a worker ID to the token and certificate that registered it", async () => {
    const ca = pki.read(pki.ca);
    const a = pki.client("host-x");
    const b = pki.client("host-y");
    const first = new TaskflowWorker({ address: node.address, tls: { ca, cert: pki.read(a.cert), key: pki.read(a.key) }, token: T.worker2, workerId: "shared-id", handlers: { echo: (p) => p } });
    await first.start();
    try {
      // The same token from another host's certificate is another identity.
      const second = new TaskflowWorker({ address: node.address, tls: { ca, cert: pki.read(b.cert), key: pki.read(b.key) }, token: T.worker2, workerId: "shared-id", handlers: { echo: () => "forged" } });
      assert.equal(await code(second.start()), "PERMISSION_DENIED");
      await second.stop(100);
    } finally {
      await first.stop(500);
    }
  });
});

describe("binding beyond loopback", () => {
  it("refuses to start without TLS and tokens, naming the keys and the fix", async () => {
    const err = await startNode({ roles: ["control"], control: { host: "0.0.0.0" } }).then(
      (n) => (void n.stop(), undefined),
      (e: Error) => e.message,
    );
    assert.ok(err, "the node did not start");
    assert.match(err, /control\.host \(0\.0\.0\.0\): binds beyond loopback without tls\.cert\/tls\.key and auth\.tokens/);
    assert.match(err, /"insecure": true/);
  });

  it("starts with insecure: true, with a warning line", async () => {
    const node = await startNode({ roles: ["control"], control: { host: "0.0.0.0" }, insecure: true });
    try {
      assert.match(node.logs(), /insecure: true: serving beyond loopback without TLS and tokens/);
    } finally {
      await node.stop();
    }
  });
});

describe("taskflow token create", () => {
  it("prints a fresh token and the entry to store, which the node then accepts", async () => {
    const made = await cli(["token", "create", "--role", "client", "--tenant", "acme", "--name", "cli-made", "--json"]);
    assert.equal(made.code, 0, made.stderr);
    const { token, entry } = JSON.parse(made.stdout) as { token: string; entry: { hash: string; role: string; tenant: string; name: string } };
    assert.match(token, /^tfk_[A-Za-z0-9_-]{43}$/);
    assert.equal(entry.hash, sha(token));
    assert.deepEqual({ role: entry.role, tenant: entry.tenant, name: entry.name }, { role: "client", tenant: "acme", name: "cli-made" });
    const again = JSON.parse((await cli(["token", "create", "--role", "client", "--json"])).stdout) as { token: string };
    assert.notEqual(again.token, token);
    const node = await startNode({ roles: ["control"], auth: { tokens: [entry as never] } });
    const c = new TaskflowClient({ address: node.address, token });
    try {
      assert.equal(await code(c.list({})), "OK");
    } finally {
      c.close();
      await node.stop();
    }
  });
});
