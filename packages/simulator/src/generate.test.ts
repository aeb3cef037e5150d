import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generateTrace, generateTraceText, parseTypes } from "./generate.js";
import { parseTrace, type TraceSubmit } from "./trace.js";

describe("generateTrace", () => {
  it("gives the same trace for the same seed, byte for byte, and another for another seed", () => {
    const a = generateTraceText({ tasks: 2000, seed: 7 });
    assert.equal(generateTraceText({ tasks: 2000, seed: 7 }), a);
    assert.notEqual(generateTraceText({ tasks: 2000, seed: 8 }), a);
  });

  it("arrives at the asked rate, in the tenants' shares and types' means, in time order", () => {
    const submits = [...generateTrace({ tasks: 20_000, tenants: 3, tenantShares: [6, 3, 1], rate: 1000, types: parseTypes("a=10ms,b=100ms"), sigma: 0.5, seed: 3 })].filter(
      (e): e is TraceSubmit => e.e === "submit",
    );
    assert.equal(submits.length, 20_000);
    for (let i = 1; i < submits.length; i++) assert.ok(submits[i]!.at >= submits[i - 1]!.at, "arrivals in order");
    const seconds = (submits.at(-1)!.at - submits[0]!.at) / 1000;
    assert.ok(Math.abs(20_000 / seconds - 1000) < 50, `rate ${20_000 / seconds}/s is about 1000/s`);
    const share = (t: string) => submits.filter((s) => s.tenant === t).length / submits.length;
    assert.ok(Math.abs(share("a") - 0.6) < 0.02 && Math.abs(share("b") - 0.3) < 0.02 && Math.abs(share("c") - 0.1) < 0.02);
    // Tenant a favours type a (half its tasks plus a quarter), tenant b type b.
    const mix = (t: string, type: string) => submits.filter((s) => s.tenant === t && s.type === type).length / submits.filter((s) => s.tenant === t).length;
    assert.ok(Math.abs(mix("a", "a") - 0.75) < 0.03 && Math.abs(mix("b", "b") - 0.75) < 0.03);
    const mean = (type: string) => {
      const of = submits.filter((s) => s.type === type);
      return of.reduce((sum, s) => sum + s.durationMs!, 0) / of.length;
    };
    assert.ok(Math.abs(mean("a") / 10 - 1) < 0.1 && Math.abs(mean("b") / 100 - 1) < 0.05, `means ${mean("a")} and ${mean("b")}`);
  });

  it("refuses options out of range, naming them", () => {
    assert.throws(() => [...generateTrace({ tasks: 0 })], /tasks must be a whole number ≥ 1/);
    assert.throws(() => [...generateTrace({ tenants: 2, tenantShares: [1] })], /tenant shares must be 2 numbers/);
    assert.throws(() => [...generateTrace({ rate: 0 })], /rate must be > 0/);
    assert.throws(() => parseTypes("resize=fast"), /"resize=fast" is not name=mean/);
  });
});

describe("parseTrace", () => {
  it("reads a generated trace back, and takes a recorded task's run time from its finish line", () => {
    const parsed = parseTrace(generateTraceText({ tasks: 100, seed: 1 }));
    assert.equal(parsed.header?.source, "generator");
    assert.equal(parsed.tasks.length, 100);
    const recorded = [
      '{"e":"header","format":"taskflow-trace","version":1,"source":"node","startedAt":1000}',
      '{"e":"submit","at":1010,"id":"x","type":"echo","tenant":"t","priority":2,"metadata":{"k":"v"}}',
      '{"e":"submit","at":1005,"id":"y","type":"echo","due":1500}',
      '{"e":"submit","at":1020,"id":"never","type":"echo"}',
      '{"e":"start","at":1011,"id":"x","worker":"w","attempt":1}',
      '{"e":"finish","at":1030,"id":"x","state":"succeeded","runMs":19}',
      '{"e":"finish","at":1600,"id":"y","state":"failed","runMs":7}',
      '{"e":"later-kind","at":1}',
    ].join("\n");
    const back = parseTrace(recorded);
    assert.equal(back.skipped, 1);
    assert.deepEqual(back.tasks, [
      { id: "x", at: 1010, type: "echo", tenant: "t", priority: 2, expectedDurationMs: 0, durationMs: 19, metadata: { k: "v" } },
      { id: "y", at: 1500, type: "echo", tenant: "default", priority: 0, expectedDurationMs: 0, durationMs: 7 },
    ]);
  });

  it("names the line of what is not a trace", () => {
    assert.throws(() => parseTrace('{"e":"submit","at":1,"id":"a","type":"t"}\nnot json'), /trace line 2 is not JSON/);
    assert.throws(() => parseTrace('{"e":"submit","id":"a","type":"t"}'), /trace line 1: a submit needs "at"/);
    assert.throws(() => parseTrace('{"e":"header","format":"taskflow-trace","version":9}'), /version 9 is newer/);
  });
});
