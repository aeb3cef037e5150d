import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, repoRoot, startNode, tempDir, type StartedNode } from "./harness.js";

describe("the taskflow CLI", () => {
  let node: StartedNode;
  let defaults: { control: object };
  let env: Record<string, string>;
  // A folder of our own, so the node's SQLite file outlives a restart.
  const dir = tempDir();
  before(async () => {
    // The default config users start with `npm start`, on a free port instead of 50051.
    defaults = JSON.parse(readFileSync(path.join(repoRoot, "apps/node/taskflow.config.json"), "utf8"));
    node = await startNode({ ...defaults, control: { ...defaults.control, port: 0 } }, { dir });
    env = { TASKFLOW_ADDRESS: node.address };
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  });

  it("submit --wait prints the result of the default config's echo handler", async () => {
    const r = await cli(["submit", "echo", '{"hello":"world"}', "--wait"], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"hello":"world"}\n');
  });

  it("submit prints an ID that get, watch and list know", async () => {
    const submitted = await cli(["submit", "sleep", '{"ms":50}'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);
    const watched = await cli(["watch", id], env);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /succeeded/);
    const got = await cli(["get", id, "--json"], env);
    assert.equal(got.code, 0);
    const task = JSON.parse(got.stdout);
    assert.equal(task.state, "succeeded");
    assert.deepEqual(task.result, { slept: 50 });
    const listed = await cli(["list", "--state", "succeeded", "--type", "sleep", "--json"], env);
    assert.ok(JSON.parse(listed.stdout).tasks.some((t: { id: string }) => t.id === id));
  });

  it("exits 1 when a waited-for task fails, and says why", async () => {
    const r = await cli(["submit", "fail", '{"message":"nope"}', "--wait", "--max-attempts", "1"], env);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /failed: nope/);
  });

  it("keeps accepted tasks and their results across a restart (the default config's store is durable)", async () => {
    const submitted = await cli(["submit", "echo", '{"kept":true}'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const doneId = submitted.stdout.trim();
    assert.equal((await cli(["watch", doneId], env)).code, 0);
    const queued = await cli(["submit", "echo", '{"later":1}', "--label", "gpu=true"], env);
    assert.equal(queued.code, 0, queued.stderr);
    const waitingId = queued.stdout.trim();
    assert.equal(await node.stop(), 0);
    node = await startNode({ ...defaults, control: { ...defaults.control, port: 0 } }, { dir });
    env = { TASKFLOW_ADDRESS: node.address };
    const done = JSON.parse((await cli(["get", doneId, "--json"], env)).stdout) as { state: string; result: unknown };
    assert.equal(done.state, "succeeded");
    assert.deepEqual(done.result, { kept: true });
    // No worker has the label: it was accepted, so it is still queued after the restart.
    const waiting = JSON.parse((await cli(["get", waitingId, "--json"], env)).stdout) as { state: string };
    assert.equal(waiting.state, "queued");
    assert.equal((await cli(["cancel", waitingId], env)).code, 0);
  });

  it("lists the default config's two worker processes", async () => {
    const r = await cli(["workers", "--json"], env);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(r.stdout);
    assert.equal(state.policy, "fifo");
    assert.equal(state.workers.length, 2);
    for (const w of state.workers) {
      assert.equal(w.state, "alive");
      assert.deepEqual([...w.taskTypes].sort(), ["cpu", "echo", "fail", "noop", "sleep"]);
    }
  });

  it("exits 3 for an unknown task, 2 for bad usage, 4 when no control node answers", async () => {
    const unknown = await cli(["get", "no-such-task"], env);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /not found/);
    const badJson = await cli(["submit", "echo", "{not json"], env);
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /not valid JSON/);
    const badOption = await cli(["submit", "echo", "--priority", "high"], env);
    assert.equal(badOption.code, 2);
    const unreachable = await cli(["get", "x"], { TASKFLOW_ADDRESS: "127.0.0.1:1" });
    assert.equal(unreachable.code, 4);
    assert.match(unreachable.stderr, /is a control node running at 127\.0\.0\.1:1/);
  });

  it("has --help for every command", async () => {
    for (const command of ["node", "submit", "get", "watch", "cancel", "retry", "list", "schedule", "workers", "drain"]) {
      const r = await cli([command, "--help"]);
      assert.equal(r.code, 0, `${command} --help`);
      assert.match(r.stdout, new RegExp(`Usage: taskflow ${command}`));
    }
    const top = await cli(["--help"]);
    assert.match(top.stdout, /Exit codes:/);
  });
});

describe("the taskflow CLI with a payload nested too deep to print as JSON", () => {
  let node: StartedNode;
  let env: Record<string, string>;
  // 1 MB of [[[…]]]: valid JSON that JSON.stringify cannot walk without overflowing the stack.
  const deep = `${"[".repeat(500_000)}${"]".repeat(500_000)}`;
  let deepId: string;
  let plainId: string;
  before(async () => {
    node = await startNode({ roles: ["control"] });
    env = { TASKFLOW_ADDRESS: node.address };
    // Sent as bytes by a client that is not the SDK; no worker serves the type, so it stays queued.
    const tasks = createClient(TaskService, node.address);
    try {
      plainId = (await tasks.submitTask({ spec: { type: "nobody", payload: new TextEncoder().encode('{"a":[1]}') } })).taskId;
      deepId = (await tasks.submitTask({ spec: { type: "nobody", payload: new TextEncoder().encode(deep) } })).taskId;
    } finally {
      tasks.raw.close();
    }
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
  });

  it("get --json prints it with the payload as text, and exits 0", async () => {
    const r = await cli(["get", deepId, "--json"], env);
    assert.equal(r.code, 0, r.stderr.slice(0, 500));
    const task = JSON.parse(r.stdout) as { id: string; payload: unknown };
    assert.equal(task.id, deepId);
    assert.equal(task.payload, deep);
    const plain = JSON.parse((await cli(["get", plainId, "--json"], env)).stdout) as { payload: unknown };
    assert.deepEqual(plain.payload, { a: [1] }, "a payload of ordinary depth is still shown as JSON");
  });

  it("list --json and list print it among the others, and exit 0", async () => {
    const r = await cli(["list", "--json"], env);
    assert.equal(r.code, 0, r.stderr.slice(0, 500));
    const page = JSON.parse(r.stdout) as { tasks: { id: string; payload: unknown }[] };
    assert.deepEqual(page.tasks.map((t) => t.id), [deepId, plainId]);
    assert.equal(page.tasks[0]!.payload, deep);
    const text = await cli(["list"], env);
    assert.equal(text.code, 0, text.stderr.slice(0, 500));
    assert.match(text.stdout, new RegExp(deepId));
    const got = await cli(["get", deepId], env);
    assert.equal(got.code, 0, got.stderr.slice(0, 500));
    assert.match(got.stdout, /state: +queued/);
  });

  it("leaves the dashboard's API answering with the payload as text", async () => {
    const detail = await fetch(new URL(`api/tasks/${deepId}`, node.dashboardUrl));
    assert.equal(detail.status, 200);
    const task = (await detail.json()) as { payloadBytes: number; payload: string };
    assert.equal(task.payloadBytes, deep.length);
    assert.ok(task.payload.startsWith("[[[[") && task.payload.endsWith(" …"), "cut, as text");
    const list = await fetch(new URL("api/tasks", node.dashboardUrl));
    assert.equal(list.status, 200);
    assert.equal(((await list.json()) as { tasks: unknown[] }).tasks.length, 2);
  });
});

describe("taskflow node with a bad config", () => {
  it("exits 2 naming the key and the fix", async () => {
    const dir = tempDir();
    const file = path.join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ control: { port: "fifty" }, schedular: {} }));
    const r = await cli(["node", "--config", file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /control\.port: .*expected number.*fix: use a port number/);
    assert.match(r.stderr, /unknown key "schedular": did you mean "scheduler"\?/);
  });

  it("exits 2 for a missing file and for invalid JSON", async () => {
    const missing = await cli(["node", "--config", "/nonexistent/taskflow.json"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file .*it does not exist/);
    const dir = tempDir();
    const file = path.join(dir, "broken.json");
    writeFileSync(file, "{ roles: [");
    const broken = await cli(["node", "--config", file]);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /is not valid JSON/);
  });

  it("exits 2 for a policy that is not installed, saying what to install", async () => {
    const dir = tempDir();
    const file = path.join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ roles: ["control"], control: { port: 0 }, scheduler: { policy: "@acme/not-installed-policy" } }));
    const r = await cli(["node", "--config", file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /@acme\/not-installed-policy/);
    assert.match(r.stderr, /npm install/);
  });
});
