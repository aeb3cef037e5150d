/** Task graphs under a fake clock: readiness, results, failure modes, cascades, flows and restarts. */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, MAX_DEPENDENCIES, TaskflowError, type TaskRecord } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { AssignmentSchema, fromBinary } from "@taskflow/proto";
import { MemoryTaskStore } from "./memory-store.js";
import { SwitchableStore, settle, spec, startControlPlane, type RecordingPort, type TestControlPlane } from "./control-plane.test.fixture.js";
import { checkFlow } from "./dependencies.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The worker finishes its assignment of `taskId`: succeeded with `result`, or failed for good with `error`. */
async function finish(port: RecordingPort, worker: string, taskId: string, outcome: { result?: string; error?: string }): Promise<void> {
  const a = port.assigned.find((x) => x.taskId === taskId);
  assert.ok(a, `${taskId} was assigned to ${worker}`);
  const ok = outcome.error === undefined;
  cp!.lifecycle.completed(worker, [{ taskId, epoch: a.epoch, ok, result: ok ? bytes(outcome.result ?? "") : undefined, error: outcome.error ?? "", unrecoverable: !ok }]);
  await settle();
}

function assignedIds(port: RecordingPort): string[] {
  return port.assigned.map((a) => a.taskId);
}

/** The dependency outcomes an assignment carried, as the worker decodes them. */
function dependencyResults(port: RecordingPort, taskId: string) {
  const a = port.assigned.find((x) => x.taskId === taskId);
  assert.ok(a?.dependencyResults, `${taskId} carried dependency results`);
  return fromBinary(AssignmentSchema, a.dependencyResults).dependencyResults.map((r) => ({ taskId: r.taskId, state: r.state, result: text(r.result), error: r.error, omitted: r.resultOmitted }));
}

/** A store whose inserts wait while it is held. */
class GatedStore extends SwitchableStore {
  held = 0;
  private gate: Promise<void> | undefined;
  private open_: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((resolve) => (this.open_ = resolve));
  }
  release(): void {
    this.gate = undefined;
    this.open_?.();
  }
  override async insert(records: readonly TaskRecord[]): Promise<void> {
    if (this.gate) {
      this.held++;
      await this.gate;
    }
    return super.insert(records);
  }
}

async function state(id: string): Promise<TaskRecord> {
  return cp!.plm.get(id, ALL_TENANTS);
}

async function rejectsInvalid(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TaskflowError, String(err));
    assert.equal(err.code, Code.INVALID_ARGUMENT, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("Dependencies", () => {
  describe("a task with dependsOn", () => {
    it("waits, QUEUED with a reason, until every dependency succeeded, then runs with their results", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a, b] } = await cp.plm.submit([spec("step"), spec("step")], "c1");
      const { ids: [join] } = await cp.plm.submit([spec("join", { dependsOn: [a!, b!] })], "c1");
      await settle();
      assert.deepEqual(assignedIds(w1), [a, b]);
      const waiting = await state(join!);
      assert.equal(waiting.state, "queued");
      assert.equal(waiting.waitingReason, `waiting for 2 of 2 dependencies: ${a}, ${b}`);
      assert.deepEqual(cp.plm.graphOf(join!).waitingOn, [a, b]);
      assert.deepEqual(cp.plm.graphOf(a!), { waitingOn: [], dependents: [join], dependentCount: 1 });

      await finish(w1, "w1", b!, { result: "B" });
      assert.equal((await state(join!)).waitingReason, `waiting for 1 of 2 dependencies: ${a}`);
      assert.deepEqual(assignedIds(w1), [a, b]);
      await finish(w1, "w1", a!, { result: "A" });
      assert.deepEqual(assignedIds(w1), [a, b, join]);
      assert.deepEqual(dependencyResults(w1, join!), [
        { taskId: a, state: 4, result: "A", error: "", omitted: false },
        { taskId: b, state: 4, result: "B", error: "", omitted: false },
      ]);
      assert.equal(cp.graph.size, 0, "nothing waits any more");
      assert.deepEqual(cp.plm.graphOf(a!).dependents, []);
    });

    it("counts a dependency that already succeeded at submit time at once", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      await settle();
      await finish(w1, "w1", a!, { result: "done" });
      const { ids: [join] } = await cp.plm.submit([spec("join", { dependsOn: [a!] })], "c1");
      await settle();
      assert.deepEqual(assignedIds(w1), [a, join]);
      assert.deepEqual(dependencyResults(w1, join!), [{ taskId: a, state: 4, result: "done", error: "", omitted: false }]);
    });

    it("leaves results out past control.maxPayloadBytes together, flagged, so the assignment stays within the limit", async () => {
      cp = await startControlPlane({ config: { control: { maxPayloadBytes: 10 } } });
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a, b] } = await cp.plm.submit([spec("step"), spec("step")], "c1");
      const { ids: [join] } = await cp.plm.submit([spec("join", { dependsOn: [a!, b!] })], "c1");
      await settle();
      await finish(w1, "w1", a!, { result: "123456" });
      await finish(w1, "w1", b!, { result: "7890123" });
      assert.deepEqual(
        dependencyResults(w1, join!).map((r) => [r.result, r.omitted]),
        [["123456", false], ["", true]],
      );
    });
  });

  describe("when a dependency fails or is cancelled", () => {
    it("cancels dependents (the default), naming the dependency, and their own dependents down the graph", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      const { ids: [b] } = await cp.plm.submit([spec("step", { dependsOn: [a!] })], "c1");
      const { ids: [c] } = await cp.plm.submit([spec("step", { dependsOn: [b!] })], "c1");
      await settle();
      await finish(w1, "w1", a!, { error: "disk full" });
      const tb = await state(b!);
      assert.equal(tb.state, "cancelled");
      assert.equal(tb.error, `dependency ${a} failed: disk full`);
      const tc = await state(c!);
      assert.equal(tc.state, "cancelled");
      assert.equal(tc.error, `dependency ${b} was cancelled: dependency ${a} failed: disk full`);
      assert.deepEqual(assignedIds(w1), [a]);
      assert.equal(cp.graph.size, 0);
    });

    it("runs a dependent with onDependencyFailure \"run\" once every dependency finished, with each outcome", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a, b] } = await cp.plm.submit([spec("step"), spec("step")], "c1");
      const { ids: [join] } = await cp.plm.submit([spec("join", { dependsOn: [a!, b!], onDependencyFailure: "run" })], "c1");
      await settle();
      await finish(w1, "w1", a!, { error: "boom" });
      assert.equal((await state(join!)).state, "queued");
      assert.deepEqual(assignedIds(w1), [a, b]);
      await finish(w1, "w1", b!, { result: "ok" });
      assert.deepEqual(assignedIds(w1), [a, b, join]);
      assert.deepEqual(dependencyResults(w1, join!), [
        { taskId: a, state: 5, result: "", error: "boom", omitted: false },
        { taskId: b, state: 4, result: "ok", error: "", omitted: false },
      ]);
    });

    it("cancels at submit a dependent whose dependency already failed", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      await settle();
      await finish(w1, "w1", a!, { error: "nope" });
      const { ids: [b] } = await cp.plm.submit([spec("step", { dependsOn: [a!] })], "c1");
      await settle();
      assert.equal((await state(b!)).state, "cancelled");
      assert.match((await state(b!)).error, new RegExp(`dependency ${a} failed: nope`));
    });

    it("cascades a cancel by request of a waiting task to its dependents", async () => {
      cp = await startControlPlane();
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      const { ids: [b] } = await cp.plm.submit([spec("step", { dependsOn: [a!] })], "c1");
      const { ids: [c] } = await cp.plm.submit([spec("step", { dependsOn: [b!] })], "c1");
      await cp.plm.cancel(b!, "not needed", ALL_TENANTS);
      assert.equal((await state(c!)).state, "cancelled");
      assert.equal((await state(c!)).error, `dependency ${b} was cancelled: not needed`);
      assert.equal((await state(a!)).state, "queued", "a dependency is not touched");
      assert.deepEqual(cp.plm.graphOf(a!).dependents, []);
    });
  });

  describe("while the submit is stored", () => {
    it("does not miss a dependency that finishes while the dependent's insert is in flight", async () => {
      const store = new GatedStore();
      cp = await startControlPlane({ store });
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      await settle();
      store.hold();
      const submitted = cp.plm.submit([spec("join", { dependsOn: [a!] })], "c1");
      await settle();
      assert.equal(store.held, 1, "the dependent's insert waits");
      await finish(w1, "w1", a!, { result: "early" });
      store.release();
      const { ids: [join] } = await submitted;
      await settle();
      assert.deepEqual(assignedIds(w1), [a, join]);
      assert.deepEqual(dependencyResults(w1, join!).map((r) => r.result), ["early"]);
    });

    it("reads the outcome of a dependency that finished a moment ago, before its final state was written", async () => {
      cp = await startControlPlane({ store: new SwitchableStore(new MemoryTaskStore()) });
      const w1 = cp.join("w1", ["step", "join"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      await settle();
      const epoch = w1.assigned[0]!.epoch;
      // Finished, out of the table, its final state still in the write batch: no settle in between.
      cp.lifecycle.completed("w1", [{ taskId: a!, epoch, ok: true, result: bytes("fresh"), error: "" }]);
      assert.equal((await cp.store.get(a!))?.state, "assigned", "the store still has the old state");
      const { ids: [join] } = await cp.plm.submit([spec("join", { dependsOn: [a!] })], "c1");
      await settle();
      assert.deepEqual(dependencyResults(w1, join!).map((r) => [r.taskId, r.state, r.result]), [[a, 4, "fresh"]]);
    });
  });

  describe("a dead-letter retry", () => {
    it("of a dependency and its cancelled dependent together: the dependent waits for it again and gets its result", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      const { ids: [b] } = await cp.plm.submit([spec("step", { dependsOn: [a!] })], "c1");
      await settle();
      await finish(w1, "w1", a!, { error: "flaky" });
      assert.equal((await state(b!)).state, "cancelled");

      await cp.plm.retry([b!, a!], {}, ALL_TENANTS);
      await settle();
      assert.equal((await state(b!)).waitingReason, `waiting for 1 of 1 dependencies: ${a}`);
      const retriedA = w1.assigned.filter((x) => x.taskId === a).at(-1)!;
      cp.lifecycle.completed("w1", [{ taskId: a!, epoch: retriedA.epoch, ok: true, result: bytes("second time"), error: "" }]);
      await settle();
      assert.equal(w1.assigned.at(-1)!.taskId, b);
      assert.deepEqual(dependencyResults(w1, b!).map((r) => r.result), ["second time"]);
    });

    it("of a dependent alone while its dependency is still failed: cancelled again, naming it", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step"]);
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      const { ids: [b] } = await cp.plm.submit([spec("step", { dependsOn: [a!] })], "c1");
      await settle();
      await finish(w1, "w1", a!, { error: "still broken" });
      await cp.plm.retry([b!], {}, ALL_TENANTS);
      await settle();
      const again = await state(b!);
      assert.equal(again.state, "cancelled");
      assert.equal(again.error, `dependency ${a} failed: still broken`);
      assert.deepEqual(assignedIds(w1), [a], "it never ran");
    });
  });

  describe("submit checks", () => {
    it("refuses an unknown ID, and another tenant's as if unknown, naming the field and the ID; nothing is stored", async () => {
      cp = await startControlPlane();
      const { ids: [other] } = await cp.plm.submit([spec("step")], "c1", "", "tenant-b");
      await rejectsInvalid(cp.plm.submit([spec("step", { dependsOn: ["no-such-task"] })], "c1"), /^spec\.depends_on\[0\] names no task of this tenant: no-such-task/);
      await rejectsInvalid(cp.plm.submit([spec("step"), spec("step", { dependsOn: [other!] })], "c1", "", "tenant-a"), new RegExp(`^specs\\[1\\]\\.depends_on\\[0\\] names no task of this tenant: ${other}`));
      assert.equal((await cp.store.list({ states: [], type: "", clientId: "", pageSize: 50, pageToken: "" })).tasks.length, 1);
    });

    it("refuses repeats, empty IDs, more than MAX_DEPENDENCIES and an unknown failure mode", async () => {
      cp = await startControlPlane();
      const { ids: [a] } = await cp.plm.submit([spec("step")], "c1");
      await rejectsInvalid(cp.plm.submit([spec("step", { dependsOn: [a!, a!] })], "c1"), /spec\.depends_on\[1\] repeats/);
      await rejectsInvalid(cp.plm.submit([spec("step", { dependsOn: [""] })], "c1"), /spec\.depends_on\[0\] must be a task ID/);
      const many = Array.from({ length: MAX_DEPENDENCIES + 1 }, (_, i) => `t${i}`);
      await rejectsInvalid(cp.plm.submit([spec("step", { dependsOn: many })], "c1"), /spec\.depends_on has 1001 IDs; at most 1000/);
      await rejectsInvalid(cp.plm.submit([spec("step", { dependsOn: [a!], onDependencyFailure: "sometimes" as "run" })], "c1"), /spec\.on_dependency_failure/);
    });
  });

  describe("flows", () => {
    it("submits a diamond all at once: the join waits for both branches, which wait for the root", async () => {
      cp = await startControlPlane();
      const w1 = cp.join("w1", ["step"]);
      const { ids } = await cp.plm.submitFlow(
        [
          { spec: spec("step"), dependsOnNodes: [3] },
          { spec: spec("step"), dependsOnNodes: [3] },
          { spec: spec("step"), dependsOnNodes: [0, 1] },
          { spec: spec("step"), dependsOnNodes: [] },
        ],
        "c1",
      );
      const [left, right, join, root] = ids;
      await settle();
      assert.deepEqual(assignedIds(w1), [root]);
      assert.deepEqual((await state(join!)).dependsOn, [left, right]);
      await finish(w1, "w1", root!, { result: "r" });
      assert.deepEqual(assignedIds(w1).sort(), [root, left, right].sort());
      await finish(w1, "w1", left!, { result: "l" });
      await finish(w1, "w1", right!, { result: "r" });
      assert.deepEqual(assignedIds(w1).at(-1), join);
    });

    it("refuses a cycle, naming its nodes, and stores nothing", async () => {
      cp = await startControlPlane();
      await rejectsInvalid(
        cp.plm.submitFlow([{ spec: spec("step"), dependsOnNodes: [2] }, { spec: spec("step"), dependsOnNodes: [0] }, { spec: spec("step"), dependsOnNodes: [1] }], "c1"),
        /forms a cycle: (\d) → (\d) → (\d) → \1/,
      );
      assert.equal((await cp.store.list({ states: [], type: "", clientId: "", pageSize: 50, pageToken: "" })).tasks.length, 0);
      assert.equal(cp.graph.size, 0);
    });

    it("refuses an index out of range and a node waiting for itself", () => {
      assert.throws(() => checkFlow([[1]]), /nodes\[0\]\.depends_on_nodes\[0\] is 1, not a node of this flow \(0 … 0\)/);
      assert.throws(() => checkFlow([[], [1]]), /nodes\[1\]\.depends_on_nodes\[0\] names the node itself/);
      assert.doesNotThrow(() => checkFlow([[1, 2], [2], []]));
    });
  });

  describe("after a restart", () => {
    it("rebuilds who waits on whom: a graph half done finishes, with the results of dependencies finished before", async () => {
      const store = new SwitchableStore(new MemoryTaskStore());
      const clock = new FakeClock();
      cp = await startControlPlane({ store, clock });
      let w1 = cp.join("w1", ["step"]);
      const { ids: [a, b, c] } = await cp.plm.submitFlow(
        [
          { spec: spec("step"), dependsOnNodes: [] },
          { spec: spec("step"), dependsOnNodes: [] },
          { spec: spec("step"), dependsOnNodes: [0, 1] },
        ],
        "c1",
      );
      await settle();
      await finish(w1, "w1", a!, { result: "A" });
      await cp.stop();

      cp = await startControlPlane({ store, clock });
      assert.equal(cp.graph.size, 1);
      assert.equal((await state(c!)).waitingReason, `waiting for 1 of 2 dependencies: ${b}`);
      w1 = cp.join("w1", ["step"]);
      await cp.advance(cp.config.liveness.heartbeatTimeoutMs * 2, { heartbeats: true });
      assert.deepEqual(assignedIds(w1), [b], "b runs again after the adoption grace; c still waits");
      await finish(w1, "w1", b!, { result: "B" });
      assert.deepEqual(assignedIds(w1), [b, c]);
      assert.deepEqual(dependencyResults(w1, c!).map((r) => r.result), ["A", "B"]);
    });
  });
});
