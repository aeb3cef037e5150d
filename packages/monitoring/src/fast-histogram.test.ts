import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Histogram, Registry } from "prom-client";
import { FastHistogram } from "./fast-histogram.js";

describe("FastHistogram", () => {
  it("prints the same exposition as prom-client's Histogram for the same observations", async () => {
    const buckets = [0.01, 0.1, 1, 10];
    const values = [0, 0.01, 0.010001, 0.05, 0.1, 3, 10, 11, 1e9];
    const fast = new Registry();
    const slow = new Registry();
    const f = new FastHistogram("t_seconds", "help", buckets, fast);
    const h = new Histogram({ name: "t_seconds", help: "help", buckets, registers: [slow] });
    for (const v of values) {
      f.observe(v);
      h.observe(v);
    }
    assert.equal(await fast.metrics(), await slow.metrics());
  });

  it("ignores values that are not finite non-negative numbers, and resets", async () => {
    const registry = new Registry();
    const f = new FastHistogram("x", "help", [1], registry);
    for (const v of [Number.NaN, -1, Infinity]) f.observe(v);
    f.observe(0.5);
    assert.match(await registry.metrics(), /x_count 1\n/);
    registry.resetMetrics();
    assert.match(await registry.metrics(), /x_count 0\n/);
  });
});
