/**
 * The simulator end to end: a real node records a trace (`control.traceFile`) of tasks run by
 * its worker processes; `taskflow simulate` replays it under two policies and writes the HTML
 * report; `taskflow simulate generate` is deterministic; bad input exits with a usage error.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { cli, startNode, tempDir } from "./harness.js";

interface Line {
  e: string;
  id?: string;
  at?: number;
  type?: string;
  tenant?: string;
  priority?: number;
  metadata?: Record<string, string>;
  expectedDurationMs?: number;
  runMs?: number;
  state?: string;
}

describe("taskflow simulate", () => {
  it("replays a trace a real node recorded, under fifo and priority, and writes the HTML report", async () => {
    // Our own folder: the harness removes the one it makes when the node stops, and the trace is read after.
    const dir = tempDir();
    const node = await startNode({ worker: { processes: 1, slots: 2 }, control: { traceFile: "trace.jsonl" } }, { dir });
    const traceFile = path.join(dir, "trace.jsonl");
    const sleeps = [30, 60, 10, 80, 20, 40, 50, 5, 70, 25];
    const client = new TaskflowClient({ address: node.address });
    try {
      const ids = await client.submitMany(
        sleeps.map((ms, i) => ({ type: "sleep", payload: { ms }, priority: i % 3, expectedDurationMs: ms, metadata: { n: String(i) } })),
      );
      const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
      assert.deepEqual(outcomes.map((o) => o.state), sleeps.map(() => "succeeded"));
    } finally {
      client.close();
      assert.equal(await node.stop(), 0);
    }

    const lines = readFileSync(traceFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
    assert.equal(lines[0]!.e, "header");
    const submits = lines.filter((l) => l.e === "submit");
    const finishes = lines.filter((l) => l.e === "finish");
    assert.equal(submits.length, 10);
    assert.equal(lines.filter((l) => l.e === "start").length, 10);
    assert.equal(finishes.length, 10);
    const byMeta = new Map(submits.map((s) => [Number(s.metadata!["n"]), s]));
    for (const [i, ms] of sleeps.entries()) {
      const s = byMeta.get(i)!;
      assert.equal(s.type, "sleep");
      assert.equal(s.tenant, "default");
      assert.equal(s.priority, i % 3);
      assert.equal(s.expectedDurationMs, ms);
      const f = finishes.find((x) => x.id === s.id)!;
      assert.equal(f.state, "succeeded");
      // The control node's view: from the start it heard of (a heartbeat later than the real start) to the result.
      assert.ok(f.runMs! >= 0 && f.runMs! < 60_000, `task ${i} ran ${f.runMs} ms for a ${ms} ms sleep`);
      assert.ok(f.at! >= s.at!, "finished after it was submitted");
    }

    const report = path.join(dir, "report.html");
    const replay = await cli(["simulate", "--trace", traceFile, "--policy", "fifo", "--policy", "priority", "--workers", "1x2", "--out", report, "--json"]);
    assert.equal(replay.code, 0, replay.stderr);
    const json = JSON.parse(replay.stdout) as { tasks: number; runs: { policy: string; tasks: number; unfinished: number; utilisation: number; tenants: Record<string, { tasks: number }> }[] };
    assert.equal(json.tasks, 10);
    assert.deepEqual(json.runs.map((r) => [r.policy, r.tasks, r.unfinished]), [["fifo", 10, 0], ["priority", 10, 0]]);
    assert.deepEqual(Object.keys(json.runs[0]!.tenants), ["default"]);
    for (const r of json.runs) assert.ok(r.utilisation > 0 && r.utilisation <= 1, `utilisation ${r.utilisation}`);
    const html = readFileSync(report, "utf8");
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<svg [^>]*>.*All tenants: tasks started within x/s);
    assert.match(html, /Cluster utilisation over time/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, "self-contained: no script, nothing fetched");

    const table = await cli(["simulate", "--trace", traceFile, "--workers", "1x2"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^policy +tenant +tasks +wait p50 +wait p99 +wait max +makespan +utilisation$/m);
    assert.match(table.stdout, /^fifo: replayed 10 tasks, .* of virtual time, in .* wall time \(\d+× real time; .* of CPU/m);
    rmSync(dir, { recursive: true, force: true });
  });

  it("generate gives the same bytes for the same seed; the replay of 2,000 generated tasks finishes them all", async () => {
    const dir = tempDir();
    const args = ["simulate", "generate", "--tasks", "2000", "--tenants", "2", "--rate", "200", "--types", "a=10ms,b=30ms", "--seed", "5"];
    const first = await cli(args);
    const second = await cli([...args, "--out", path.join(dir, "t.jsonl")]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(path.join(dir, "t.jsonl"), "utf8"), first.stdout);
    assert.equal(first.stdout.trim().split("\n").length, 2001);
    const replay = await cli(["simulate", "--trace", path.join(dir, "t.jsonl"), "--policy", "least-loaded", "--json"]);
    assert.equal(replay.code, 0, replay.stderr);
    const json = JSON.parse(replay.stdout) as { runs: { tasks: number; unfinished: number; tenants: Record<string, unknown> }[] };
    assert.equal(json.runs[0]!.tasks, 2000);
    assert.equal(json.runs[0]!.unfinished, 0);
    assert.deepEqual(Object.keys(json.runs[0]!.tenants).sort(), ["a", "b"]);
  });

  it("says what is wrong: a missing trace, an unknown policy, a bad --workers", async () => {
    const dir = tempDir();
    const missing = await cli(["simulate", "--trace", path.join(dir, "nope.jsonl")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--trace: cannot read .*nope\.jsonl/);
    const trace = path.join(dir, "t.jsonl");
    assert.equal((await cli(["simulate", "generate", "--tasks", "10", "--out", trace])).code, 0);
    const unknown = await cli(["simulate", "--trace", trace, "--policy", "no-such-policy-xyz"]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /TASKFLOW_ERR_POLICY_NOT_FOUND|policy "no-such-policy-xyz"/);
    const workers = await cli(["simulate", "--trace", trace, "--workers", "four"]);
    assert.equal(workers.code, 2);
    assert.match(workers.stderr, /--workers is <workers>x<slots>, such as 4x8/);
    assert.equal(existsSync(path.join(dir, "report.html")), false);
  });

  it("a control.traceFile that cannot be opened stops the start, naming the key", async () => {
    await assert.rejects(startNode({ roles: ["control"], control: { traceFile: "no/such/folder/trace.jsonl" } }), /control\.traceFile.*cannot open/s);
  });
});
