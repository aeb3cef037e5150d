import "reflect-metadata";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CORE_VERSION, Code, Reason, TaskflowError } from "@taskflow/core";
import { assertPolicyConformance, createPolicyTestContext, makePolicyTask, makePolicyWorker } from "@taskflow/core/testing";
import fifo from "@taskflow/policy-fifo";
import leastLoaded from "@taskflow/policy-least-loaded";
import priority from "@taskflow/policy-priority";
import { loadPolicy as loadWith } from "@taskflow/services";
import { BUILT_IN_POLICIES } from "./policies.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Loads as `taskflow node` does: with this installation's built-in policies. */
function loadPolicy(name: string, options: unknown, fromDir: string) {
  return loadWith(name, options, fromDir, BUILT_IN_POLICIES);
}
const thirdPartyFixture = path.join(repoRoot, "test/fixtures/policy-third-party");

/** A hand-written definition (no @taskflow/core import), as module source. */
function plainPolicySource(name: string, coreVersions: string, exportLine = "export default policy;"): string {
  return `const policy = {
  kind: "taskflow.policy",
  name: ${JSON.stringify(name)},
  coreVersions: ${JSON.stringify(coreVersions)},
  parseOptions(raw) {
    const options = { weight: 1, ...(raw ?? {}) };
    for (const key of Object.keys(options)) if (key !== "weight") throw new Error("unknown option " + key);
    return options;
  },
  create: () => ({ name: ${JSON.stringify(name)}, taskKey: (t) => t.seq, workerKey: (w) => w.running / w.slots }),
};
${exportLine}
`;
}

/** Writes a package (package.json + index.js) into `<root>/node_modules/<name>`. */
function writePackage(root: string, name: string, manifest: Record<string, unknown>, files: Record<string, string>): void {
  const dir = path.join(root, "node_modules", name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, version: "1.2.3", ...manifest }, null, 2));
  for (const [file, source] of Object.entries(files)) writeFileSync(path.join(dir, file), source);
}

async function rejection(promise: Promise<unknown>): Promise<TaskflowError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(TaskflowError.is(error), `expected a TaskflowError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected loadPolicy to reject");
}

describe("loadPolicy", () => {
  let root: string;
  /** The config file's folder: one level below the node_modules, to prove resolution walks up. */
  let configDir: string;

  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "taskflow-policy-loader-"));
    configDir = path.join(root, "config");
    mkdirSync(configDir);
    const core = path.join(repoRoot, "packages", "core");
    mkdirSync(path.join(root, "node_modules", "@taskflow"), { recursive: true });
    symlinkSync(core, path.join(root, "node_modules", "@taskflow", "core"), "dir");

    writePackage(root, "plain-policy", { type: "module", main: "index.js" }, { "index.js": plainPolicySource("plain", "^0.1.0") });
    writePackage(root, "@acme/named-export", { type: "module", exports: "./index.js" }, {
      "index.js": plainPolicySource("named", ">=0.1.0", "export { policy };"),
    });
    writePackage(root, "@acme/esm-only", { type: "module", exports: { ".": { import: "./index.js" } } }, {
      "index.js": plainPolicySource("esm-only", "0.x"),
    });
    writePackage(root, "cjs-policy", { main: "index.js" }, {
      "index.js": plainPolicySource("cjs", "^0.1.0", "module.exports = policy;"),
    });
    writePackage(root, "@acme/with-core", { type: "module", exports: "./index.js", peerDependencies: { "@taskflow/core": "^0.1.0" } }, {
      "index.js": `import { definePolicy } from "@taskflow/core";
export default definePolicy({
  name: "with-core",
  coreVersions: "^0.1.0",
  defaults: { reverse: false },
  create: ({ reverse }) => ({ name: "with-core", taskKey: (t) => (reverse ? -t.seq : t.seq), workerKey: (w) => w.running }),
});
`,
    });
    writePackage(root, "not-a-policy", { type: "module", main: "index.js" }, {
      "index.js": `export default { hello: "world" };\nexport function helper() {}\nexport const answer = 42;\n`,
    });
    writePackage(root, "factory-policy", { type: "module", main: "index.js" }, {
      "index.js": `export default function makePolicy() { return {}; }\n`,
    });
    writePackage(root, "old-policy", { type: "module", main: "index.js" }, { "index.js": plainPolicySource("old", "^9.0.0") });
    writePackage(root, "garbled-range", { type: "module", main: "index.js" }, { "index.js": plainPolicySource("garbled", "any version") });
    writePackage(root, "future-contract", { type: "module", main: "index.js" }, {
      "index.js": plainPolicySource("future", "^0.1.0", "policy.contract = 3;\nexport default policy;"),
    });
    writePackage(root, "throws-on-load", { type: "module", main: "index.js" }, { "index.js": `throw new Error("boom at import");\n` });
    writePackage(root, "missing-dep", { type: "module", main: "index.js" }, { "index.js": `import "@acme/not-installed";\n` });
    writePackage(root, "no-root-export", { type: "module", exports: { "./sub": "./index.js" } }, { "index.js": "" });

    cpSync(thirdPartyFixture, path.join(root, "node_modules", "@acme", "taskflow-policy-shortest-job"), { recursive: true });

    mkdirSync(path.join(configDir, "policies"));
    writeFileSync(path.join(configDir, "policies", "local.mjs"), plainPolicySource("local", "^0.1.0"));
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  describe("built-in short names", () => {
    it("loads fifo, priority and least-loaded from the built-in packages", async () => {
      assert.equal(await loadPolicy("fifo", undefined, configDir), fifo);
      assert.equal(await loadPolicy("priority", { agingRate: 0.5 }, configDir), priority);
      assert.equal(await loadPolicy("least-loaded", {}, configDir), leastLoaded);
    });

    it("loads a built-in also by its full package name, without it being installed in the app", async () => {
      assert.equal(await loadPolicy("@taskflow/policy-fifo", {}, configDir), fifo);
      assert.deepEqual(Object.keys(BUILT_IN_POLICIES.packages), ["fifo", "priority", "least-loaded", "fair-share"]);
    });

    it("loads fair-share by its short name, a contract version 2 policy", async () => {
      const definition = await loadPolicy("fair-share", { weights: { acme: 2 } }, configDir);
      assert.equal(definition.name, "fair-share");
      assert.equal(definition.contract, 2);
    });
  });

  describe("packages resolved from the config's folder", () => {
    it("loads a package's default export and resolves node_modules from parent folders", async () => {
      const definition = await loadPolicy("plain-policy", { weight: 2 }, configDir);
      assert.equal(definition.name, "plain");
      assert.deepEqual(definition.parseOptions({ weight: 2 }), { weight: 2 });
    });

    it("loads a named `policy` export", async () => {
      assert.equal((await loadPolicy("@acme/named-export", undefined, configDir)).name, "named");
    });

    it("loads a package that only has an import condition in its exports", async () => {
      assert.equal((await loadPolicy("@acme/esm-only", undefined, configDir)).name, "esm-only");
    });

    it("loads a CommonJS package", async () => {
      assert.equal((await loadPolicy("cjs-policy", undefined, configDir)).name, "cjs");
    });

    it("loads a package that builds its policy with definePolicy from @taskflow/core", async () => {
      const definition = await loadPolicy("@acme/with-core", { reverse: true }, configDir);
      const policy = definition.create(definition.parseOptions({ reverse: true }), createPolicyTestContext());
      assert.ok(policy.taskKey(makePolicyTask({ seq: 2 })) < policy.taskKey(makePolicyTask({ seq: 1 })));
    });

    it("loads a file path relative to the config's folder", async () => {
      assert.equal((await loadPolicy("./policies/local.mjs", undefined, configDir)).name, "local");
    });

    it("loads the third-party fixture package, which passes the conformance kit and orders shortest first", async () => {
      const definition = await loadPolicy("@acme/taskflow-policy-shortest-job", {}, configDir);
      assert.equal(definition.name, "shortest-job");
      assertPolicyConformance(definition);
      const policy = definition.create(definition.parseOptions(undefined), createPolicyTestContext());
      const short = makePolicyTask({ seq: 2, expectedDurationMs: 10 });
      const long = makePolicyTask({ seq: 1, expectedDurationMs: 60_000 });
      assert.ok(policy.taskKey(short) < policy.taskKey(long));
      assert.ok(Number.isFinite(policy.workerKey(makePolicyWorker())));
    });
  });

  describe("errors", () => {
    it("says a package is not installed, where it looked and how to install it", async () => {
      const error = await rejection(loadPolicy("@acme/taskflow-policy-missing", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_NOT_FOUND);
      assert.equal(error.code, Code.NOT_FOUND);
      assert.match(error.message, /^policy "@acme\/taskflow-policy-missing": package @acme\/taskflow-policy-missing is not installed/);
      assert.ok(error.message.includes(`looked from ${configDir} in ${path.join(configDir, "node_modules")}, ${path.join(root, "node_modules")}, `));
      assert.doesNotMatch(error.message, /\.node_libraries|\.node_modules/);
      assert.ok(error.message.includes(`run "npm install @acme/taskflow-policy-missing" in ${configDir}`));
      assert.match(error.message, /use a built-in policy: fifo, priority, least-loaded/);
    });

    it("suggests the built-in name for a near miss", async () => {
      const error = await rejection(loadPolicy("least_loaded", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_NOT_FOUND);
      assert.match(error.message, /Did you mean the built-in "least-loaded"\? Write "least-loaded" in scheduler\.policy$/);
      assert.match((await rejection(loadPolicy("policy-fifo", {}, configDir))).message, /Did you mean the built-in "fifo"/);
    });

    it("says a relative file does not exist, resolved from the config's folder", async () => {
      const error = await rejection(loadPolicy("./policies/nope.js", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_NOT_FOUND);
      assert.ok(error.message.includes(`no file ${path.join(configDir, "policies", "nope.js")}`));
    });

    it("says what a module exported when it is not a policy", async () => {
      const error = await rejection(loadPolicy("not-a-policy", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_INVALID);
      assert.equal(error.code, Code.INVALID_ARGUMENT);
      assert.match(error.message, /^policy "not-a-policy": not-a-policy \(.*index\.js\) does not export a policy/);
      assert.match(error.message, /it exports answer \(number 42\), default \(object with keys hello\), helper \(function\)/);
      assert.match(error.message, /must be the result of definePolicy\(\) from @taskflow\/core$/);
    });

    it("says a factory function must be called", async () => {
      const error = await rejection(loadPolicy("factory-policy", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_INVALID);
      assert.match(error.message, /not a function that returns it$/);
    });

    it("reports a module that throws while loading as invalid, with the cause", async () => {
      const error = await rejection(loadPolicy("throws-on-load", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_INVALID);
      assert.match(error.message, /failed to load: boom at import/);
      assert.ok(error.cause instanceof Error);
    });

    it("says a dependency of the policy is missing", async () => {
      const error = await rejection(loadPolicy("missing-dep", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_INVALID);
      assert.match(error.message, /@acme\/not-installed/);
      assert.match(error.message, /A module it imports is missing/);
    });

    it("says a package exports no entry point", async () => {
      const error = await rejection(loadPolicy("no-root-export", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_INVALID);
      assert.match(error.message, /is installed but exports no entry point/);
    });

    it("names the supported core range and this core's version when they do not match", async () => {
      const error = await rejection(loadPolicy("old-policy", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_VERSION);
      assert.equal(error.code, Code.FAILED_PRECONDITION);
      assert.equal(
        error.message,
        `policy "old-policy": old-policy@1.2.3 supports @taskflow/core ^9.0.0, but this is @taskflow/core ${CORE_VERSION}. ` +
          `Fix: install a version of old-policy made for @taskflow/core ${CORE_VERSION} (npm install old-policy@latest), ` +
          `or use a Taskflow version in ^9.0.0`,
      );
    });

    it("loads a policy without a contract version as a version 1 policy", async () => {
      const definition = await loadPolicy("plain-policy", {}, configDir);
      assert.equal(definition.contract, undefined);
    });

    it("refuses a policy written for a newer contract version, naming the policy and both versions", async () => {
      const error = await rejection(loadPolicy("future-contract", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_VERSION);
      assert.equal(error.code, Code.FAILED_PRECONDITION);
      assert.equal(
        error.message,
        'policy "future-contract": future-contract: policy "future" is written for policy contract version 3, ' +
          "but this @taskflow/core loads versions 1 and 2; upgrade Taskflow, or install a version of the policy made for contract 2",
      );
    });

    it("rejects a core range that is not a semver range", async () => {
      const error = await rejection(loadPolicy("garbled-range", {}, configDir));
      assert.equal(error.reason, Reason.POLICY_VERSION);
      assert.match(error.message, /declares coreVersions "any version", which is not a semver range/);
    });

    it("prefixes an unknown option key with the config key and the policy", async () => {
      const error = await rejection(loadPolicy("priority", { agingRat: 0.5 }, configDir));
      assert.equal(error.reason, Reason.POLICY_OPTIONS);
      assert.equal(error.code, Code.INVALID_ARGUMENT);
      assert.equal(
        error.message,
        'scheduler.policyOptions for policy "priority": unknown option "agingRat" (known options: agingRate, requeueBoost)',
      );
    });

    it("reports an option of the wrong type and a value the policy rejects", async () => {
      const wrongType = await rejection(loadPolicy("priority", { agingRate: "0.5" }, configDir));
      assert.match(wrongType.message, /^scheduler\.policyOptions for policy "priority": option "agingRate" must be a number, got string "0\.5"$/);
      const negative = await rejection(loadPolicy("priority", { agingRate: -1 }, configDir));
      assert.equal(negative.reason, Reason.POLICY_OPTIONS);
      assert.match(negative.message, /"agingRate" must be between 0 and 1000/);
      const fifoOption = await rejection(loadPolicy("fifo", { anything: 1 }, configDir));
      assert.match(fifoOption.message, /unknown option "anything" \(known options: none\)/);
    });

    it("wraps a plain error from a hand-written options parser as an options error", async () => {
      const error = await rejection(loadPolicy("plain-policy", { colour: "red" }, configDir));
      assert.equal(error.reason, Reason.POLICY_OPTIONS);
      assert.equal(error.message, 'scheduler.policyOptions for policy "plain-policy": unknown option colour');
    });
  });
});
