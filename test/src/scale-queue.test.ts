/**
 * Issue 13 at CI scale: a real control node queues 400,000 tasks with 16-byte payloads (no
 * workers), with the memory store and with SQLite, then a worker drains them all (each checks
 * its payload came back intact). The marginal cost of a queued task (ΔRSS from 200,000 to
 * 400,000 queued: past the first 200,000, SQLite's 64 MiB page cache is full) must stay far
 * below what it was with one JavaScript object per task (≈950 bytes); the bound is generous, as
 * RSS on a busy shared machine is noisy at this size. `bench/scale-queue.ts` measures 1 M → 10 M.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { queueScale } from "./bench/scale-queue.js";

/** Bytes per queued task the test accepts; measured at 10 M: see docs/adr/0030-off-heap-queued-tasks.md. */
const BOUND = 600;

describe("400,000 queued tasks on one control node", () => {
  for (const store of ["memory", "sqlite"] as const) {
    it(`${store} store: all drain, and each queued task costs under ${BOUND} bytes of RSS`, { timeout: 300_000 }, async (t) => {
      const result = await queueScale({ sizes: [200_000, 400_000], store });
      t.diagnostic(JSON.stringify(result));
      assert.equal(result.drained, 400_000, "every queued task ran, with its payload intact");
      assert.ok(result.deltaBytesPerTask > 0, `RSS grew with the queue (${result.deltaBytesPerTask} B/task)`);
      assert.ok(result.deltaBytesPerTask < BOUND, `${result.deltaBytesPerTask} bytes per queued task`);
      assert.ok(result.submitPerSec > 0 && result.drainPerSec! > 0);
    });
  }
});
