/**
 * Dead-letter list and retry end to end (ADR 0020): a control node on the SQLite store with
 * tokens for two client tenants and an admin, and a worker node whose real worker processes run
 * handlers that fail while a flag file exists. Failed tasks are listed with their last error,
 * retried by ID and in bulk (SDK and CLI), kept to their tenant, and a retry survives a restart
 * of the control node.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core";
import { TaskService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { TaskflowClient, TaskState } from "@taskflow/client";
import { cli, code, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";

const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;
const T = { a: tok("a"), b: tok("b"), admin: tok("admin"), worker: tok("worker") };
const tokens = [
  { hash: sha(T.a), role: "client", tenant: "a", name: "app-a" },
  { hash: sha(T.b), role: "client", tenant: "b", name: "app-b" },
  { hash: sha(T.admin), role: "admin", tenant: "ops", name: "root" },
  { hash: sha(T.worker), role: "worker", tenant: "ops", name: "workers" },
];

/** Each handler fails while the file its payload names exists. */
const HANDLERS = `
import { existsSync } from "node:fs";
const flaky = async (payload) => {
  if (existsSync(payload.flag)) throw new Error("flag " + payload.flag + " is set");
  return { ok: payload.n ?? 0 };
};
export default { flaky, bulky: flaky };
`;

function rejectsWith(code: Code, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof TaskflowError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe("dead-letter list and retry (SQLite store, real workers)", () => {
  const controlDir = tempDir("taskflow-retry-control-");
  const flags = tempDir("taskflow-retry-flags-");
  let port: number;
  let control: StartedNode;
  let workers: StartedNode | undefined;
  const clients: TaskflowClient[] = [];
  const controlConfig = () => ({
    roles: ["control" as const],
    control: { port, defaultMaxAttempts: 2 },
    store: { kind: "sqlite" as const, path: "tasks.db" },
    auth: { tokens: tokens as never },
  });
  const startWorkers = () =>
    startNode(
      { roles: ["worker"], worker: { controlAddress: `127.0.0.1:${port}`, processes: 1, slots: 4, token: T.worker, handlers: "./handlers.mjs" } },
      { files: { "handlers.mjs": HANDLERS } },
    );
  const client = (token: string) => {
    const c = new TaskflowClient({ address: control.address, token, submitRetryTimeoutMs: 20_000 });
    clients.push(c);
    return c;
  };
  const flag = (name: string) => {
    const file = path.join(flags, name);
    writeFileSync(file, "");
    return file;
  };
  const run = (args: string[], token = T.admin) => cli(["--address", control.address, ...args], { TASKFLOW_TOKEN: token });

  before(async () => {
    port = await freePort();
    control = await startNode(controlConfig(), { dir: controlDir });
    workers = await startWorkers();
  });
  after(async () => {
    for (const c of clients) c.close();
    await workers?.stop();
    await control.stop();
    rmSync(controlDir, { recursive: true, force: true });
    rmSync(flags, { recursive: true, force: true });
  });

  it("lists a task that failed twice with its last error; retried, it keeps its ID and history and succeeds", async () => {
    const a = client(T.a);
    const file = flag("one");
    const id = await a.submit("flaky", { flag: file, n: 1 });
    const failed = await a.outcome(id);
    assert.equal(failed.state, "failed");
    assert.match(failed.error, /flag .*one is set/);

    const listed = await run(["list", "--state", "failed", "--type", "flaky"], T.a);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /LAST ERROR/);
    assert.match(listed.stdout, new RegExp(`${id}.*failed\\s+2.*flag .*one is set`));

    rmSync(file);
    const [retried] = await a.retry(id);
    assert.equal(retried!.id, id);
    assert.equal(retried!.state, TaskState.QUEUED);
    assert.deepEqual(await a.result(id), { ok: 1 }, "its client's result stream sees it finish again");
    const done = await a.get(id);
    assert.equal(done.state, TaskState.SUCCEEDED);
    assert.equal(done.attempt, 1, "attempt 1 of a fresh budget");
    assert.equal(done.attempts.length, 3, "the two failed attempts stay in its history");
    assert.match(done.attempts[0]!.error, /one is set/);
  });

  it("keeps a tenant to its own tasks: another tenant's ID is NOT_FOUND, its filter matches none of them", async () => {
    const a = client(T.a);
    const b = client(T.b);
    const file = flag("isolated");
    const id = await a.submit("flaky", { flag: file });
    assert.equal((await a.outcome(id)).state, "failed");
    await assert.rejects(b.retry(id), rejectsWith(Code.NOT_FOUND, new RegExp(`task ${id} not found`)));
    await assert.rejects(b.retry({ type: "flaky", tenant: "a" }), rejectsWith(Code.PERMISSION_DENIED, /filter\.tenant a is for admin tokens/));
    assert.deepEqual(await b.retry({ type: "flaky" }), [], "tenant b has no failed tasks");
    await assert.rejects(a.retry([id, "no-such-task"]), rejectsWith(Code.NOT_FOUND, /task no-such-task not found/));
    assert.equal((await a.get(id)).state, TaskState.FAILED, "a refused call retried nothing");
    const byCli = await run(["retry", id], T.b);
    assert.equal(byCli.code, 3, byCli.stderr);
    rmSync(file);
  });

  it("refuses malformed RetryTasks and CancelTasks requests with INVALID_ARGUMENT naming the field", async () => {
    const raw = createClient(TaskService, control.address);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${T.a}`);
    const opts = { metadata };
    try {
      const bad: [Promise<unknown>, RegExp][] = [
        [raw.retryTasks({}, opts), /task_ids or filter is required/],
        [raw.retryTasks({ taskIds: ["x"], filter: { type: "flaky" } }, opts), /set either task_ids or filter, not both/],
        [raw.retryTasks({ filter: { states: [99 as TaskState] } }, opts), /filter\.states has an unknown task state 99/],
        [raw.retryTasks({ filter: { states: [1] } }, opts), /filter\.states may hold only failed, cancelled/],
        [raw.retryTasks({ filter: {}, maxTasks: 20_000 }, opts), /max_tasks must be at most 10000/],
        [raw.cancelTasks({}, opts), /filter is required/],
        [raw.cancelTasks({ filter: {} }, opts), /filter must set at least one field/],
      ];
      for (const [call, pattern] of bad) await assert.rejects(call, code(grpc.status.INVALID_ARGUMENT, pattern));
    } finally {
      raw.raw.close();
    }
  });

  it("retries in bulk by type from the CLI: without --yes it only says what it would do", async () => {
    const a = client(T.a);
    const file = flag("bulk");
    const ids = await a.submitMany([1, 2, 3].map((n) => ({ type: "bulky", payload: { flag: file, n } })));
    const other = await a.submit("flaky", { flag: file });
    for (const id of [...ids, other]) assert.equal((await a.outcome(id)).state, "failed");

    const dry = await run(["retry", "--type", "bulky", "--since", "1h"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would retry 3 task\(s\); run again with --yes/);
    for (const id of ids) assert.match(dry.stdout, new RegExp(id));
    assert.equal((await a.get(ids[0]!)).state, TaskState.FAILED, "a dry run changes nothing");

    rmSync(file);
    const done = await run(["retry", "--type", "bulky", "--since", "1h", "--yes", "--json"]);
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual(((JSON.parse(done.stdout) as { retried: { id: string }[] }).retried.map((t) => t.id)).sort(), [...ids].sort());
    for (const [i, id] of ids.entries()) assert.deepEqual(await a.result(id), { ok: i + 1 });
    assert.equal((await a.get(other)).state, TaskState.FAILED, "another type is left alone");

    const usage = await run(["retry", ids[0]!, "--type", "bulky"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /give task IDs or filters/);
  });

  it("cancels in bulk by type, and a retried task survives a restart of the control node", async () => {
    const a = client(T.a);
    const file = flag("restart");
    const id = await a.submit("flaky", { flag: file, n: 7 });
    assert.equal((await a.outcome(id)).state, "failed");
    // No worker while the retried task waits, so it is still queued when the control node stops.
    await workers!.stop();
    workers = undefined;
    rmSync(file);
    await a.retry(id);
    const parked = await a.submitMany([{ type: "parked", payload: {} }, { type: "parked", payload: {} }]);
    const cancelled = await run(["cancel", "--type", "parked", "--yes"], T.a);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /cancelled 2 task\(s\)/);
    for (const p of parked) assert.equal((await a.get(p)).state, TaskState.CANCELLED);

    assert.equal(await control.stop(), 0);
    control = await startNode(controlConfig(), { dir: controlDir });
    const admin = client(T.admin);
    const after = await admin.get(id);
    assert.equal(after.state, TaskState.QUEUED, "the store kept it queued");
    assert.equal(after.attempt, 0);
    workers = await startWorkers();
    await eventually(async () => ((await admin.get(id)).state === TaskState.SUCCEEDED ? true : undefined), 60_000, "the retried task to succeed after the restart");
    assert.equal((await admin.get(id)).attempts.length, 3);
  });
});
