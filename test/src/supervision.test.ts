/**
 * The worker role supervises its processes for as long as it runs: kill -9 of every worker
 * process at once (again and again) never ends the node, each death is logged with its signal,
 * and a killed process's tasks run again, round after round (`npm run bench:chaos` times it).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { killToRerun } from "./chaos/scenarios.js";
import { eventually, startNode, type StartedNode } from "./harness.js";

const PROCESSES = 2;

/** Waits until the node runs `count` worker processes (the standby among them), none of them in `gone`. */
async function freshPids(node: StartedNode, gone: ReadonlySet<number>, count = PROCESSES + 1): Promise<number[]> {
  return eventually(() => {
    const pids = node.workerPids();
    return pids.length === count && pids.every((p) => !gone.has(p)) ? pids : undefined;
  }, 10_000, "fresh worker processes");
}

describe("a worker-only node whose worker processes are all killed at once", () => {
  let control: StartedNode;
  let workers: StartedNode;
  before(async () => {
    control = await startNode({ roles: ["control"], log: { level: "error" } });
    // No metrics server: nothing but the supervision itself keeps this node's event loop alive.
    workers = await startNode({
      roles: ["worker"],
      worker: { processes: PROCESSES, slots: 4, prefetch: 0, idPrefix: "storm", controlAddress: control.address },
      metrics: { enabled: false },
    });
  });
  after(async () => {
    await workers.stop();
    await control.stop();
  });

  it("keeps running, logs each death with its signal, respawns them, and runs later tasks", async () => {
    const killed = new Set<number>();
    for (let round = 0; round < 5; round++) {
      const pids = await freshPids(workers, killed);
      for (const pid of pids) {
        process.kill(pid, "SIGKILL");
        killed.add(pid);
      }
      // All gone at once: the moment an unsupervised node would exit.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(workers.process.exitCode, null, `the node exited (code ${workers.process.exitCode}); logs:\n${workers.logs()}`);
      assert.equal(workers.process.signalCode, null);
    }
    await freshPids(workers, killed);
    const deaths = workers
      .logs()
      .split("\n")
      .filter((line) => line.includes('"msg":"worker process exited; restarting it"'))
      .map((line) => JSON.parse(line) as { signal?: string; code?: number | null; workerId?: string });
    // A standby killed in the same instant may already have been handed a worker ID: its death then
    // counts as that worker's.
    assert.ok(deaths.length >= 5 * PROCESSES, `one log line per death (${deaths.length})`);
    assert.ok(deaths.every((d) => d.signal === "SIGKILL" && d.workerId?.startsWith("storm-w")), JSON.stringify(deaths));
    const standbys = workers.logs().split("\n").filter((line) => line.includes('"msg":"standby worker process exited; starting another"'));
    assert.equal(deaths.length + standbys.length, 5 * (PROCESSES + 1), "the loaded standby was killed too, and replaced, each round");
    const client = new TaskflowClient({ address: control.address });
    try {
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => client.run("echo", { i })));
      assert.deepEqual(outcomes, Array.from({ length: 20 }, (_, i) => ({ i })));
    } finally {
      client.close();
    }
  });
});

describe("kill storm: kill -9 of a worker process → its tasks running again", () => {
  it("runs a killed process's tasks again, kill after kill (the times are bench:chaos figures)", async () => {
    const storm = await killToRerun(8);
    process.stderr.write(`[kill storm] kill → rerun ms: ${JSON.stringify(storm.samplesMs)} median ${storm.medianMs} max ${storm.maxMs}\n`);
    assert.equal(storm.samplesMs.length, 8, "every round's tasks ran again");
  });
});
