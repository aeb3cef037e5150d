import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "./clock.js";

describe("FakeClock", () => {
  describe("advance", () => {
    it("fires due timeouts in time order, each with now() at its own instant", () => {
      const clock = new FakeClock(1000);
      const fired: [string, number][] = [];
      clock.setTimeout(() => fired.push(["b", clock.now()]), 20);
      clock.setTimeout(() => fired.push(["a", clock.now()]), 10);
      clock.setTimeout(() => fired.push(["c", clock.now()]), 30);
      clock.advance(25);
      assert.deepEqual(fired, [["a", 1010], ["b", 1020]]);
      assert.equal(clock.now(), 1025);
      assert.equal(clock.pending, 1);
    });

    it("repeats an interval and fires timers that a callback sets within the same advance", () => {
      const clock = new FakeClock(0);
      const ticks: number[] = [];
      clock.setInterval(() => {
        ticks.push(clock.now());
        if (ticks.length === 2) clock.setTimeout(() => ticks.push(-clock.now()), 5);
      }, 10);
      clock.advance(30);
      assert.deepEqual(ticks, [10, 20, -25, 30]);
    });

    it("does not fire a cleared timer", () => {
      const clock = new FakeClock(0);
      let fired = false;
      const t = clock.setTimeout(() => (fired = true), 10);
      clock.clear(t);
      clock.clear(undefined);
      clock.advance(100);
      assert.equal(fired, false);
      assert.equal(clock.pending, 0);
    });
  });

  describe("runAll", () => {
    it("runs timeouts until none is left and refuses to run an interval forever", () => {
      const clock = new FakeClock(0);
      let n = 0;
      clock.setTimeout(() => clock.setTimeout(() => n++, 50), 50);
      clock.runAll();
      assert.equal(n, 1);
      assert.equal(clock.now(), 100);
      clock.setInterval(() => {}, 1);
      assert.throws(() => clock.runAll(10), /still pending/);
    });
  });
});
