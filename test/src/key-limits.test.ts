/**
 * Rate and concurrency limits on a real cluster with the SQLite store: a control node, worker
 * processes whose handlers log when each task starts and ends (appended to one file, so the log's
 * order is the order across processes), the SDK and the CLI. Bounds are generous: what is checked
 * is that a limit is never exceeded and is reached, not how fast under load.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { status } from "@grpc/grpc-js";
import { TaskService, TaskState } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";

/** Handlers that append "start|end <key> <taskId>" lines to TASKFLOW_LIMITS_LOG around a sleep. */
const HANDLERS = `import { appendFileSync } from "node:fs";
const log = process.env.TASKFLOW_LIMITS_LOG;
const run = async (payload, ctx) => {
  appendFileSync(log, "start " + payload.key + " " + ctx.taskId + "\\n");
  await new Promise((r) => setTimeout(r, payload.ms ?? 0));
  appendFileSync(log, "end " + payload.key + " " + ctx.taskId + "\\n");
  return payload.key;
};
export default { keyed: run, limited: run };
`;

interface Payload {
  key: string;
  ms: number;
}

/** The most tasks of each key that ran at once, by the log: it counts a task from its handler's start to its end. */
function maxConcurrent(log: string): Map<string, number> {
  const now = new Map<string, number>();
  const max = new Map<string, number>();
  for (const line of readFileSync(log, "utf8").split("\n")) {
    const [what, key] = line.split(" ");
    if (!key) continue;
    const n = (now.get(key) ?? 0) + (what === "start" ? 1 : -1);
    now.set(key, n);
    max.set(key, Math.max(max.get(key) ?? 0, n));
  }
  return max;
}

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

function setUp(): { dir: string; log: string } {
  const dir = tempDir("taskflow-limits-");
  writeFileSync(path.join(dir, "handlers.mjs"), HANDLERS);
  const log = path.join(dir, "runs.log");
  writeFileSync(log, "");
  // Worker processes inherit the node's environment, which inherits ours.
  process.env["TASKFLOW_LIMITS_LOG"] = log;
  return { dir, log };
}

const LIMITS = {
  limits: [{ match: { type: "limited" }, rate: "20/s", burst: 5 }],
  concurrency: [{ match: { concurrencyKey: "customer-*" }, max: 2 }],
};

describe("rate and concurrency limits on one node with two worker processes (SQLite store)", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  let log: string;
  before(async () => {
    const setup = setUp();
    log = setup.log;
    node = await startNode(
      { ...LIMITS, store: { kind: "sqlite", path: "tasks.db" }, worker: { processes: 2, slots: 8, prefetch: 0, handlers: "handlers.mjs" } },
      { dir: setup.dir },
    );
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client.close();
    assert.equal(await node.stop(), 0);
  });

  it("runs at most 2 tasks per concurrency key at once across both worker processes, other keys alongside", async () => {
    writeFileSync(log, "");
    const requests = [];
    for (let i = 0; i < 8; i++) {
      for (const key of ["customer-a", "customer-b", "customer-c"]) {
        requests.push({ type: "keyed", payload: { key, ms: 150 } satisfies Payload, concurrencyKey: key });
      }
    }
    // An unkeyed task, and one whose key no rule matches: neither waits.
    requests.push({ type: "keyed", payload: { key: "none", ms: 150 } satisfies Payload }, { type: "keyed", payload: { key: "free", ms: 150 } satisfies Payload, concurrencyKey: "free" });
    const ids = await client.submitMany(requests);
    const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
    assert.ok(outcomes.every((o) => o.state === "succeeded"), JSON.stringify(outcomes.filter((o) => o.state !== "succeeded")));
    const max = maxConcurrent(log);
    for (const key of ["customer-a", "customer-b", "customer-c"]) {
      assert.ok(max.get(key)! <= 2, `${key} ran ${max.get(key)} at once`);
    }
    assert.ok(Math.max(...["customer-a", "customer-b", "customer-c"].map((k) => max.get(k)!)) === 2, "the limit is reached, not just respected");
    const stored = await client.get(ids[0]!);
    assert.equal(stored.spec!.concurrencyKey, "customer-a", "the key is stored and shown");
  });

  it("explains a held task in why-waiting, through the SDK and taskflow get", async () => {
    const [a, b, c] = await client.submitMany(
      [1, 2, 3].map(() => ({ type: "keyed", payload: { key: "customer-slow", ms: 4000 } satisfies Payload, concurrencyKey: "customer-slow" })),
    );
    const held = await eventually(async () => {
      const tasks = await Promise.all([a!, b!, c!].map((id) => client.get(id)));
      const running = tasks.filter((t) => t.state === TaskState.RUNNING || t.state === TaskState.ASSIGNED).length;
      const queued = tasks.find((t) => t.state === TaskState.QUEUED);
      return running === 2 && queued?.waitingReason.startsWith("concurrency key") ? queued : undefined;
    }, 30_000, "two running and one held");
    assert.equal(held.waitingReason, "concurrency key customer-slow at its limit 2 (2 running)");
    const got = await cli(["get", held.id], { TASKFLOW_ADDRESS: node.address });
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^waiting: {3}concurrency key customer-slow at its limit 2 \(2 running\)$/m);
    assert.match(got.stdout, /^conc\. key: customer-slow$/m);
    for (const id of [a!, b!, c!]) assert.equal((await client.outcome(id)).state, "succeeded");
  });

  it("starts a rate-limited type at its rate: 20/s with a burst of 5, never more in any second", async () => {
    const n = 60;
    const ids = await client.submitMany(Array.from({ length: n }, (_, i) => ({ type: "limited", payload: { key: `r${i}`, ms: 0 } satisfies Payload })));
    const early = await client.get(ids[n - 1]!);
    if (early.state === TaskState.QUEUED && early.waitingReason.startsWith("rate")) {
      assert.match(early.waitingReason, /^rate limit limited 20\/s, next token in \d+ ms$/);
    }
    for (const id of ids) assert.equal((await client.outcome(id)).state, "succeeded");
    const assigned = (await Promise.all(ids.map((id) => client.get(id)))).map((t) => ms(t.assignedAt)).sort((x, y) => x - y);
    // The control node stamps assignments with the clock its buckets read: exact bounds hold.
    const span = assigned[n - 1]! - assigned[0]!;
    assert.ok(span >= ((n - 5) / 20) * 1000 - 5, `${n} starts took ${span} ms; at 20/s after a burst of 5 they take at least 2750`);
    assert.ok(span <= 20_000, `${n} starts took ${span} ms`);
    for (let i = 0; i < n; i++) {
      let inWindow = 0;
      for (let j = i; j < n && assigned[j]! < assigned[i]! + 1000; j++) inWindow++;
      assert.ok(inWindow <= 26, `${inWindow} starts within 1 s of start ${i}: at most 20 + a burst of 5`);
    }
  });

  it("refuses a bad key with INVALID_ARGUMENT naming the field, through the CLI", async () => {
    const bad = await cli(["submit", "keyed", "{}", "--rate-limit-key", "k".repeat(257)], { TASKFLOW_ADDRESS: node.address });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /spec\.rate_limit_key "k+…" must be 1-256 printable characters/);
  });
});

describe("limit keys through the raw wire contract (not the SDK)", () => {
  let node: StartedNode;
  let tasks: ReturnType<typeof createClient<typeof TaskService.method>>;
  before(async () => {
    // No workers: what is checked is what the control node accepts, keeps and says.
    node = await startNode({ ...LIMITS, roles: ["control"], store: { kind: "sqlite", path: "tasks.db" } });
    tasks = createClient(TaskService, node.address);
  });
  after(async () => {
    tasks.raw.close();
    assert.equal(await node.stop(), 0);
  });

  it("takes concurrency_key and rate_limit_key on SubmitTask and SubmitTasks, and GetTask and ListTasks return them", async () => {
    const { taskId } = await tasks.submitTask({ spec: { type: "keyed", concurrencyKey: "customer-w", rateLimitKey: "anything ✓" } });
    const { taskIds } = await tasks.submitTasks({ specs: [{ type: "keyed", concurrencyKey: "customer-w" }, { type: "keyed" }] });
    const one = (await tasks.getTask({ taskId })).task!;
    assert.equal(one.spec!.concurrencyKey, "customer-w");
    assert.equal(one.spec!.rateLimitKey, "anything ✓");
    assert.equal((await tasks.getTask({ taskId: taskIds[0]! })).task!.spec!.concurrencyKey, "customer-w");
    assert.equal((await tasks.getTask({ taskId: taskIds[1]! })).task!.spec!.concurrencyKey, "", "none given, none kept");
    const listed = await tasks.listTasks({ states: [TaskState.QUEUED], pageSize: 10 });
    assert.ok(listed.tasks.some((t) => t.id === taskId && t.spec!.rateLimitKey === "anything ✓"));
    for (const id of [taskId, ...taskIds]) await tasks.cancelTask({ taskId: id });
  });

  it("refuses a key with a control character or past 256 characters, naming the field", async () => {
    await assert.rejects(tasks.submitTask({ spec: { type: "keyed", concurrencyKey: "a\u0007b" } }), code(status.INVALID_ARGUMENT, /^spec\.concurrency_key "a\\u0007b" must be 1-256 printable characters/));
    await assert.rejects(
      tasks.submitTasks({ specs: [{ type: "keyed" }, { type: "keyed", rateLimitKey: "r".repeat(257) }] }),
      code(status.INVALID_ARGUMENT, /^specs\[1\]\.rate_limit_key "r+…" must be 1-256 printable characters .* got 257 characters/),
    );
  });
});

describe("a concurrency limit across a kill -9 of the control node (SQLite store)", () => {
  it("keeps the limit: tasks still running on the workers count after the restart (8 s tasks: still running when it is back)", async () => {
    const setup = setUp();
    const port = await freePort();
    const controlConfig = { ...LIMITS, roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } };
    let control = await startNode(controlConfig, { dir: setup.dir });
    const workers = await startNode(
      { roles: ["worker"], worker: { processes: 2, slots: 8, prefetch: 0, controlAddress: `127.0.0.1:${port}`, handlers: "handlers.mjs" } },
      { dir: setup.dir },
    );
    try {
      const submitter = new TaskflowClient({ address: control.address });
      const ids = await submitter.submitMany(
        Array.from({ length: 4 }, () => ({ type: "keyed", payload: { key: "customer-r", ms: 8000 } satisfies Payload, concurrencyKey: "customer-r" })),
      );
      await eventually(() => (readFileSync(setup.log, "utf8").split("\n").filter((l) => l.startsWith("start")).length >= 2 ? true : undefined), 30_000, "two tasks to start");
      submitter.close();
      await control.kill9();
      control = await startNode(controlConfig, { dir: setup.dir });
      const checker = new TaskflowClient({ address: control.address });
      try {
        for (const id of ids) {
          const done = await eventually(async () => {
            const t = await checker.get(id);
            return t.state === TaskState.SUCCEEDED ? t : undefined;
          }, 90_000, `task ${id} to succeed after the restart`);
          assert.equal(done.spec!.concurrencyKey, "customer-r", "the key survived the crash in the store");
        }
      } finally {
        checker.close();
      }
      const max = maxConcurrent(setup.log).get("customer-r");
      assert.equal(max, 2, `at most 2 ran at once across the restart, saw ${max}`);
    } finally {
      await workers.stop();
      await control.stop();
    }
  });
});

describe("limits config errors stop the node, naming the key and the fix", () => {
  it("a bad rate, a burst below 1 and a max of 0", async () => {
    const started = startNode({
      roles: ["control"],
      limits: [{ match: { type: "email" }, rate: "100 per second" }, { match: { rateLimitKey: "c-*" }, rate: "1/s", burst: 0 }],
      concurrency: [{ match: { concurrencyKey: "*" }, max: 0 }],
    });
    await assert.rejects(started, (err: Error) => {
      assert.match(err.message, /limits\.0\.rate: must be "<count>\/s", "<count>\/m" or "<count>\/h".*fix: use a count per second, minute or hour such as "100\/s"/);
      assert.match(err.message, /limits\.1\.burst: .*fix: use a whole number of starts of at least 1/);
      assert.match(err.message, /concurrency\.0\.max: .*fix: use a whole number of running tasks of at least 1/);
      return true;
    });
  });
});
