/**
 * A network cut between real hosts: the control node and two worker nodes each run in their
 * own network namespace, joined by veth pairs (root only; skipped with a message elsewhere).
 * Cutting one worker's link sends its task elsewhere; restoring it, its late result is
 * rejected by epoch and the worker rejoins.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskState, WorkerState } from "@taskflow/proto";
import { bin, eventually, tempDir } from "./harness.js";

const suffix = String(process.pid % 10000);
const NS = { control: `tfc${suffix}`, w1: `tfa${suffix}`, w2: `tfb${suffix}` };
// Addresses exist only inside these namespaces, which this test makes and removes.
const NET = { root: "10.251.0.1", controlRoot: "10.251.0.2", c1: "10.251.1.1", w1: "10.251.1.2", c2: "10.251.2.1", w2: "10.251.2.2" };

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function canUseNetns(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "pipe" });
    ip("netns", "add", `tfprobe${suffix}`);
    ip("netns", "del", `tfprobe${suffix}`);
    return undefined;
  } catch (err) {
    return `ip netns is not usable here: ${(err as Error).message.split("\n")[0]}`;
  }
}

const unavailable = canUseNetns();

function setUpNetwork(): void {
  for (const ns of Object.values(NS)) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }
  // root <-> control, control <-> w1, control <-> w2
  const links: [string, string | undefined, string, string, string, string][] = [
    [`r${suffix}`, undefined, `cr${suffix}`, NS.control, NET.root, NET.controlRoot],
    [`c1${suffix}`, NS.control, `w1${suffix}`, NS.w1, NET.c1, NET.w1],
    [`c2${suffix}`, NS.control, `w2${suffix}`, NS.w2, NET.c2, NET.w2],
  ];
  for (const [a, nsA, b, nsB, addrA, addrB] of links) {
    ip("link", "add", a, "type", "veth", "peer", "name", b);
    if (nsA) ip("link", "set", a, "netns", nsA);
    ip("link", "set", b, "netns", nsB);
    ip(...(nsA ? ["-n", nsA] : []), "addr", "add", `${addrA}/24`, "dev", a);
    ip("-n", nsB, "addr", "add", `${addrB}/24`, "dev", b);
    ip(...(nsA ? ["-n", nsA] : []), "link", "set", a, "up");
    ip("-n", nsB, "link", "set", b, "up");
  }
}

function tearDownNetwork(): void {
  for (const ns of Object.values(NS)) {
    try {
      ip("netns", "del", ns);
    } catch {
      // already gone
    }
  }
  try {
    ip("link", "del", `r${suffix}`);
  } catch {
    // removed with its peer's namespace
  }
}

function startIn(ns: string, config: object, dir: string): Promise<ChildProcess> {
  const file = path.join(dir, `${ns}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, bin, "node", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node in ${ns} did not start:\n${stderr}`)), 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("taskflow node ready")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once("exit", (code) => reject(new Error(`node in ${ns} exited ${code}:\n${stderr}`)));
  });
}

describe("a network cut between hosts (network namespaces)", { skip: unavailable }, () => {
  const children: ChildProcess[] = [];
  let dir: string;
  before(async () => {
    tearDownNetwork();
    setUpNetwork();
    dir = tempDir();
    const liveness = { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 800 };
    children.push(await startIn(NS.control, { roles: ["control"], control: { host: "0.0.0.0", port: 50051 }, insecure: true, liveness, log: { level: "warn" } }, dir));
    for (const [ns, id, addr] of [[NS.w1, "hostA", NET.c1], [NS.w2, "hostB", NET.c2]] as const) {
      children.push(
        await startIn(ns, { roles: ["worker"], worker: { processes: 1, slots: 2, prefetch: 0, idPrefix: id, controlAddress: `${addr}:50051` }, log: { level: "warn" } }, dir),
      );
    }
  });
  after(() => {
    for (const child of children) child.kill("SIGKILL");
    tearDownNetwork();
  });

  it("runs a cut-off worker's task elsewhere, rejects its late result by epoch, and lets it rejoin", async () => {
    const client = new TaskflowClient({ address: `${NET.controlRoot}:50051` });
    try {
      await eventually(async () => ((await client.clusterState()).workers.length === 2 ? true : undefined), 10_000, "both workers");
      // One long task on each host.
      const ids = await Promise.all([client.submit("sleep", { ms: 2500 }), client.submit("sleep", { ms: 2500 })]);
      const onA = await eventually(async () => {
        const tasks = await Promise.all(ids.map((id) => client.get(id)));
        if (!tasks.every((t) => t.state === TaskState.RUNNING)) return undefined;
        return tasks.find((t) => t.workerId.startsWith("hostA"));
      }, 10_000, "a task running on host A");
      const cutAt = Date.now();
      ip("-n", NS.control, "link", "set", `c1${suffix}`, "down");
      // Host A is declared dead after the heartbeat timeout; its task runs on host B.
      const moved = await eventually(async () => {
        const t = await client.get(onA.id);
        return t.epoch > onA.epoch && t.workerId.startsWith("hostB") ? t : undefined;
      }, 10_000, "the task to move to host B");
      const failoverMs = Date.now() - cutAt;
      assert.match(moved.attempts[0]!.error, /no heartbeat|lost/);
      // Restore the link while host A still holds its stale attempt; it reports when it finishes.
      ip("-n", NS.control, "link", "set", `c1${suffix}`, "up");
      const outcome = await client.outcome(onA.id);
      assert.equal(outcome.state, "succeeded");
      assert.match(outcome.workerId, /^hostB/, "the result that counts is host B's");
      const final = await client.get(onA.id);
      assert.equal(final.epoch, onA.epoch + 1n, "exactly one reassignment");
      await eventually(async () => {
        const w = (await client.clusterState()).workers.find((x) => x.workerId.startsWith("hostA"));
        return w && w.state === WorkerState.ALIVE ? true : undefined;
      }, 15_000, "host A to rejoin");
      // Host A takes work again.
      const again = await Promise.all(Array.from({ length: 6 }, (_, i) => client.run<{ slept: number }>("sleep", { ms: 200 + i })));
      assert.equal(again.length, 6);
      process.stderr.write(`[netns] failover after the cut: ${failoverMs} ms\n`);
    } finally {
      client.close();
    }
  });
});
