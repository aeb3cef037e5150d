import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { VirtualClock } from "./virtual-clock.js";

describe("VirtualClock", () => {
  it("fires timers in time order, ties in the order set, with now() at each timer's instant", () => {
    const clock = new VirtualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.at(1010, () => fired.push(`a@${clock.now()}`));
    clock.at(1020, () => fired.push(`c@${clock.now()}`));
    const cleared = clock.setTimeout(() => fired.push("never"), 5);
    clock.clear(cleared);
    clock.setTimeout(() => fired.push(`zero@${clock.now()}`), 0);
    assert.equal(clock.pending, 4);
    assert.equal(clock.nextAt(), 1001);
    clock.advanceTo(1015);
    assert.deepEqual(fired, ["zero@1001", "a@1010"]);
    assert.equal(clock.now(), 1015);
    clock.advanceTo(1100);
    assert.deepEqual(fired.slice(2), ["b@1020", "c@1020"]);
    assert.equal(clock.nextAt(), undefined);
  });

  it("repeats an interval until cleared", () => {
    const clock = new VirtualClock(0);
    let n = 0;
    const handle = clock.setInterval(() => n++, 10);
    clock.advanceTo(35);
    assert.equal(n, 3);
    clock.clear(handle);
    clock.advanceTo(100);
    assert.equal(n, 3);
    assert.equal(clock.pending, 0);
  });
});
