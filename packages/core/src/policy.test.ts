import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { Reason, TaskflowError } from "./errors.js";
import { POLICY_CONTRACT_VERSION, contractProblem, definePolicy, isPolicyDefinition } from "./policy.js";
import { frozenRecord, readonlySet } from "./policy-views.js";

function isOptionsError(pattern: RegExp) {
  return (e: unknown) => TaskflowError.is(e) && e.reason === Reason.POLICY_OPTIONS && pattern.test(e.message);
}

const create = () => ({ name: "p", taskKey: () => 0, workerKey: () => 0 });

describe("definePolicy", () => {
  describe("parseOptions", () => {
    const def = definePolicy({ name: "p", coreVersions: "^0.1.0", defaults: { weights: {} as Record<string, number>, tags: [] as string[], rate: 1 }, create });

    it("refuses an array or null for an object option, and an object for an array option", () => {
      assert.throws(() => def.parseOptions({ weights: [] }), isOptionsError(/option "weights" must be an object, got an array/));
      assert.throws(() => def.parseOptions({ weights: null }), isOptionsError(/option "weights" must be an object, got null/));
      assert.throws(() => def.parseOptions({ tags: {} }), isOptionsError(/option "tags" must be an array, got object/));
    });

    it("returns frozen options, with defaults copied rather than shared", () => {
      const a = def.parseOptions({ weights: { a: 2 } });
      const b = def.parseOptions(undefined);
      assert.deepEqual(a, { weights: { a: 2 }, tags: [], rate: 1 });
      assert.ok(Object.isFrozen(a) && Object.isFrozen(a.weights) && Object.isFrozen(b.tags));
      assert.notEqual(b.weights, def.parseOptions(undefined).weights);
    });

    it("applies a zod schema and names the path of its first issue", () => {
      const schema = z.object({ weights: z.record(z.string(), z.number().positive()), tags: z.array(z.string()), rate: z.number().max(10) }).strict();
      const withSchema = definePolicy({ name: "zoned", coreVersions: "^0.1.0", defaults: { weights: {} as Record<string, number>, tags: [] as string[], rate: 1 }, schema, create });
      assert.deepEqual(withSchema.parseOptions({ weights: { a: 3 } }), { weights: { a: 3 }, tags: [], rate: 1 });
      assert.throws(() => withSchema.parseOptions({ weights: { a: -1 } }), isOptionsError(/policy "zoned": option "weights\.a": /));
      assert.throws(() => withSchema.parseOptions({ rate: 11 }), isOptionsError(/option "rate": /));
    });
  });

  it("declares this core's contract version, and a definition without one is version 1", () => {
    const def = definePolicy({ name: "p", coreVersions: "^0.1.0", defaults: {}, create });
    assert.equal(def.contract, POLICY_CONTRACT_VERSION);
    assert.ok(isPolicyDefinition({ ...def, contract: undefined }));
    assert.equal(contractProblem({ name: "old", contract: undefined }), undefined);
    assert.match(contractProblem({ name: "next", contract: 3 }) ?? "", /policy "next" is written for policy contract version 3, but this @taskflow\/core loads versions 1 and 2; upgrade Taskflow/);
  });
});

describe("read-only views", () => {
  it("readonlySet has no mutators and does not share the source set", () => {
    const source = new Set(["a", "b"]);
    const view = readonlySet(source);
    assert.equal(view.size, 2);
    assert.ok(view.has("a"));
    assert.deepEqual([...view], ["a", "b"]);
    assert.throws(() => (view as Set<string>).delete("a"), TypeError);
    assert.throws(() => (view as Set<string>).add("c"), TypeError);
    source.delete("a");
    assert.ok(view.has("a"), "a copy, not a window on the node's set");
    assert.equal(JSON.stringify(view), '["a","b"]');
  });

  it("frozenRecord copies and freezes, and shares one frozen empty map", () => {
    const source = { zone: "x" };
    const view = frozenRecord(source);
    assert.ok(Object.isFrozen(view));
    assert.notEqual(view, source);
    assert.equal(frozenRecord({}), frozenRecord(undefined));
  });
});
