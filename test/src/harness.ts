/**
 * Starts real Taskflow nodes (`taskflow node`, the same binary users run) on 127.0.0.1:0 with
 * a config written to a temporary folder, and stops them. Every test gets its own node.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { TaskflowConfigInput } from "@taskflow/core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../..");
export const bin = path.join(repoRoot, "apps/node/dist/bin.js");

export interface StartedNode {
  address: string;
  port: number;
  /** `http://127.0.0.1:<port>/metrics` when metrics are on. */
  metricsUrl: string | undefined;
  /** `http://127.0.0.1:<port>/` when the dashboard is on. */
  dashboardUrl: string | undefined;
  process: ChildProcess;
  dir: string;
  /** Everything the node wrote to stderr so far (its JSON logs). */
  logs(): string;
  /** SIGTERM, wait for exit (SIGKILL after `graceMs`); returns the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** kill -9, and wait until it is gone. */
  kill9(): Promise<void>;
  /** PIDs of its worker processes now. */
  workerPids(): number[];
}

export function tempDir(prefix = "taskflow-test-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Starts `taskflow node` with `config` (port 0 unless given) and waits for its ready line. */
export async function startNode(
  config: TaskflowConfigInput,
  options: { dir?: string; timeoutMs?: number; files?: Record<string, string>; /** Another build's `apps/node/dist/bin.js` (a benchmark's baseline). */ bin?: string; /** Node options for the node's process, such as `--cpu-prof`. */ execArgv?: string[] } = {},
): Promise<StartedNode> {
  const dir = options.dir ?? tempDir();
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(path.join(dir, name), text);
  const full: TaskflowConfigInput = {
    ...config,
    control: { host: "127.0.0.1", port: 0, ...config.control },
    log: { level: "warn", ...config.log },
    // Monitoring on free ports too, so nodes (and other checkouts' tests) never clash.
    metrics: { port: 0, ...config.metrics },
    dashboard: { port: 0, ...config.dashboard },
  };
  const file = path.join(dir, "taskflow.config.json");
  writeFileSync(file, JSON.stringify(full, null, 2));
  const child = spawn(process.execPath, [...(options.execArgv ?? []), options.bin ?? bin, "node", "--config", file], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  let metricsUrl: string | undefined;
  let dashboardUrl: string | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      // A node that is not ready must not outlive the test: its pipes (which its worker
      // processes inherit) would keep this process, and so the suite, alive.
      const workers = childPids(child.pid);
      child.kill("SIGKILL");
      for (const pid of workers) killQuietly(pid);
      child.stdout!.destroy();
      child.stderr!.destroy();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
      reject(new Error(`node did not start in ${options.timeoutMs ?? 20_000} ms (killed); stderr:\n${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      const m = /taskflow node ready(?: on [^\s]+:(\d+))?(?: metrics (\S+))?(?: dashboard (\S+))?(?: \((?:leader|standby)\))?\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        metricsUrl = m[2];
        dashboardUrl = m[3];
        resolve(Number(m[1] ?? 0));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before it was ready; stderr:\n${stderr}`));
    });
  });
  let exited: Promise<number | null> | undefined;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    kill9() {
      child.kill("SIGKILL");
      return gone;
    },
    workerPids() {
      return childPids(child.pid);
    },
    address: `127.0.0.1:${port}`,
    port,
    metricsUrl,
    dashboardUrl,
    process: child,
    dir,
    logs: () => stderr,
    stop(graceMs = 10_000) {
      exited ??= new Promise<number | null>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const killer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        child.once("exit", (code) => {
          clearTimeout(killer);
          if (!options.dir) rmSync(dir, { recursive: true, force: true });
          resolve(code);
        });
        child.kill("SIGTERM");
      });
      return exited;
    },
  };
}

/** The direct children of a process (a node's worker processes); none when it is gone. */
function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What users run as `taskflow`: the bundled CLI (`apps/node/bin/taskflow.js` → `dist/cli.js`). */
export const installedBin = path.join(repoRoot, "apps/node/bin/taskflow.js");

/** Runs the `taskflow` CLI (`dist/bin.js`, or `entry`, e.g. {@link installedBin}) and collects its output. */
export function cli(args: string[], env: Record<string, string> = {}, entry = bin): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP port free right now on 127.0.0.1 (for a node that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** An `assert.rejects` check: the call failed with gRPC status `expected` (and a matching message). */
export function code(expected: number, messagePattern?: RegExp) {
  return (err: unknown) => {
    const e = err as ServiceError;
    assert.equal(e.code, expected, `expected code ${status[expected]}, got ${status[e.code]}: ${e.details}`);
    if (messagePattern) assert.match(e.details, messagePattern);
    return true;
  };
}
