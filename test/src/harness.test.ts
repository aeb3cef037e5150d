/**
 * The harness itself: a node that misses its start timeout is killed, so its pipes cannot keep
 * the test process (and the suite) alive.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { eventually, startNode, tempDir } from "./harness.js";

/** PIDs of processes whose command line names `dir` (the node's config file is in it). */
function processesIn(dir: string): number[] {
  try {
    return execFileSync("pgrep", ["-f", dir], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe("startNode", () => {
  it("kills a node that is not ready in time", async () => {
    const dir = tempDir();
    // 1 ms: no node is ready that fast, so the timeout always fires.
    await assert.rejects(startNode({ roles: ["control", "worker"], worker: { processes: 1 } }, { dir, timeoutMs: 1 }), /did not start in 1 ms \(killed\)/);
    await eventually(() => (processesIn(dir).length === 0 ? true : undefined), 30_000, "the node process to be gone");
  });
});
