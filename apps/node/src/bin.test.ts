/**
 * What the `taskflow` CLI loads (issue 13: a client command answers in < 200 ms, most of which
 * is loading modules). `--help` loads commander and the CLI's own small modules; a client
 * command adds the SDK (gRPC, protobuf) and nothing of the control plane: no DI (tsyringe,
 * reflect-metadata), services, stores, policies, monitoring, dashboard, simulator, nor the config
 * schemas (zod). Each check fails when someone brings back an eager import.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
/** What `taskflow` runs (bin/taskflow.js): bin.js bundled with the SDK by build-cli.mjs. */
const bundle = fileURLToPath(new URL("./cli.js", import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), "taskflow-bin-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// A module hook that reports every module imported (its resolved URL) on stderr. Packages
// required from CommonJS inside a package (grpc-js's own files) are not seen; their entry is.
const hook = path.join(dir, "hook.mjs");
writeFileSync(
  hook,
  `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(\`
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write("LOADED " + r.url + "\\\\n");
  return r;
}\`));
`,
);

/** The packages (npm names; workspace packages as @taskflow/<folder>) and the apps/node modules a run loaded. */
function loaded(stderr: string): Set<string> {
  const names = new Set<string>();
  for (const [, url] of stderr.matchAll(/^LOADED (\S+)$/gm)) {
    const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url!);
    const workspace = /\/packages\/([^/]+)\/dist\//.exec(url!);
    const app = /\/apps\/node\/dist\/(.+)$/.exec(url!);
    if (nm) names.add(nm[1]!);
    else if (workspace) names.add(`@taskflow/${workspace[1]}`);
    else if (app) names.add(`apps/node/${app[1]}`);
  }
  return names;
}

function run(args: string[], file = bin): { stdout: string; stderr: string; status: number | null; loaded: Set<string> } {
  const r = spawnSync(process.execPath, ["--import", pathToFileURL(hook).href, file, ...args], { encoding: "utf8", timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status, loaded: loaded(r.stderr) };
}

/** Only `taskflow node` (and `simulate`) may load these. */
const CONTROL_PLANE = [
  "tsyringe",
  "reflect-metadata",
  "zod",
  "pino",
  "prom-client",
  "better-sqlite3",
  "pg",
  "@taskflow/services",
  "@taskflow/store-sqlite",
  "@taskflow/store-postgres",
  "@taskflow/shm-heap",
  "@taskflow/policy-fifo",
  "@taskflow/policy-priority",
  "@taskflow/policy-least-loaded",
  "@taskflow/policy-fair-share",
  "@taskflow/monitoring",
  "@taskflow/dashboard",
  "@taskflow/simulator",
  "apps/node/node-command.js",
  "apps/node/control.js",
];
/** What talks to a cluster: not needed to print help or the version. */
const SDK = ["@taskflow/client", "@taskflow/proto", "@grpc/grpc-js", "@bufbuild/protobuf"];

function assertNone(r: { loaded: Set<string>; stderr: string }, names: readonly string[], what: string): void {
  const found = names.filter((n) => r.loaded.has(n));
  assert.deepEqual(found, [], `${what} loaded ${found.join(", ")}`);
}

describe("the taskflow CLI", () => {
  it("prints help and its version with commander and its own modules alone", () => {
    for (const args of [["--help"], ["--version"], ["workers", "--help"], ["schedule", "list", "--help"]]) {
      const r = run(args);
      assert.equal(r.status, 0, `taskflow ${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.loaded.has("commander"), `the hook saw commander: ${[...r.loaded].join(", ")}`);
      assertNone(r, [...CONTROL_PLANE, ...SDK], `taskflow ${args.join(" ")}`);
    }
  });

  it("runs client commands with the SDK and none of the control plane", () => {
    // 127.0.0.1:1 answers nothing: each command fails UNAVAILABLE (exit 4) once it has loaded what it uses.
    for (const args of [["workers"], ["status"], ["get", "some-id"], ["list"], ["top", "--once"], ["schedule", "list"], ["cancel", "some-id"], ["drain", "w1"]]) {
      const r = run([...args, "--address", "127.0.0.1:1"]);
      assert.equal(r.status, 4, `taskflow ${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.loaded.has("@taskflow/client") && r.loaded.has("@grpc/grpc-js"), `taskflow ${args.join(" ")} loaded the SDK: ${[...r.loaded].join(", ")}`);
      assertNone(r, CONTROL_PLANE, `taskflow ${args.join(" ")}`);
    }
  });

  it("creates a token without the DI machinery", () => {
    const r = run(["token", "create", "--role", "client", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    assertNone(r, ["tsyringe", "reflect-metadata"], "taskflow token create");
    const token = JSON.parse(r.stdout) as { token: string; entry: { hash: string } };
    assert.match(token.token, /^tfk_/);
    assert.ok(token.entry.hash.length > 0);
  });

  it("the hook does see the control plane where it is loaded (so the checks above mean something)", () => {
    const probe = path.join(dir, "probe.mjs");
    writeFileSync(probe, `await import(${JSON.stringify(pathToFileURL(fileURLToPath(new URL("./node-command.js", import.meta.url))).href)});\n`);
    const r = spawnSync(process.execPath, ["--import", pathToFileURL(hook).href, probe], { encoding: "utf8", timeout: 60_000 });
    const names = loaded(r.stderr);
    for (const name of ["reflect-metadata", "tsyringe", "zod", "@taskflow/services", "@taskflow/monitoring", "apps/node/control.js"]) {
      assert.ok(names.has(name), `node-command.js loads ${name}: ${[...names].join(", ")}`);
    }
  });

  it("runs the bundle (dist/cli.js) with the SDK inside it and the control plane outside", () => {
    const help = run(["--help"], bundle);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: taskflow/);
    const workers = run(["workers", "--address", "127.0.0.1:1"], bundle);
    assert.equal(workers.status, 4, workers.stderr);
    assert.match(workers.stderr, /UNAVAILABLE/);
    // Nothing of the SDK read from disk: it is in the bundle (and ran: the call failed UNAVAILABLE).
    assertNone(workers, [...CONTROL_PLANE, ...SDK, "commander"], "the bundle's workers");
    // token create imports the services (auth) from disk, as the node command does.
    const token = run(["token", "create", "--role", "admin", "--json"], bundle);
    assert.equal(token.status, 0, token.stderr);
    assert.ok(token.loaded.has("@taskflow/services"), [...token.loaded].join(", "));
    assert.match((JSON.parse(token.stdout) as { token: string }).token, /^tfk_/);
  });

  it("the bundle talks to a real control node (workers, status, submit, get)", async () => {
    const config = path.join(dir, "control.json");
    writeFileSync(config, JSON.stringify({ roles: ["control"], control: { host: "127.0.0.1", port: 0 }, store: { kind: "memory" }, log: { level: "warn" }, metrics: { enabled: false }, dashboard: { enabled: false } }));
    const node = spawn(process.execPath, [bin, "node", "--config", config], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let out = "";
        node.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /ready on (\S+:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        node.once("exit", (code) => reject(new Error(`node exited ${code}: ${out}`)));
      });
      const json = (args: string[]) => {
        const r = run([...args, "--address", address, "--json"], bundle);
        assert.equal(r.status, 0, `taskflow ${args.join(" ")}: ${r.stderr}`);
        return JSON.parse(r.stdout) as Record<string, unknown>;
      };
      assert.deepEqual((json(["workers"])["workerSummary"] as { total: number }).total, 0);
      assert.equal((json(["status"]) as unknown as { reachable: boolean }[])[0]!.reachable, true);
      const { id } = json(["submit", "echo", '{"n":1}']) as { id: string };
      const task = json(["get", id]);
      assert.equal(task["state"], "queued");
      assert.deepEqual(task["payload"], { n: 1 });
    } finally {
      node.kill("SIGTERM");
      if (node.exitCode === null) await new Promise((resolve) => node.once("exit", resolve));
    }
  });
});
