/**
 * What the `taskflow` CLI loads: client commands run without the control plane, so neither
 * tsyringe nor reflect-metadata (a global polyfill) is loaded unless the command starts a node.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), "taskflow-bin-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// A module hook that reports every import of the DI machinery on stderr.
const hook = path.join(dir, "hook.mjs");
writeFileSync(
  hook,
  `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(\`
export async function resolve(specifier, context, next) {
  if (/^(reflect-metadata|tsyringe)$/.test(specifier)) process.stderr.write("LOADED " + specifier + "\\\\n");
  return next(specifier, context);
}\`));
`,
);

function run(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, ["--import", pathToFileURL(hook).href, bin, ...args], { encoding: "utf8", timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe("the taskflow CLI", () => {
  it("loads neither tsyringe nor reflect-metadata for client commands", () => {
    for (const args of [["--version"], ["token", "create", "--role", "client", "--json"], ["get", "some-id", "--address", "127.0.0.1:1"]]) {
      const r = run(args);
      assert.doesNotMatch(r.stderr, /LOADED/, `taskflow ${args.join(" ")}: ${r.stderr}`);
      assert.notEqual(r.status, null, `taskflow ${args.join(" ")} ended`);
    }
    const token = JSON.parse(run(["token", "create", "--role", "client", "--json"]).stdout) as { token: string; entry: { hash: string } };
    assert.match(token.token, /^tfk_/);
    assert.ok(token.entry.hash.length > 0);
  });

  it("the hook does see them where the DI machinery is loaded (so the check above means something)", () => {
    const probe = path.join(dir, "probe.mjs");
    writeFileSync(probe, `import(${JSON.stringify(pathToFileURL(fileURLToPath(new URL("./control.js", import.meta.url))).href)});\n`);
    const r = spawnSync(process.execPath, ["--import", pathToFileURL(hook).href, probe], { encoding: "utf8", timeout: 60_000 });
    assert.match(r.stderr, /LOADED reflect-metadata/);
    assert.match(r.stderr, /LOADED tsyringe/);
  });
});
