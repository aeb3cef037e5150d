import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderTop, runTop, type TopSample } from "./top.js";

const base: TopSample = {
  time: Date.parse("2026-11-28T08:00:00Z"),
  policy: "fifo",
  queued: 120,
  running: 30,
  succeeded: 1000,
  failed: 2,
  cancelled: 1,
  workers: [
    { id: "host-1-w1", state: "alive", running: 14, slots: 16, host: "host", pid: 11, lastHeartbeat: Date.parse("2026-11-28T07:59:59.700Z"), labels: { gpu: "true" } },
    { id: "host-1-w0", state: "draining", running: 16, slots: 16, host: "host", pid: 10, lastHeartbeat: Date.parse("2026-11-28T07:59:59.900Z"), labels: {} },
  ],
};

describe("renderTop", () => {
  it("shows the queue, totals and one row per worker, sorted by ID", () => {
    const text = renderTop(base, undefined, { address: "127.0.0.1:50051", width: 200, height: 40 });
    const lines = text.split("\n");
    assert.match(lines[0]!, /taskflow top — 127\.0\.0\.1:50051 {3}policy fifo {3}08:00:00 UTC/);
    assert.match(text, /queue {4}queued 120 {3}running 30/);
    assert.match(text, /totals {3}succeeded 1,000 {3}failed 2 {3}cancelled 1/);
    assert.match(text, /workers {2}2 \(1 alive, 1 draining\) {3}load █+░* 30\/32 slots/);
    assert.match(text, /\(rates after the next refresh\)/);
    const rows = lines.filter((l) => l.startsWith("host-1-"));
    assert.deepEqual(rows.map((r) => r.split(/\s+/)[0]), ["host-1-w0", "host-1-w1"]);
    assert.match(rows[0]!, /draining +██████████ 16\/16 +0\.1s +host\/10/);
    assert.match(rows[1]!, /alive .* 14\/16 +0\.3s +host\/11 +gpu=true/);
  });

  it("computes rates per second from the previous sample", () => {
    const next: TopSample = { ...base, time: base.time + 2000, succeeded: 1000 + 5000, failed: 6, cancelled: 1 };
    const text = renderTop(next, base, { address: "a:1", width: 200, height: 40 });
    assert.match(text, /rates {4}succeeded 2,500\/s {3}failed 2\/s {3}cancelled 0\/s$/m);
  });

  it("never shows a negative rate when finished tasks were purged", () => {
    const next: TopSample = { ...base, time: base.time + 1000, succeeded: 10 };
    assert.match(renderTop(next, base, { address: "a:1", width: 200, height: 40 }), /succeeded 0\/s/);
  });

  it("fits the terminal: clips wide lines and summarises workers that do not fit", () => {
    const many: TopSample = {
      ...base,
      workers: Array.from({ length: 50 }, (_, i) => ({ ...base.workers[0]!, id: `w-${String(i).padStart(2, "0")}` })),
    };
    const text = renderTop(many, undefined, { address: "a:1", width: 60, height: 20 });
    const lines = text.split("\n");
    assert.ok(lines.length <= 20, `${lines.length} lines`);
    assert.ok(lines.every((l) => l.length <= 60));
    assert.match(text, /… \d+ more worker\(s\)/);
  });

  it("counts every worker from the node's summary when it sends only a page of them", () => {
    const paged: TopSample = { ...base, summary: { total: 10_000, byState: [["alive", 9_990], ["draining", 10]], slots: 160_000, running: 42 } };
    const text = renderTop(paged, undefined, { address: "a:1", width: 200, height: 40 });
    assert.match(text, /workers {2}10000 \(9990 alive, 10 draining\) {3}load .* 42\/160000 slots/);
    assert.match(text, /… 9998 more worker\(s\)/, "the 2 listed of 10,000");
    assert.ok(text.split("\n").length <= 40);
  });

  it("says so when no worker is connected", () => {
    assert.match(renderTop({ ...base, workers: [] }, undefined, { address: "a:1", width: 100, height: 30 }), /no workers connected/);
  });
});

describe("runTop", () => {
  it("redraws from each poll and quits on q, restoring the terminal", async () => {
    const { EventEmitter } = await import("node:events");
    const input = Object.assign(new EventEmitter(), {
      isTTY: true,
      raw: false,
      setRawMode(on: boolean) {
        input.raw = on;
        return input;
      },
      resume() {},
      pause() {},
    });
    let written = "";
    const output = { columns: 100, rows: 30, write: (s: string) => ((written += s), true) };
    let polls = 0;
    const state = { workers: [], queued: 3n, running: 1n, succeeded: 10n, failed: 0n, cancelled: 0n, policy: "fifo" };
    // A real terminal's stdin holds the event loop open; this fake does not, and runTop's own
    // timers are unref'd: without this the loop could end between two polls and cancel the test.
    const keepAlive = setInterval(() => {}, 1000);
    const done = runTop({
      poll: async () => {
        if (++polls === 2) setImmediate(() => input.emit("data", Buffer.from("q")));
        return state as never;
      },
      address: "a:1",
      intervalMs: 10,
      output: output as never,
      input: input as never,
    });
    await done.finally(() => clearInterval(keepAlive));
    assert.ok(polls >= 2);
    assert.equal(input.raw, false, "raw mode is switched off again");
    assert.equal(input.listenerCount("data"), 0);
    assert.ok(written.startsWith("\x1b[?1049h"), "uses the alternate screen");
    assert.match(written, /queue {4}queued 3 {3}running 1/);
    assert.ok(written.endsWith("\x1b[?25h\x1b[?1049l"), "shows the cursor and leaves the alternate screen");
  });
});
