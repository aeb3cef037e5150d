// Builds the addon with the node-gyp that ships inside npm, so a fresh clone needs no global
// node-gyp. When the running Node has its headers installed next to it (distro packages put
// them in /usr/include/node) we point node-gyp there: that works offline, where the default
// would try to download headers. npm's own `nodedir` setting, when present, wins.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const prefix = dirname(dirname(process.execPath));
const candidates = [
  process.env.npm_config_node_gyp,
  join(prefix, "lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
  join(dirname(process.execPath), "node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
].filter((p) => p !== undefined && existsSync(p));
const gyp = candidates[0];

const extra = [];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, "include/node/node_api.h"))) extra.push(`--nodedir=${prefix}`);

function run(args) {
  const cmd = gyp === undefined ? "node-gyp" : process.execPath;
  const argv = gyp === undefined ? args : [gyp, ...args];
  const r = spawnSync(cmd, [...argv, ...extra], { cwd: packageDir, stdio: "inherit" });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// configure once, then let make rebuild only what changed.
if (!existsSync(join(packageDir, "build/config.gypi")) || process.argv.includes("--rebuild")) run(["configure"]);
run(["build"]);
