/**
 * `taskflow node` that cannot start says why in terms of its config: the key, the real cause and
 * a fix, with the config exit code (2), and never the client commands' "is a control node
 * running" hint.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TaskflowConfigInput } from "@taskflow/core";
import { bin, tempDir, type CliResult } from "./harness.js";

const CONFIG_EXIT = 2;

function configFile(config: TaskflowConfigInput): string {
  const dir = tempDir();
  const file = path.join(dir, "taskflow.config.json");
  writeFileSync(file, JSON.stringify({ control: { port: 0 }, metrics: { port: 0 }, dashboard: { port: 0 }, ...config }));
  return file;
}

function startupFailed(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, CONFIG_EXIT, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /is a control node running/);
}

describe("taskflow node that cannot open its store", () => {
  it("names store.path and a file in the way of its folder (ENOTDIR)", async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "plain-file"), "not a folder");
    const r = await startFails(configFile({ roles: ["control"], store: { kind: "sqlite", path: path.join(dir, "plain-file/tasks.db") } }));
    startupFailed(r, /^taskflow: store\.path: cannot create folder \/.*\/plain-file: it is a file, not a folder \(ENOTDIR\); fix: /m);
  });

  it("names store.path and a file system that refuses new folders, without hanging", { timeout: 30_000 }, async () => {
    const folder = `/proc/taskflow-test-${process.pid}`;
    const r = await startFails(configFile({ roles: ["control"], store: { kind: "sqlite", path: `${folder}/tasks.db` } }));
    startupFailed(r, new RegExp(`^taskflow: store\\.path: cannot create folder ${folder}: .*\\(ENOENT\\); fix: `, "m"));
  });

  it("says store.path names a folder when it should name the database file", async () => {
    const dir = tempDir();
    const r = await startFails(configFile({ roles: ["control"], store: { kind: "sqlite", path: dir } }));
    startupFailed(r, /^taskflow: store\.path: .* is a folder; fix: name the database file in it, such as .*\/tasks\.db/m);
  });

  const unshareable = canBindReadOnly();
  it("names store.path and a read-only file system (EROFS)", { skip: unshareable }, async () => {
    const dir = tempDir();
    const readOnly = path.join(dir, "read-only");
    mkdirSync(readOnly);
    const file = configFile({ roles: ["control"], store: { kind: "sqlite", path: path.join(readOnly, "data/tasks.db") } });
    // A private mount namespace: the read-only bind exists for this node only.
    const script = `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" "$3" node --config "$4"`;
    const r = await run("unshare", ["-m", "sh", "-c", script, "sh", readOnly, process.execPath, bin, file]);
    startupFailed(r, /^taskflow: store\.path: cannot create folder \/.*\/read-only\/data: read-only file system \(EROFS\); fix: /m);
  });
});

describe("taskflow node whose ports are taken", () => {
  let taken: Server;
  let port: number;
  before(async () => {
    taken = createServer();
    port = await new Promise<number>((resolve) => taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port)));
  });
  after(() => {
    taken.close();
  });

  it("names control.port and says the address is in use", async () => {
    const r = await startFails(configFile({ roles: ["control"], control: { port } }));
    startupFailed(r, new RegExp(`^taskflow: control\\.port: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); fix: choose another control\\.port`, "m"));
  });

  it("names metrics.port and dashboard.port the same way", async () => {
    const metrics = await startFails(configFile({ roles: ["control"], metrics: { port } }));
    startupFailed(metrics, new RegExp(`^taskflow: metrics\\.port: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); fix: `, "m"));
    const dashboard = await startFails(configFile({ roles: ["control"], dashboard: { port } }));
    startupFailed(dashboard, new RegExp(`^taskflow: dashboard\\.port: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); fix: `, "m"));
  });
});

/** Undefined when this process may make a private mount namespace with a read-only bind; else why not. */
function canBindReadOnly(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for a read-only bind mount in a private mount namespace";
  try {
    const probe = tempDir();
    execFileSync("unshare", ["-m", "sh", "-c", `mount --bind "${probe}" "${probe}" && mount -o remount,bind,ro "${probe}"`], { stdio: "pipe" });
    return undefined;
  } catch (err) {
    return `unshare -m with mount is not usable here: ${(err as Error).message.split("\n")[0]}`;
  }
}

/** Runs `taskflow node --config file`, which should fail; killed if it is still up after 20 s. */
function startFails(file: string): Promise<CliResult> {
  return run(process.execPath, [bin, "node", "--config", file]);
}

function run(command: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("exit", () => clearTimeout(killer));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
