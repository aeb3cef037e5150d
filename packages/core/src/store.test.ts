import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, TaskflowError } from "./errors.js";
import { MAX_LIST_PAGE_SIZE, isWellFormedPageToken, listPageSize, seqOfPageToken, seqPageToken } from "./store.js";

const invalid = (fn: () => unknown, pattern: RegExp) => assert.throws(fn, (err: unknown) => TaskflowError.is(err) && err.code === Code.INVALID_ARGUMENT && pattern.test(err.message));

describe("store page helpers", () => {
  it("applies pageSize: 0 or absent is the default, more is cut to the maximum, a bad one is INVALID_ARGUMENT", () => {
    assert.deepEqual([listPageSize(undefined), listPageSize(0), listPageSize(7), listPageSize(10 ** 6)], [50, 50, 7, MAX_LIST_PAGE_SIZE]);
    invalid(() => listPageSize(-1), /pageSize must be a whole number ≥ 0, got -1/);
    invalid(() => listPageSize(2.5), /got 2\.5/);
  });

  it("round-trips a seq through a well-formed token and refuses tokens no store gave out", () => {
    for (const seq of [0, 1, 123_456, Number.MAX_SAFE_INTEGER]) {
      const token = seqPageToken(seq);
      assert.ok(isWellFormedPageToken(token), token);
      assert.equal(seqOfPageToken(token), seq);
    }
    // "s1e5" would be 100000 to Number(); "s-1" and a seq past 2^53 are not seqs either.
    for (const forged of ["s1e5", "s-1", "s99999999999999999", "x12", ""]) {
      invalid(() => seqOfPageToken(Buffer.from(forged).toString("base64url")), /page_token is not one this server gave out/);
    }
  });
});
