// Bundles the dashboard into dist/ (one script, one stylesheet, index.html): no CDN, no runtime
// fetches outside the control node that serves it.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
rmSync(here("./dist"), { recursive: true, force: true });
mkdirSync(here("./dist"), { recursive: true });
await build({
  entryPoints: [here("./src/main.tsx")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  outfile: here("./dist/app.js"),
  logLevel: "warning",
});
copyFileSync(here("./src/index.html"), here("./dist/index.html"));
copyFileSync(here("./src/style.css"), here("./dist/style.css"));
