// Bundles the CLI's client side into dist/cli.js, the file `taskflow` runs (bin/taskflow.js).
// Why: on Node 20 most of a client command's start-up is the ES module loader resolving, reading
// and linking ~110 files (the SDK, grpc-js, protobuf-es); one file cuts `taskflow workers` from
// ~260 to ~160 ms of CPU (ADR 0031, issue 13). Node 20 has no compile cache for ES modules
// (module.enableCompileCache is Node 22), and v8-compile-cache hooks CommonJS only.
// The control plane stays out: `taskflow node`, `simulate` and `token create` import it from
// dist/ and node_modules as before (the externals below), so the node runs the same files
// tests run. dist/bin.js stays the unbundled entry the tests and the harness use.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
/** Imports that lead to the control plane: loaded from disk when a command needs them. */
const external = /^(\.\/node-command\.js|reflect-metadata|tsyringe|@grpc\/proto-loader|@taskflow\/(services|simulator|store-[^/]+|policy-[^/]+|monitoring|dashboard|shm-heap))(\/.*)?$/;
await build({
  entryPoints: [here("./dist/bin.js")],
  outfile: here("./dist/cli.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // grpc-js is CommonJS: its require() of Node's modules needs a require in an ES module.
  banner: { js: 'import { createRequire as __taskflowRequire } from "node:module"; const require = __taskflowRequire(import.meta.url);' },
  plugins: [
    {
      name: "control-plane-external",
      setup(b) {
        b.onResolve({ filter: external }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
  sourcemap: true,
  logLevel: "warning",
});
