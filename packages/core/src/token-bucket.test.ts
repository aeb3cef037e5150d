import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TokenBucket } from "./token-bucket.js";

describe("TokenBucket", () => {
  describe("take", () => {
    it("gives a full burst at once, then nothing until time passes", () => {
      const bucket = new TokenBucket(10, 5, 1_000);
      for (let i = 0; i < 5; i++) assert.equal(bucket.take(1, 1_000), true, `token ${i}`);
      assert.equal(bucket.take(1, 1_000), false);
      assert.equal(bucket.available(1_000), 0);
    });

    it("refills at the rate, up to the burst", () => {
      const bucket = new TokenBucket(10, 5, 0);
      assert.equal(bucket.take(5, 0), true);
      assert.equal(bucket.take(1, 99), false, "0.99 tokens after 99 ms at 10/s");
      assert.equal(bucket.take(1, 100), true, "one token after 100 ms");
      assert.equal(bucket.available(60_000), 5, "never more than the burst");
    });

    it("takes all n tokens or none", () => {
      const bucket = new TokenBucket(1, 10, 0);
      assert.equal(bucket.take(7, 0), true);
      assert.equal(bucket.take(4, 0), false);
      assert.equal(bucket.available(0), 3, "a refused take leaves the tokens there");
      assert.equal(bucket.take(3, 0), true);
    });

    it("never gives more than the burst in one take", () => {
      const bucket = new TokenBucket(1000, 10, 0);
      assert.equal(bucket.take(11, 1_000_000), false);
    });

    it("adds nothing when the clock goes back", () => {
      const bucket = new TokenBucket(10, 5, 1_000);
      bucket.take(5, 1_000);
      assert.equal(bucket.take(1, 500), false);
      assert.equal(bucket.take(1, 1_100), true, "and counts from the latest time seen");
    });
  });

  describe("waitMs", () => {
    it("says how long until n tokens are held", () => {
      const bucket = new TokenBucket(4, 4, 0);
      bucket.take(4, 0);
      assert.equal(bucket.waitMs(1, 0), 250);
      assert.equal(bucket.waitMs(2, 0), 500);
      assert.equal(bucket.waitMs(0, 0), 0);
      assert.equal(bucket.waitMs(5, 0), Infinity, "more than the burst never fits");
    });
  });

  describe("constructor", () => {
    it("refuses a rate that is not positive or a burst below one", () => {
      assert.throws(() => new TokenBucket(0, 5, 0), RangeError);
      assert.throws(() => new TokenBucket(5, 0.5, 0), RangeError);
      assert.throws(() => new TokenBucket(Number.NaN, 5, 0), RangeError);
    });
  });
});
