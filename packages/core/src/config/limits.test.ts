import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../config.js";
import { globPattern, parseRate, rateBurst } from "./limits.js";
import { configError } from "./config-error.test.fixture.js";

describe("config: limits and concurrency", () => {
  it("has none by default", () => {
    const config = parseConfig({});
    assert.deepEqual(config.limits, []);
    assert.deepEqual(config.concurrency, []);
  });

  it("takes rate limits and concurrency limits, with a burst of one second's worth by default", () => {
    const config = parseConfig({
      limits: [{ match: { type: "email" }, rate: "100/s", burst: 20 }, { match: { rateLimitKey: "customer-*" }, rate: "600/m" }, { match: { tenant: "acme" }, rate: "0.5/s" }],
      concurrency: [{ match: { concurrencyKey: "customer-*" }, max: 2 }],
    });
    assert.deepEqual(config.limits.map(rateBurst), [20, 10, 1]);
    assert.equal(config.concurrency[0]!.max, 2);
  });

  it("reads rates per second, minute and hour", () => {
    assert.equal(parseRate("100/s"), 100);
    assert.equal(parseRate(" 600 / m "), 10);
    assert.equal(parseRate("36/h"), 0.01);
    for (const bad of ["100", "100/d", "0/s", "-1/s", "1e3/s", "/s", "fast"]) assert.equal(parseRate(bad), undefined, bad);
  });

  it("names the key and the fix for a bad rate, burst, max or match", () => {
    assert.match(configError({ limits: [{ match: { type: "email" }, rate: "100 per second" }] }), /limits\.0\.rate: must be "<count>\/s", "<count>\/m" or "<count>\/h".*; fix: use a count per second, minute or hour such as "100\/s"/);
    assert.match(configError({ limits: [{ match: { type: "email" }, rate: "1/s", burst: 0 }] }), /limits\.0\.burst: .*; fix: use a whole number of starts of at least 1/);
    assert.match(configError({ limits: [{ match: { type: "email" }, rate: "1/s" }, { match: {}, rate: "1/s" }] }), /limits\.1\.match: needs at least one of type, rateLimitKey, tenant; fix: name what the limit counts/);
    assert.match(configError({ limits: [{ match: { type: "email" } }] }), /limits\.0\.rate: /);
    assert.match(configError({ concurrency: [{ match: { concurrencyKey: "c-*" }, max: 0 }] }), /concurrency\.0\.max: .*; fix: use a whole number of running tasks of at least 1, such as 2/);
    assert.match(configError({ concurrency: [{ match: { concurencyKey: "c-*" }, max: 1 }] }), /unknown key "concurrency\.0\.match\.concurencyKey": did you mean "concurrencyKey"\?/);
    assert.match(configError({ limits: [{ match: { rateLimitKey: "k" }, rate: "1/s", bust: 3 }] }), /unknown key "limits\.0\.bust": did you mean "burst"\?/);
  });
});

describe("globPattern", () => {
  it("matches * as any run and ? as one character, everything else literally", () => {
    const p = globPattern("customer-*");
    assert.ok(p.test("customer-42") && p.test("customer-") && !p.test("xcustomer-1"));
    assert.ok(globPattern("a?c").test("abc") && !globPattern("a?c").test("ac"));
    assert.ok(globPattern("a.b+(c)").test("a.b+(c)") && !globPattern("a.b+(c)").test("axb+(c)"));
    assert.ok(globPattern("*").test("line\nbreak"));
  });
});
