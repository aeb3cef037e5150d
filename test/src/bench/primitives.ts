/**
 * `npm run bench:primitives -w @taskflow/e2e`: the figures of issue 16's primitives, in one run,
 * as JSON. Each feature's section lives in its own module (delayed tasks: primitives-delayed.ts;
 * limits: primitives-limits.ts, which lists its knobs); PRIMITIVES_SECTIONS (comma-separated, default all) picks some.
 */
import { delayed } from "./primitives-delayed.js";
import { plainPath, rateLimit } from "./primitives-limits.js";

const sections: Record<string, () => Promise<Record<string, unknown>>> = { delayed, rateLimit, plainPath };
const wanted = (process.env["PRIMITIVES_SECTIONS"] ?? Object.keys(sections).join(",")).split(",").filter(Boolean);
const result: Record<string, unknown> = { machine: { cpus: (await import("node:os")).cpus().length, node: process.version } };
for (const name of wanted) {
  const run = sections[name];
  if (!run) throw new Error(`unknown section ${name}; known: ${Object.keys(sections).join(", ")}`);
  result[name] = await run();
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
