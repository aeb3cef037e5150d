import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Code, Reason } from "@taskflow/core";
import { statusTrailers } from "@taskflow/proto/grpc";
import { Backoff, FOLLOW_LEADER_MAX_MS, FOLLOW_NAMED_LEADER_MAX_MS, retryDelay } from "./backoff.js";
import { LeaderChannel, controlAddresses } from "./leader-channel.js";

const notLeader = (leader?: string) => statusTrailers(Code.UNAVAILABLE, "standby", Reason.NOT_LEADER, leader ? { leader } : {});

describe("controlAddresses", () => {
  it("takes one address, a comma-separated list or an array, trimmed and without repeats", () => {
    assert.deepEqual(controlAddresses("a:1"), ["a:1"]);
    assert.deepEqual(controlAddresses(" a:1, b:2 ,,a:1"), ["a:1", "b:2"]);
    assert.deepEqual(controlAddresses(["a:1", "b:2,c:3"]), ["a:1", "b:2", "c:3"]);
  });

  it("refuses none, naming address", () => {
    assert.throws(() => controlAddresses(" , "), /address: no control address/);
    assert.throws(() => controlAddresses([]), /address: no control address/);
  });
});

describe("LeaderChannel", () => {
  const make = () => new LeaderChannel(["a:1", "b:2", "c:3"], grpc.credentials.createInsecure(), {});

  it("goes to the leader a standby names", () => {
    const ch = make();
    ch.unavailable("a:1", notLeader("c:3"));
    assert.equal(ch.current, "c:3");
    // A leader outside the list is followed too (it is the leader's advertised address).
    ch.unavailable("c:3", notLeader("d:4"));
    assert.equal(ch.current, "d:4");
    ch.close();
  });

  it("tries the next address on a broken connection, or when no leader is named, round the list", () => {
    const ch = make();
    ch.unavailable("a:1", undefined);
    assert.equal(ch.current, "b:2");
    ch.unavailable("b:2", notLeader());
    assert.equal(ch.current, "c:3");
    ch.unavailable("c:3", new grpc.Metadata());
    assert.equal(ch.current, "a:1");
    ch.close();
  });

  it("stays on a node that names itself the leader (elected, still loading its tasks)", () => {
    const ch = make();
    ch.unavailable("a:1", notLeader("b:2"));
    assert.equal(ch.current, "b:2");
    ch.unavailable("b:2", notLeader("b:2"));
    assert.equal(ch.current, "b:2", "it serves within moments: moving on would only bring the caller back");
    ch.close();
  });

  it("ignores a failure of a node calls no longer go to, and the leader's own UNAVAILABLE reasons", () => {
    const ch = make();
    ch.unavailable("b:2", undefined);
    assert.equal(ch.current, "a:1", "a late failure from elsewhere moves nothing");
    ch.unavailable("a:1", statusTrailers(Code.UNAVAILABLE, "store cannot write", Reason.STORE));
    assert.equal(ch.current, "a:1", "another node would only send the caller back");
    ch.close();
  });
});

describe("retryDelay", () => {
  it("caps the wait after NOT_LEADER, and after a broken connection only when following several nodes", () => {
    const grown = () => {
      const b = new Backoff(100, 2000);
      for (let i = 0; i < 5; i++) b.next();
      return b;
    };
    assert.equal(retryDelay(grown(), { reason: Reason.NOT_LEADER }), FOLLOW_LEADER_MAX_MS);
    assert.equal(retryDelay(grown(), undefined, true), FOLLOW_LEADER_MAX_MS);
    assert.equal(retryDelay(grown(), {}, true), FOLLOW_LEADER_MAX_MS);
    assert.equal(retryDelay(grown(), undefined, false), 2000);
    assert.equal(retryDelay(grown(), { reason: Reason.STORE }, true), 2000);
    assert.equal(retryDelay(new Backoff(100, 2000), { reason: Reason.NOT_LEADER }), 100, "never longer than the backoff");
  });

  it("retries within moments after a NOT_LEADER that names the leader", () => {
    const b = new Backoff(100, 2000);
    for (let i = 0; i < 5; i++) b.next();
    assert.equal(retryDelay(b, { reason: Reason.NOT_LEADER, metadata: { leader: "b:2" } }, true), FOLLOW_NAMED_LEADER_MAX_MS);
    assert.ok(FOLLOW_NAMED_LEADER_MAX_MS < FOLLOW_LEADER_MAX_MS);
  });
});
