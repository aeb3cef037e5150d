/**
 * A handler that blocks its worker process's event loop: a watchdog thread notices, saves the
 * results the process had finished, fails only the blocking attempt, and the process is replaced.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { eventually, startNode, type StartedNode } from "./harness.js";

describe("a handler that blocks the event loop of its worker process", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ worker: { processes: 1, slots: 8, prefetch: 0 } });
  });
  after(async () => {
    await node.stop();
  });

  it("fails only the blocking attempt, keeps the results finished beside it, and replaces the process", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const pid = async () => (await client.clusterState()).workers[0]?.pid;
      const before = await eventually(pid, 10_000, "the worker process");
      // One batch: the quick handlers finish in the same turn of the event loop in which the
      // blocking one starts, so their results are held but not yet sent when the loop stalls.
      const startedAt = Date.now();
      const ids = await client.submitMany([
        ...Array.from({ length: 4 }, (_, i) => ({ type: "echo", payload: { i }, maxAttempts: 3 })),
        { type: "cpu", payload: { ms: 10_000 }, maxAttempts: 1 },
      ]);
      const replacedAfter = await eventually(async () => {
        const now = await pid();
        return now !== undefined && now !== before ? Date.now() - startedAt : undefined;
      }, 6000, "a new worker process");
      const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
      process.stderr.write(`[stall] process replaced ${replacedAfter} ms after the submit\n`);
      assert.ok(replacedAfter < 5000, `replaced well before the 10 s block ended (${replacedAfter} ms)`);
      for (const [i, outcome] of outcomes.slice(0, 4).entries()) {
        assert.equal(outcome.state, "succeeded", JSON.stringify(outcome));
        assert.deepEqual(outcome.value, { i });
        const task = await client.get(outcome.taskId);
        assert.equal(task.attempts.length, 1, `quick task ${i} ran exactly once: ${JSON.stringify(task.attempts.map((a) => a.error))}`);
      }
      const blocked = outcomes[4]!;
      assert.equal(blocked.state, "failed");
      assert.match(blocked.error, /blocked the event loop for \d+ ms/);
      const task = await client.get(blocked.taskId);
      assert.equal(task.state, TaskState.FAILED);
      assert.equal(task.attempts.length, 1);
      const watchdogLine = node.logs().split("\n").find((l) => l.includes("a handler blocked the event loop"));
      assert.ok(watchdogLine, `the watchdog says what it did; logs:\n${node.logs()}`);
      const said = JSON.parse(watchdogLine) as { blockingTaskId: string; rescued: number; stalledMs: number };
      process.stderr.write(`[stall] watchdog: ${watchdogLine}\n`);
      assert.equal(said.blockingTaskId, blocked.taskId);
      assert.equal(said.rescued, 5, "the four finished results and the blocking task's failure");
      assert.ok(said.stalledMs >= 1000 && said.stalledMs < 3000, `detected after ${said.stalledMs} ms`);
      // The new process takes work.
      assert.deepEqual(await client.run("echo", "after"), "after");
    } finally {
      client.close();
    }
  });
});

describe("a handler that ignores its abort signal past its timeout and the grace", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode(
      { worker: { processes: 1, slots: 4, prefetch: 0, handlers: "handlers.mjs", abortGraceMs: 300 } },
      {
        files: {
          "handlers.mjs": `export default {
            // Ignores its signal and keeps its process busy for ever.
            hang: () => new Promise(() => setInterval(() => {}, 1000)),
            sleep: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve({ slept: ms }), ms)),
            echo: (payload) => payload,
          };`,
        },
      },
    );
  });
  after(async () => {
    await node.stop();
  });

  it("costs its process once the other running tasks have finished, not the cluster", async () => {
    const client = new TaskflowClient({ address: node.address });
    try {
      const pid = async () => (await client.clusterState()).workers[0]?.pid;
      const before = await eventually(pid, 10_000, "the worker process");
      const sleeping = await client.submit("sleep", { ms: 2000 }, { maxAttempts: 1 });
      await eventually(async () => ((await client.get(sleeping)).state === TaskState.RUNNING ? true : undefined), 5000, "the sleeper running");
      const hanging = await client.submit("hang", {}, { timeoutMs: 200, maxAttempts: 1 });
      const hung = await client.outcome(hanging);
      assert.equal(hung.state, "failed");
      assert.match(hung.error, /timed out after 200 ms/);
      // The sleeper finishes on the old process: it is drained, not killed.
      const slept = await client.outcome(sleeping);
      assert.equal(slept.state, "succeeded", JSON.stringify(slept));
      assert.equal((await client.get(sleeping)).attempts.length, 1);
      const replaced = await eventually(async () => {
        const now = await pid();
        return now !== undefined && now !== before ? now : undefined;
      }, 10_000, "a new worker process");
      assert.notEqual(replaced, before);
      assert.match(node.logs(), /ignored its abort signal/);
      assert.deepEqual(await client.run("echo", "after"), "after");
    } finally {
      client.close();
    }
  });
});
