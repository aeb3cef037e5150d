/**
 * The chaos scenarios at a size CI can afford (bench:chaos runs them at 10,000 tasks): worker
 * kills, control-node kills and a full disk lose no task and deliver every result once; control
 * kills and a full disk finish no task twice. Times are printed, not asserted.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { controlKills, fullDisk, workerKills } from "./scenarios.js";

describe("chaos at CI size", { timeout: 240_000 }, () => {
  it("worker kills: nothing lost, each result delivered once", async () => {
    const f = await workerKills(1000, 4, 50);
    process.stderr.write(`${JSON.stringify(f)}\n`);
    assert.ok(f.faults >= 2, `kills happened during the run (${f.faults})`);
    assert.equal(f.lost, 0);
    assert.equal(f.deliveredTwice, 0);
    assert.ok(f.reran > 0, "the kills hit running tasks");
  });

  it("control-node kills: nothing lost, nothing finished or delivered twice", async () => {
    const f = await controlKills(1000, 2, 20);
    process.stderr.write(`${JSON.stringify(f)}\n`);
    assert.ok(f.faults >= 1, `kills happened during the run (${f.faults})`);
    assert.equal(f.lost, 0);
    assert.equal(f.finishedTwice, 0);
    assert.equal(f.deliveredTwice, 0);
  });

  it("a full disk: nothing lost, nothing finished or delivered twice", async () => {
    const f = await fullDisk(1000, 1);
    process.stderr.write(`${JSON.stringify(f)}\n`);
    assert.equal(f.faults, 1);
    assert.equal(f.lost, 0);
    assert.equal(f.finishedTwice, 0);
    assert.equal(f.deliveredTwice, 0);
  });
});
