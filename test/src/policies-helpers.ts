/**
 * Helpers for the scheduling-policy end-to-end tests: a handlers module that records the order
 * in which a worker process starts tasks, timestamps, throwaway packages, and a temporary app
 * folder with a policy package installed from a tarball made by `npm pack`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { repoRoot } from "./harness.js";

const run = promisify(execFile);

/**
 * A worker handlers module (plain ESM, written into a node's temp folder). `step` counts the tasks
 * this worker process has started, optionally sleeps `ms`, and returns its start number, start
 * time and worker ID: with one process and one slot, `n` is the order the scheduler chose.
 */
export const RECORDING_HANDLERS = `
let started = 0;
const workerId = JSON.parse(process.env.TASKFLOW_WORKER ?? "{}").workerId ?? "";
const pause = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
export default {
  step: async (payload, { signal }) => {
    const n = ++started;
    const at = Date.now();
    const ms = Number(payload?.ms ?? 0);
    if (ms > 0) await pause(ms, signal);
    return { n, at, workerId, label: payload?.label ?? "" };
  },
  echo: (payload) => payload,
};
`;

/** What `step` returns. */
export interface Step {
  n: number;
  at: number;
  workerId: string;
  label: string;
}

/** A protobuf Timestamp in epoch milliseconds (0 when unset). */
export function ms(ts: Timestamp | undefined): number {
  return ts ? timestampMs(ts) : 0;
}

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis));

/** Writes a package (package.json + files) into `<dir>/node_modules/<name>`. */
export function writePackage(dir: string, name: string, files: Record<string, string>, manifest: Record<string, unknown> = {}): string {
  const root = path.join(dir, "node_modules", ...name.split("/"));
  mkdirSync(root, { recursive: true });
  const pkg = { name, version: "1.0.0", type: "module", exports: { ".": "./index.js" }, ...manifest };
  writeFileSync(path.join(root, "package.json"), JSON.stringify(pkg, null, 2));
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(root, file), text);
  return root;
}

/** The folder of a dependency of @taskflow/core as the workspace installed it. */
function installedFolder(name: string): string {
  const require = createRequire(path.join(repoRoot, "packages/core/package.json"));
  return path.dirname(require.resolve(`${name}/package.json`));
}

/**
 * Makes `appDir` an npm app with @taskflow/core and the third-party policy fixture installed from
 * tarballs made by `npm pack`, the way a user would install them from a registry. Offline and
 * independent of npm's cache: core's own dependencies (zod, semver, which have none of their
 * own) are packed from the workspace's node_modules too, so the install needs no registry and
 * no earlier install's cache (a fresh machine's cache holds no full copy of them).
 * @returns the installed fixture's package name.
 */
export async function installThirdPartyPolicy(appDir: string): Promise<string> {
  const packs = path.join(appDir, ".packs");
  mkdirSync(packs, { recursive: true });
  const npmEnv = { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" };
  const sources = [path.join(repoRoot, "packages/core"), path.join(repoRoot, "test/fixtures/policy-third-party"), installedFolder("zod"), installedFolder("semver")];
  const packed = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", packs, ...sources], { cwd: packs, env: npmEnv });
  const [core, fixture, zod, semver] = JSON.parse(packed.stdout) as { name: string; filename: string }[];
  if (!core || !fixture || !zod || !semver || core.name !== "@taskflow/core") throw new Error(`unexpected npm pack output: ${packed.stdout}`);
  writeFileSync(
    path.join(appDir, "package.json"),
    JSON.stringify(
      {
        name: "policy-e2e-app",
        private: true,
        type: "module",
        dependencies: {
          "@taskflow/core": `file:.packs/${core.filename}`,
          [fixture.name]: `file:.packs/${fixture.filename}`,
          zod: `file:.packs/${zod.filename}`,
          semver: `file:.packs/${semver.filename}`,
        },
      },
      null,
      2,
    ),
  );
  await run("npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: appDir, env: npmEnv });
  return fixture.name;
}
