import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { HeldResult } from "@taskflow/client";
import { StallMirror, StallReader, createSharedState, readRescueFile, writeRescueFile } from "./stall-mirror.js";

const result = (taskId: string, size = 8, ok = true): HeldResult => ({
  taskId,
  epoch: BigInt(taskId.length) * 1_000_000_007n,
  ok,
  result: new Uint8Array(size).fill(taskId.charCodeAt(0)),
  error: ok ? "" : `failed: ${taskId} ✗`,
});

describe("StallMirror", () => {
  describe("hooks", () => {
    it("copies held results where the reader finds them, and forgets stored ones", () => {
      const shared = createSharedState(4096);
      const mirror = new StallMirror(shared);
      const reader = new StallReader(shared);
      const [a, b, c] = [result("a"), result("bé", 0, false), result("c")];
      for (const r of [a, b, c]) mirror.hooks.resultHeld(r);
      assert.deepEqual(reader.results(), [a, b, c]);
      mirror.hooks.resultsStored([b]);
      assert.deepEqual(reader.results(), [a, c]);
      mirror.hooks.resultsStored([a, c]);
      assert.deepEqual(reader.results(), []);
      assert.equal(mirror.size, 0);
    });

    it("moves live results down when the region is full, and skips one too big for it", () => {
      const shared = createSharedState(1000);
      const mirror = new StallMirror(shared);
      const reader = new StallReader(shared);
      const keep = result("keep", 100);
      mirror.hooks.resultHeld(keep);
      const live: HeldResult[] = [keep];
      for (let i = 0; i < 200; i++) {
        const r = result(`t${i}`, 100);
        mirror.hooks.resultHeld(r);
        live.push(r);
        // Stored out of order: all but the first and the newest two.
        if (live.length > 3) mirror.hooks.resultsStored(live.splice(1, 1));
      }
      assert.deepEqual(reader.results(), live);
      mirror.hooks.resultHeld(result("huge", 2000));
      assert.deepEqual(reader.results(), live, "a result bigger than the region is not copied");
    });

    it("records the task whose handler runs now, until it returns", () => {
      const shared = createSharedState(1024);
      const mirror = new StallMirror(shared);
      const reader = new StallReader(shared);
      assert.equal(reader.current(), undefined);
      mirror.hooks.handlerEntered("task-1", 42n);
      assert.deepEqual(reader.current(), { taskId: "task-1", epoch: 42n });
      mirror.hooks.handlerExited();
      assert.equal(reader.current(), undefined);
      const before = reader.tick();
      mirror.tick();
      assert.equal(reader.tick(), before + 1);
    });
  });
});

describe("rescue file", () => {
  it("round-trips results for the same worker ID only, and reads a missing file as none", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "taskflow-rescue-test-"));
    try {
      const file = path.join(dir, "w0.json");
      assert.deepEqual(readRescueFile(file, "w0"), []);
      const results = [result("x", 3), result("y", 0, false)];
      writeRescueFile(file, "w0", results);
      assert.deepEqual(readRescueFile(file, "w0"), results);
      assert.deepEqual(readRescueFile(file, "w1"), []);
      writeFileSync(file, "{not json");
      assert.throws(() => readRescueFile(file, "w0"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
