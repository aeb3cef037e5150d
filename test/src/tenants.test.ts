/**
 * Tenants end to end, with real tokens for two client tenants, a viewer and an admin on a real
 * node with real worker processes: a tenant cannot see, watch, cancel, list or await another's
 * tasks nor receive its results; operators see all; request IDs and idempotency keys are scoped
 * per tenant; quotas refuse with RESOURCE_EXHAUSTED and TASKFLOW_ERR_QUOTA; metrics per tenant.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TaskflowClient, wireError } from "@taskflow/client";
import { TaskflowError } from "@taskflow/core";
import { TaskService, TaskState, type SubscribeResultsResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, eventually, startNode, type StartedNode } from "./harness.js";
import { scrape, value } from "./prometheus.js";

const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;

const T = {
  acme: tok("acme"),
  globex: tok("globex"),
  limited: tok("limited"),
  throttled: tok("throttled"),
  viewer: tok("viewer"),
  admin: tok("admin"),
  worker: tok("worker"),
};
const tokens = [
  { hash: sha(T.acme), role: "client", tenant: "acme", name: "app-acme" },
  { hash: sha(T.globex), role: "client", tenant: "globex", name: "app-globex" },
  { hash: sha(T.limited), role: "client", tenant: "limited", name: "app-limited" },
  { hash: sha(T.throttled), role: "client", tenant: "throttled", name: "app-throttled" },
  { hash: sha(T.viewer), role: "viewer", tenant: "ops", name: "grafana" },
  { hash: sha(T.admin), role: "admin", tenant: "ops", name: "root" },
  { hash: sha(T.worker), role: "worker", tenant: "ops", name: "workers" },
] as const;

/** Tasks that stay unfinished until cancelled (well past any test's run). */
const LONG = { ms: 600_000 };

function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/**
 * `assert.rejects` check of a quota refusal: code and message, the `taskflow-reason` trailer,
 * and the reason and facts of the `google.rpc.ErrorInfo` in `grpc-status-details-bin`.
 */
function quotaRefusal(messagePattern: RegExp, metadata: Record<string, string | RegExp>) {
  return (err: unknown) => {
    code(grpc.status.RESOURCE_EXHAUSTED, messagePattern)(err);
    assert.deepEqual((err as grpc.ServiceError).metadata.get("taskflow-reason"), ["TASKFLOW_ERR_QUOTA"]);
    const read = wireError(err);
    assert.equal(read.reason, "TASKFLOW_ERR_QUOTA");
    assertFacts(read.metadata, metadata);
    return true;
  };
}

/** The ErrorInfo metadata has exactly these keys, each equal to or matching its expectation. */
function assertFacts(actual: Readonly<Record<string, string>>, expected: Record<string, string | RegExp>): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), JSON.stringify(actual));
  for (const [key, want] of Object.entries(expected)) {
    if (typeof want === "string") assert.equal(actual[key], want, key);
    else assert.match(actual[key]!, want, key);
  }
}

describe("tenants (tokens with tenants, quotas, per-tenant metrics)", () => {
  let node: StartedNode;
  let raw: ReturnType<typeof createClient<typeof TaskService.method>>;
  const client = (token: string, clientId?: string) =>
    new TaskflowClient({ address: node.address, token, submitRetryTimeoutMs: 500, ...(clientId && { clientId }) });

  before(async () => {
    node = await startNode({
      roles: ["control", "worker"],
      worker: { processes: 1, slots: 4, token: T.worker },
      auth: { tokens: tokens as never },
      tenants: {
        quotas: {
          limited: { maxUnfinishedTasks: 3 },
          // One task per 100 s after a burst of 4: a refusal here never depends on the machine's speed.
          throttled: { submitsPerSecond: 0.01, burst: 4 },
        },
      },
    });
    raw = createClient(TaskService, node.address);
  });
  after(async () => {
    raw.raw.close();
    await node.stop();
  });

  it("keeps a tenant's task from another tenant: get, watch, cancel, list and await answer as if it did not exist", async () => {
    const [a, b, viewer, admin] = [client(T.acme), client(T.globex), client(T.viewer), client(T.admin)];
    try {
      const idA = await a.submit("sleep", LONG);
      const idB = await b.submit("sleep", LONG);
      const ownTask = await a.get(idA);
      assert.equal(ownTask.tenant, "acme", "the task carries its submitter's tenant");

      // What tenant B gets for A's task is exactly what it gets for an ID that never existed.
      const unknown = "00000000-0000-4000-8000-000000000000";
      // The SDK's errors are TaskflowErrors: the status code and its details as the message.
      const notFound = (id: string) => (err: unknown) => {
        const e = err as { code: number; message: string };
        assert.equal(e.code, grpc.status.NOT_FOUND, e.message);
        assert.match(e.message, new RegExp(`^task ${id} not found \\(unknown, or finished longer ago`));
        return true;
      };
      await assert.rejects(b.get(idA), notFound(idA));
      await assert.rejects(b.get(unknown), notFound(unknown));
      await assert.rejects(b.cancel(idA, "not yours"), notFound(idA));
      await assert.rejects(async () => {
        for await (const _ of b.watch(idA)) assert.fail("tenant B must not see a state of A's task");
      }, notFound(idA));
      await assert.rejects(b.result(idA), (err: { code: number }) => err.code === grpc.status.NOT_FOUND);
      const listedByB = await b.list({ pageSize: 1000 });
      assert.ok(!listedByB.tasks.some((t) => t.id === idA), "B's list leaves out A's task");
      assert.ok(listedByB.tasks.some((t) => t.id === idB));
      assert.ok(listedByB.tasks.every((t) => t.tenant === "globex"), "B lists only its own tenant");
      assert.equal(Number(listedByB.totalSize), listedByB.tasks.length, "the total counts only B's tasks too");
      assert.notEqual((await a.get(idA)).state, TaskState.CANCELLED, "B's cancel did nothing");

      // Operators see every tenant.
      assert.equal((await admin.get(idA)).tenant, "acme");
      assert.equal((await viewer.get(idB)).tenant, "globex");
      const all = await admin.list({ pageSize: 1000 });
      for (const id of [idA, idB]) assert.ok(all.tasks.some((t) => t.id === id), `admin lists ${id}`);
      const shown = await cli(["--address", node.address, "get", idA, "--json"], { TASKFLOW_TOKEN: T.admin });
      assert.equal((JSON.parse(shown.stdout) as { tenant: string }).tenant, "acme", "the CLI shows the tenant");
      const hidden = await cli(["--address", node.address, "get", idA, "--json"], { TASKFLOW_TOKEN: T.globex });
      assert.notEqual(hidden.code, 0);
      assert.match(hidden.stderr, /not found/);

      // The owner still can; an admin can cancel anyone's.
      assert.equal((await a.cancel(idA, "done")).tenant, "acme");
      assert.equal((await admin.cancel(idB, "done by an operator")).tenant, "globex");
    } finally {
      for (const c of [a, b, viewer, admin]) c.close();
    }
  });

  it("delivers results only to subscribers of the task's own tenant, even with the same client ID", async () => {
    const clientId = `shared-${Math.random().toString(36).slice(2)}`;
    const seenByB: string[] = [];
    const streamB = raw.subscribeResults({ clientId }, { metadata: bearer(T.globex) });
    streamB.on("error", () => {});
    // The first (empty) message says the subscription is live.
    await new Promise<void>((resolve) => streamB.once("data", () => resolve()));
    streamB.on("data", (msg: SubscribeResultsResponse) => seenByB.push(...msg.results.map((r) => r.taskId)));
    const [a, b] = [client(T.acme, clientId), client(T.globex, clientId)];
    try {
      const idA = await a.submit("echo", { from: "acme" });
      assert.deepEqual(await a.result(idA), { from: "acme" }, "A gets its own result");
      // B's own result comes after A's on the same path: once it is here, A's would have been too.
      const idB = await b.submit("echo", { from: "globex" });
      assert.deepEqual(await b.result(idB), { from: "globex" });
      await eventually(() => (seenByB.includes(idB) ? true : undefined), 30_000, "B's stream to receive B's result");
      assert.deepEqual(seenByB, [idB], "B's stream received B's result and nothing of A's");
    } finally {
      streamB.cancel();
      a.close();
      b.close();
    }
  });

  it("scopes request IDs and idempotency keys per tenant: equal ones in two tenants never deduplicate each other", async () => {
    const request = { specs: [{ type: "echo" }, { type: "echo" }], clientId: "same-client", requestId: "same-request" };
    const first = await raw.submitTasks(request, { metadata: bearer(T.acme) });
    const other = await raw.submitTasks(request, { metadata: bearer(T.globex) });
    assert.equal(other.taskIds.length, 2);
    assert.ok(other.taskIds.every((id) => !first.taskIds.includes(id)), "globex's tasks are its own");
    assert.deepEqual(other.deduplicated, [], "nothing of globex's call was deduplicated");
    const retry = await raw.submitTasks(request, { metadata: bearer(T.acme) });
    assert.deepEqual(retry.taskIds, first.taskIds, "a retry in the same tenant names the same tasks");
    assert.deepEqual(retry.deduplicated, [true, true]);

    const keyed = { spec: { type: "echo", idempotencyKey: "order-42" } };
    const keyA = await raw.submitTask(keyed, { metadata: bearer(T.acme) });
    const keyB = await raw.submitTask(keyed, { metadata: bearer(T.globex) });
    assert.notEqual(keyB.taskId, keyA.taskId);
    assert.equal(keyB.deduplicated, false);
    const keyAgain = await raw.submitTask(keyed, { metadata: bearer(T.acme) });
    assert.deepEqual([keyAgain.taskId, keyAgain.deduplicated], [keyA.taskId, true]);
  });

  it("refuses a submit past a tenant's maxUnfinishedTasks with RESOURCE_EXHAUSTED naming the key, without limiting other tenants", async () => {
    const limited = client(T.limited);
    const a = client(T.acme);
    try {
      const ids = await Promise.all([0, 1, 2].map(() => limited.submit("sleep", LONG)));
      await assert.rejects(
        raw.submitTask({ spec: { type: "echo" } }, { metadata: bearer(T.limited) }),
        quotaRefusal(/^tenant limited has 3 unfinished tasks and this submit adds 1, over its quota of 3 \(tenants\.quotas\.limited\.maxUnfinishedTasks\)/, {
          tenant: "limited",
          key: "tenants.quotas.limited.maxUnfinishedTasks",
          limit: "3",
        }),
      );
      // The SDK's bulk path (SubmitTaskStream) gets the same status through the ack's error_status.
      await assert.rejects(limited.submit("echo", {}), (err: unknown) => {
        assert.ok(TaskflowError.is(err), String(err));
        assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(err.message, /maxUnfinishedTasks/);
        assert.equal(err.reason, "TASKFLOW_ERR_QUOTA");
        assertFacts(err.metadata, { tenant: "limited", key: "tenants.quotas.limited.maxUnfinishedTasks", limit: "3" });
        return true;
      });
      assert.deepEqual(await a.run("echo", "acme is not limited"), "acme is not limited");
      // A finished task frees its place.
      await limited.cancel(ids[0]!, "make room");
      assert.equal(typeof (await raw.submitTask({ spec: { type: "echo" } }, { metadata: bearer(T.limited) })).taskId, "string");
      await Promise.all(ids.slice(1).map((id) => limited.cancel(id, "done")));
    } finally {
      limited.close();
      a.close();
    }
  });

  it("refuses submits past a tenant's submitsPerSecond and burst, naming the keys", async () => {
    const specs = (n: number) => Array.from({ length: n }, () => ({ type: "echo" }));
    await assert.rejects(
      raw.submitTasks({ specs: specs(5) }, { metadata: bearer(T.throttled) }),
      quotaRefusal(/^a submit of 5 tasks is over tenant throttled's burst of 4 \(tenants\.quotas\.throttled\.burst\); .*split it into batches of at most 4/, {
        tenant: "throttled",
        key: "tenants.quotas.throttled.burst",
        limit: "4",
      }),
    );
    const burst = { specs: specs(4), clientId: "c", requestId: "the-burst" };
    const accepted = await raw.submitTasks(burst, { metadata: bearer(T.throttled) });
    assert.equal(accepted.taskIds.length, 4, "the burst goes through at once");
    await assert.rejects(
      raw.submitTasks({ specs: specs(1) }, { metadata: bearer(T.throttled) }),
      quotaRefusal(/^tenant throttled may submit 0\.01 tasks per second \(tenants\.quotas\.throttled\.submitsPerSecond\) with bursts of 4; nothing was accepted, retry in \d+ ms/, {
        tenant: "throttled",
        key: "tenants.quotas.throttled.submitsPerSecond",
        limit: "0.01",
        retryAfterMs: /^\d+$/,
      }),
    );
    // A retry of the accepted call creates nothing, so it costs no quota and is not refused.
    const retried = await raw.submitTasks(burst, { metadata: bearer(T.throttled) });
    assert.deepEqual([retried.taskIds, retried.deduplicated], [accepted.taskIds, [true, true, true, true]]);
  });

  it("counts submitted, unfinished and refused tasks per tenant in the metrics", async () => {
    const samples = await eventually(async () => {
      const s = await scrape(node.metricsUrl!);
      return value(s, "taskflow_tenant_quota_refusals_total", { tenant: "throttled", quota: "submits_per_second" }) === 6 ? s : undefined;
    });
    assert.ok(value(samples, "taskflow_tenant_tasks_submitted_total", { tenant: "acme" }) >= 5);
    assert.equal(value(samples, "taskflow_tenant_tasks_submitted_total", { tenant: "throttled" }), 4);
    assert.ok(value(samples, "taskflow_tenant_quota_refusals_total", { tenant: "limited", quota: "max_unfinished_tasks" }) >= 2);
    assert.equal(value(samples, "taskflow_tenant_quota_refusals_total", { tenant: "acme", quota: "max_unfinished_tasks" }), 0);
    assert.ok(value(samples, "taskflow_tenant_tasks_unfinished", { tenant: "ops" }) >= 0, "every token's tenant has its series");
    const tenantsLabelled = new Set(samples.filter((s) => s.name === "taskflow_tenant_tasks_submitted_total").map((s) => s.labels.tenant));
    assert.deepEqual([...tenantsLabelled].sort(), ["acme", "default", "globex", "limited", "ops", "throttled"]);
  });
});

describe("tenants without authentication (a loopback node with no tokens)", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ worker: { processes: 1, slots: 2 } });
  });
  after(async () => {
    await node.stop();
  });

  it("puts every task in the default tenant, and every caller sees it", async () => {
    const [a, b] = [new TaskflowClient({ address: node.address }), new TaskflowClient({ address: node.address })];
    try {
      const id = await a.submit("echo", "x");
      assert.equal(await a.result(id), "x");
      const seen = await b.get(id);
      assert.equal(seen.tenant, "default");
    } finally {
      a.close();
      b.close();
    }
  });
});
