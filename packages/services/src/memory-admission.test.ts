import "reflect-metadata";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, Reason, TaskflowError, parseConfig, type MemorySample, type MemorySampler, type TaskflowConfigInput } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryAdmission, QUEUED_TASK_BYTES, cgroupMemoryLimit } from "./memory-admission.js";
import { RecordingLogger, settle, silent, spec, startControlPlane } from "./control-plane.test.fixture.js";

const MB = 1024 * 1024;

/** Memory that the test sets: the admission control reads it at its next sample. */
class FakeMemory implements MemorySampler {
  now: MemorySample = { heapUsed: 100 * MB, heapLimit: 1000 * MB, rss: 200 * MB, systemLimit: 10_000 * MB };
  samples = 0;
  set(change: Partial<MemorySample>): void {
    this.now = { ...this.now, ...change };
  }
  sample(): MemorySample {
    this.samples++;
    return this.now;
  }
}

function admission(memoryBudget: NonNullable<TaskflowConfigInput["control"]>["memoryBudget"] = {}, logger = silent) {
  const memory = new FakeMemory();
  const clock = new FakeClock();
  const config = parseConfig({ control: { memoryBudget } });
  const gate = new MemoryAdmission(config, memory, clock, logger);
  gate.start();
  return { memory, clock, gate, interval: config.control.memoryBudget.sampleIntervalMs };
}

function refusal(fn: () => unknown): TaskflowError {
  try {
    fn();
  } catch (err) {
    assert.ok(TaskflowError.is(err), `not a TaskflowError: ${String(err)}`);
    return err;
  }
  assert.fail("expected a refusal");
}

describe("MemoryAdmission", () => {
  describe("admit", () => {
    it("accepts below the budget and refuses from the first sample above it, naming the key", () => {
      const { memory, clock, gate, interval } = admission();
      gate.admit(10, 1000);
      memory.set({ heapUsed: 701 * MB }); // 0.7 of the 1000 MB limit is 700 MB
      gate.admit(1, 0); // not sampled yet
      clock.advance(interval);
      const err = refusal(() => gate.admit(1, 0));
      assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
      assert.equal(err.reason, Reason.MEMORY);
      assert.match(err.message, /control\.memoryBudget\.heapFraction 0\.7 of the 1000 MB heap limit/);
      assert.match(err.message, /retry later/);
      assert.equal(gate.use().refusing, true);
    });

    it("keeps refusing until both measures fall below resumeFraction of their budget (hysteresis)", () => {
      const { memory, clock, gate, interval } = admission({ resumeFraction: 0.9 });
      memory.set({ heapUsed: 720 * MB });
      clock.advance(interval);
      assert.equal(gate.use().refusing, true);
      memory.set({ heapUsed: 650 * MB }); // below the budget (700) but above 0.9 of it (630)
      clock.advance(interval * 5);
      refusal(() => gate.admit(1, 0));
      memory.set({ heapUsed: 620 * MB });
      clock.advance(interval);
      assert.equal(gate.use().refusing, false);
      gate.admit(1, 0);
    });

    it("refuses on resident memory against systemFraction, and rssBytes replaces it", () => {
      const fraction = admission({ systemFraction: 0.5 });
      fraction.memory.set({ rss: 5001 * MB });
      fraction.clock.advance(fraction.interval);
      assert.match(refusal(() => fraction.gate.admit(1, 0)).message, /resident memory .*\(control\.memoryBudget\.systemFraction 0\.5 of 10000 MB/);

      const bytes = admission({ rssBytes: 300 * MB });
      bytes.memory.set({ rss: 301 * MB });
      bytes.clock.advance(bytes.interval);
      const err = refusal(() => bytes.gate.admit(1, 0));
      assert.match(err.message, /of a 300 MB budget \(control\.memoryBudget\.rssBytes\)/);
      assert.equal(bytes.gate.use().rssBudget, 300 * MB);
    });

    it("refuses a batch whose estimate would cross the budget before any sample shows it, then takes a smaller one", () => {
      const { gate, memory } = admission({ rssBytes: 210 * MB }); // rss is 200 MB
      assert.throws(() => gate.admit(1, 11 * MB), (err: TaskflowError) => err.reason === Reason.MEMORY && /the 1 task\(s\) would cross it/.test(err.message));
      assert.equal(gate.use().refusing, false, "one batch's estimate refuses that batch only");
      gate.admit(4, 4 * MB);
      gate.admit(4, 4 * MB);
      // 200 + 8 MB + 8 tasks' overhead: 2 MB more no longer fits.
      refusal(() => gate.admit(1, 2 * MB));
      assert.equal(memory.samples, 1, "no sample per submit");
    });

    it("counts QUEUED_TASK_BYTES per task against the heap budget between samples", () => {
      const { gate } = admission({ heapBytes: 100 * MB + 10 * QUEUED_TASK_BYTES });
      gate.admit(10, 0);
      const err = refusal(() => gate.admit(1, 0));
      assert.match(err.message, /V8 heap .* \(control\.memoryBudget\.heapBytes\)/);
    });

    it("samples on the injected timer, every sampleIntervalMs, and stops", () => {
      const { memory, clock, gate } = admission({ sampleIntervalMs: 250 });
      const before = memory.samples;
      clock.advance(1000);
      assert.equal(memory.samples - before, 4);
      gate.stop();
      clock.advance(1000);
      assert.equal(memory.samples - before, 4);
    });

    it("warns at start when heapBytes is above the heap limit, naming the key", () => {
      const logger = new RecordingLogger();
      admission({ heapBytes: 2000 * MB }, logger);
      assert.match(logger.messages().join("\n"), /control\.memoryBudget\.heapBytes \(2000 MB\) is above the V8 heap limit \(1000 MB\)/);
    });
  });
});

describe("cgroupMemoryLimit", () => {
  it("reads cgroup v2 memory.max, treats max as none, and falls back to v1", () => {
    assert.equal(cgroupMemoryLimit((p) => (p.endsWith("memory.max") ? "536870912\n" : "")), 536870912);
    assert.equal(cgroupMemoryLimit((p) => (p.endsWith("memory.max") ? "max\n" : "")), undefined);
    const v1 = (p: string) => {
      if (p.endsWith("memory.max")) throw new Error("ENOENT");
      return "9223372036854771712\n";
    };
    assert.equal(cgroupMemoryLimit(v1), undefined);
    assert.equal(
      cgroupMemoryLimit(() => {
        throw new Error("ENOENT");
      }),
      undefined,
    );
  });
});

describe("parseConfig control.memoryBudget", () => {
  it("applies the defaults", () => {
    assert.deepEqual(parseConfig({}).control.memoryBudget, { heapFraction: 0.7, systemFraction: 0.8, resumeFraction: 0.9, sampleIntervalMs: 200 });
  });
  it("names the key and the fix", () => {
    assert.throws(() => parseConfig({ control: { memoryBudget: { heapFraction: 1.5 } } }), /control\.memoryBudget\.heapFraction: .*; fix: use a share of the heap limit above 0 and at most 1/);
    assert.throws(() => parseConfig({ control: { memoryBudget: { resumeFraction: 1 } } }), /control\.memoryBudget\.resumeFraction: .*; fix: use a share of the budget above 0 and below 1/);
    assert.throws(() => parseConfig({ control: { memoryBudget: { heapByte: 5 } } }), /unknown key "control\.memoryBudget\.heapByte": did you mean "heapBytes"\?/);
  });
});

describe("ProcessLifecycleManager.submit under memory pressure", () => {
  it("refuses every submit with TASKFLOW_ERR_MEMORY, accepts nothing, and takes submits again below the resume line", async () => {
    const memory = new FakeMemory();
    const cp = await startControlPlane({ memory });
    try {
      await cp.plm.submit([spec("a")], "c1");
      memory.set({ heapUsed: 800 * MB });
      await cp.advance(cp.config.control.memoryBudget.sampleIntervalMs);
      await assert.rejects(cp.plm.submit([spec("a"), spec("a")], "c1"), (err: TaskflowError) => err.code === Code.RESOURCE_EXHAUSTED && err.reason === Reason.MEMORY);
      await settle();
      assert.equal(cp.table.size, 1, "nothing of the refused batch was accepted");
      assert.equal((await cp.store.counts()).queued, 1);
      memory.set({ heapUsed: 300 * MB });
      await cp.advance(cp.config.control.memoryBudget.sampleIntervalMs);
      await cp.plm.submit([spec("a")], "c1");
      assert.equal(cp.table.size, 2);
    } finally {
      await cp.stop();
    }
  });
});
