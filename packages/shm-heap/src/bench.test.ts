/**
 * The benchmark is how the figures are measured, so it must keep running: a quick run
 * here checks its JSON carries the figures and the same-run heap-js baseline. Figures are not
 * asserted against targets (that is what the benchmark itself reports).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

describe("npm run bench", { timeout: 120_000 }, () => {
  it("prints single-thread, contended and cross-process figures beside heap-js", async () => {
    const script = fileURLToPath(new URL("./bench/bench.js", import.meta.url));
    const { stdout } = await run(process.execPath, [script, "--quick"], { timeout: 110_000 });
    const out = JSON.parse(stdout) as {
      singleThread: { sabLockedOpsPerSec: number; heapJsOpsPerSec: number; ratioVsHeapJs: number; shmLockedOpsPerSec: number };
      contended: Record<string, number>;
      targets: { ratioMet: boolean; shmProcesses2Met: boolean };
    };
    const { singleThread: s } = out;
    for (const [what, x] of Object.entries({ ...s, ...out.contended })) assert.ok(Number.isFinite(x) && x > 0, `${what}: ${x}`);
    assert.equal(s.ratioVsHeapJs, Math.round((s.sabLockedOpsPerSec / s.heapJsOpsPerSec) * 100) / 100);
    assert.deepEqual(Object.keys(out.contended).sort(), ["sabThreads2OpsPerSec", "sabThreads4OpsPerSec", "shmProcesses2OpsPerSec", "shmProcesses2SmallerShare"].sort());
    assert.equal(typeof out.targets.shmProcesses2Met, "boolean");
  });
});
