/**
 * Schedules under a fake clock, over the real control plane (PLM, memory store): firing times,
 * the tasks they make, pause and resume, a restart under each missed-firings policy, a firing
 * repeated after a crash, a refused firing, and the create's checks.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ALL_TENANTS, Code, TaskflowError, type ScheduleStore, type TaskRecord, type TaskflowConfigInput } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";
import { RecordingLogger, settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";
import { FIRING_RETRY_MS, Schedules, type ScheduleInput } from "./schedules.js";

interface Node {
  cp: TestControlPlane;
  schedules: Schedules;
  logger: RecordingLogger;
}

let nodes: Node[] = [];
afterEach(async () => {
  for (const n of nodes) {
    n.schedules.stop();
    await n.cp.stop();
  }
  nodes = [];
});

async function startNode(options: { store?: MemoryTaskStore; clock?: FakeClock; config?: TaskflowConfigInput } = {}): Promise<Node> {
  const store = options.store ?? new MemoryTaskStore();
  const logger = new RecordingLogger();
  const cp = await startControlPlane({ store, ...(options.clock && { clock: options.clock }), ...(options.config && { config: options.config }), logger });
  const schedules = new Schedules(cp.config, store as ScheduleStore, cp.plm, cp.clock, cp.clock, logger);
  await schedules.start();
  const node = { cp, schedules, logger };
  nodes.push(node);
  return node;
}

/** Stops a node (a crash, as far as schedules go: nothing more is saved) and starts another on its store and clock. */
async function restart(node: Node, downMs: number, config?: TaskflowConfigInput): Promise<Node> {
  node.schedules.stop();
  await node.cp.stop();
  nodes = nodes.filter((n) => n !== node);
  node.cp.clock.advance(downMs);
  const next = await startNode({ store: node.cp.store as MemoryTaskStore, clock: node.cp.clock, ...(config && { config }) });
  // An overdue schedule's timer is a 0 ms one, which (as in Node) fires after 1 ms.
  await next.cp.advance(1);
  return next;
}

function every(ms: number, overrides: Partial<ScheduleInput> = {}): ScheduleInput {
  return { id: "tick", template: spec("echo"), cron: "", timezone: "", intervalMs: ms, ...overrides };
}

/** The schedule's tasks, oldest first. */
async function tasksOf(node: Node, id = "tick"): Promise<TaskRecord[]> {
  const page = await node.cp.plm.list({ clientId: `schedule:${id}`, pageSize: 1000 }, ALL_TENANTS);
  return page.tasks.reverse();
}

async function firedAt(node: Node, id = "tick"): Promise<number[]> {
  return (await tasksOf(node, id)).map((t) => t.schedule!.at);
}

async function advance(node: Node, ms: number, step = 250): Promise<void> {
  for (let left = ms; left > 0; left -= step) await node.cp.advance(Math.min(step, left));
  await settle();
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof p === "function" ? p() : p), (err: unknown) => {
    assert.ok(TaskflowError.is(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("Schedules", () => {
  describe("an interval schedule", () => {
    it("fires one task per interval, each with its firing's idempotency key, client ID and schedule", async () => {
      const node = await startNode();
      const created = await node.schedules.create(every(1000), "default");
      const t0 = created.createdAt;
      assert.equal(created.nextFireAt, t0 + 1000);
      await advance(node, 3000);
      const tasks = await tasksOf(node);
      assert.deepEqual(tasks.map((t) => t.schedule!.at), [t0 + 1000, t0 + 2000, t0 + 3000]);
      for (const t of tasks) {
        assert.equal(t.idempotencyKey, `schedule:tick:${t.schedule!.at}`);
        assert.equal(t.clientId, "schedule:tick");
        assert.equal(t.type, "echo");
        assert.equal(t.tenant, "default");
      }
      const now = node.schedules.get("tick", "default");
      assert.equal(now.lastFireAt, t0 + 3000);
      assert.equal(now.lastTaskId, tasks[2]!.id);
      assert.equal(now.nextFireAt, t0 + 4000);
      assert.equal(now.lastError, "");
      // Progress is written through.
      const stored = await (node.cp.store as MemoryTaskStore).loadSchedules();
      assert.equal(stored[0]!.lastFireAt, t0 + 3000);
    });
  });

  describe("a cron schedule with a time zone", () => {
    it("fires at the zone's wall-clock time across a DST change", async () => {
      const clock = new FakeClock(Date.parse("2026-03-27T12:00:00Z"));
      const node = await startNode({ clock });
      await node.schedules.create({ id: "morning", template: spec("report"), cron: "0 9 * * *", timezone: "Europe/Paris", intervalMs: 0 }, "default");
      assert.equal(new Date(node.schedules.get("morning", "default").nextFireAt).toISOString(), "2026-03-28T08:00:00.000Z");
      await advance(node, 3 * 86_400_000, 3_600_000);
      assert.deepEqual((await firedAt(node, "morning")).map((t) => new Date(t).toISOString()), [
        "2026-03-28T08:00:00.000Z",
        "2026-03-29T07:00:00.000Z",
        "2026-03-30T07:00:00.000Z",
      ]);
    });
  });

  describe("pause and resume", () => {
    it("fires nothing while paused, and goes on from the next firing time after the resume without making up the pause", async () => {
      const node = await startNode();
      const t0 = (await node.schedules.create(every(1000), "default")).createdAt;
      await advance(node, 2000);
      const paused = await node.schedules.pause("tick", "default");
      assert.equal(paused.paused, true);
      assert.equal(paused.nextFireAt, 0);
      await advance(node, 5000);
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000]);
      const resumed = await node.schedules.resume("tick", "default");
      assert.equal(resumed.paused, false);
      assert.equal(resumed.nextFireAt, t0 + 8000);
      await advance(node, 1000);
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000, t0 + 8000]);
      // Idempotent both ways.
      assert.equal((await node.schedules.resume("tick", "default")).nextFireAt, t0 + 9000);
    });

    it("stays paused across a restart", async () => {
      let node = await startNode();
      await node.schedules.create(every(1000, { paused: true }), "default");
      node = await restart(node, 5000);
      await advance(node, 3000);
      assert.deepEqual(await firedAt(node), []);
      assert.equal(node.schedules.get("tick", "default").paused, true);
    });
  });

  describe("a restart", () => {
    // Every second; fired at t0+1000 … t0+3000, then down for 10.5 s.
    async function downtime(missed: ScheduleInput["missed"], catchUpMax?: number): Promise<{ node: Node; t0: number }> {
      let node = await startNode();
      const t0 = (await node.schedules.create(every(1000, { missed: missed!, ...(catchUpMax !== undefined && { catchUpMax }) }), "default")).createdAt;
      await advance(node, 3000);
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000, t0 + 3000]);
      node = await restart(node, 10_500);
      return { node, t0 };
    }

    it("skip: drops the firings missed while down and goes on with the next", async () => {
      const { node, t0 } = await downtime("skip");
      // Down from t0+3000 to t0+13500: t0+4000 … t0+12000 are missed (more than 1 s late), t0+13000 is on time.
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000, t0 + 3000, t0 + 13_000]);
      await advance(node, 1000);
      assert.deepEqual((await firedAt(node)).slice(-2), [t0 + 13_000, t0 + 14_000]);
      assert.match(node.logger.messages().join("\n"), /missed firings/);
    });

    it("run once: one task for the latest missed firing, then on", async () => {
      const { node, t0 } = await downtime("run-once");
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000, t0 + 3000, t0 + 12_000, t0 + 13_000]);
    });

    it("catch up: one task per missed firing up to catchUpMax, the latest ones", async () => {
      const bounded = await downtime("catch-up", 4);
      assert.deepEqual((await firedAt(bounded.node)).map((t) => t - bounded.t0), [1000, 2000, 3000, 9000, 10_000, 11_000, 12_000, 13_000]);
    });

    it("catch up within the bound: every firing of the outage, each once", async () => {
      const { node, t0 } = await downtime("catch-up", 100);
      assert.deepEqual((await firedAt(node)).map((t) => t - t0), [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000, 11_000, 12_000, 13_000]);
    });

    it("a firing whose progress was not saved before the crash fires again and finds its task: no second task", async () => {
      const node = await startNode();
      const store = node.cp.store as MemoryTaskStore;
      const t0 = (await node.schedules.create(every(1000, { missed: "catch-up" }), "default")).createdAt;
      const before = (await store.loadSchedules())[0]!;
      await advance(node, 2000);
      assert.deepEqual(await firedAt(node), [t0 + 1000, t0 + 2000]);
      // The crash came after the submits were stored, before the schedule's progress was.
      await store.saveSchedule(before);
      const again = await restart(node, 200);
      assert.deepEqual(await firedAt(again), [t0 + 1000, t0 + 2000], "one task per firing time");
      assert.equal(again.schedules.get("tick", "default").nextFireAt, t0 + 3000);
      assert.equal(again.schedules.get("tick", "default").lastTaskId, (await tasksOf(again)).at(-1)!.id);
    });
  });

  describe("a stored schedule whose timing no longer parses", () => {
    it("is kept, says why, and never fires; the node starts and the others fire", async () => {
      const store = new MemoryTaskStore();
      const first = await startNode({ store });
      const good = await first.schedules.create(every(1000, { id: "good" }), "default");
      first.schedules.stop();
      await first.cp.stop();
      nodes = [];
      // As if the platform's time zone data lost the zone.
      await store.saveSchedule({ ...good, id: "broken", cron: "0 9 * * *", timezone: "Gone/Zone", intervalMs: 0, nextFireAt: good.nextFireAt });
      const node = await startNode({ store, clock: first.cp.clock });
      await advance(node, 3000);
      assert.match(node.schedules.get("broken", "default").lastError, /^its timing no longer parses: schedule\.timezone "Gone\/Zone"|^its timing no longer parses: timezone "Gone\/Zone"/);
      assert.equal((await tasksOf(node, "broken")).length, 0);
      assert.ok((await tasksOf(node, "good")).length >= 2);
      assert.match(node.logger.messages("error").join("\n"), /no longer parses/);
    });
  });

  describe("a refused firing", () => {
    it("is tried again every second with its own firing time, and says why meanwhile", async () => {
      // One unfinished task per tenant: the second firing is refused while the first waits (no worker).
      const node = await startNode({ config: { tenants: { defaultQuota: { maxUnfinishedTasks: 1 } } } });
      const t0 = (await node.schedules.create(every(5000, { missed: "skip" }), "default")).createdAt;
      await advance(node, 10_000);
      const tasks = await tasksOf(node);
      assert.equal(tasks.length, 1);
      const refused = node.schedules.get("tick", "default");
      assert.match(refused.lastError, /maxUnfinishedTasks/);
      assert.equal(refused.nextFireAt, t0 + 10_000, "the refused firing is still the next one");
      await node.cp.plm.cancel(tasks[0]!.id, "make room", ALL_TENANTS);
      await advance(node, FIRING_RETRY_MS);
      // Accepted late, yet under its own firing time (skip drops only what the node missed while down).
      assert.deepEqual(await firedAt(node), [t0 + 5000, t0 + 10_000]);
      assert.equal(node.schedules.get("tick", "default").lastError, "");
    });
  });

  describe("create", () => {
    it("refuses bad input with INVALID_ARGUMENT naming the field", async () => {
      const node = await startNode();
      const create = (input: Partial<ScheduleInput>) => node.schedules.create({ ...every(1000), ...input }, "default");
      await rejectsWith(create({ id: "" }), Code.INVALID_ARGUMENT, /^schedule\.id is required/);
      await rejectsWith(create({ id: "no spaces" }), Code.INVALID_ARGUMENT, /^schedule\.id "no spaces" must be/);
      await rejectsWith(create({ cron: "not a cron", intervalMs: 0 }), Code.INVALID_ARGUMENT, /^schedule\.cron "not a cron" is not a cron expression/);
      await rejectsWith(create({ cron: "0 9 * * *", timezone: "Europe/Atlantis", intervalMs: 0 }), Code.INVALID_ARGUMENT, /^schedule\.timezone "Europe\/Atlantis"/);
      await rejectsWith(create({ intervalMs: 500 }), Code.INVALID_ARGUMENT, /^schedule\.interval_ms must be 1000/);
      await rejectsWith(create({ template: spec("") }), Code.INVALID_ARGUMENT, /^schedule\.template\.type is required/);
      await rejectsWith(create({ template: spec("echo", { idempotencyKey: "k" }) }), Code.INVALID_ARGUMENT, /^schedule\.template\.idempotency_key must be empty/);
      await rejectsWith(create({ template: spec("echo", { delayMs: 5 }) }), Code.INVALID_ARGUMENT, /^schedule\.template\.delay_ms/);
      await rejectsWith(create({ catchUpMax: 1001 }), Code.INVALID_ARGUMENT, /^schedule\.catch_up_max must be/);
      assert.equal(node.schedules.size, 0);
    });

    it("refuses an ID its tenant uses with ALREADY_EXISTS; another tenant may use it", async () => {
      const node = await startNode();
      await node.schedules.create(every(1000), "acme");
      await rejectsWith(node.schedules.create(every(2000), "acme"), Code.ALREADY_EXISTS, /schedule tick already exists in tenant acme/);
      await node.schedules.create(every(2000), "globex");
      assert.deepEqual(node.schedules.list(null).map((s) => `${s.tenant}/${s.id}`), ["acme/tick", "globex/tick"]);
      assert.deepEqual(node.schedules.list("acme").map((s) => s.intervalMs), [1000]);
    });

    it("answers NOT_FOUND for another tenant's schedule, on every call", async () => {
      const node = await startNode();
      await node.schedules.create(every(1000), "acme");
      await rejectsWith(() => node.schedules.get("tick", "globex"), Code.NOT_FOUND, /schedule tick not found in tenant globex/);
      await rejectsWith(node.schedules.pause("tick", "globex"), Code.NOT_FOUND, /not found/);
      await rejectsWith(node.schedules.resume("tick", "globex"), Code.NOT_FOUND, /not found/);
      await rejectsWith(node.schedules.delete("tick", "globex"), Code.NOT_FOUND, /not found/);
      assert.equal(node.schedules.get("tick", "acme").paused, false);
    });

    it("refuses more than schedules.maxSchedules with RESOURCE_EXHAUSTED naming the key", async () => {
      const node = await startNode({ config: { schedules: { maxSchedules: 1 } } });
      await node.schedules.create(every(1000, { id: "a" }), "default");
      await rejectsWith(node.schedules.create(every(1000, { id: "b" }), "default"), Code.RESOURCE_EXHAUSTED, /schedules\.maxSchedules/);
    });
  });

  describe("update", () => {
    it("replaces the timing, template and policy, keeps the ID, last firing and pause, and fires on the new timing from now", async () => {
      const clock = new FakeClock(Date.parse("2026-03-27T12:00:00Z"));
      const node = await startNode({ clock });
      await node.schedules.create(every(60_000), "default");
      await advance(node, 60_000, 10_000);
      const before = node.schedules.get("tick", "default");
      assert.equal(before.lastFireAt, Date.parse("2026-03-27T12:01:00Z"));
      const updated = await node.schedules.update(
        { id: "tick", template: spec("report", { priority: 5 }), cron: "30 13 * * *", timezone: "Europe/Paris", intervalMs: 0, missed: "skip", paused: true },
        "default",
      );
      assert.deepEqual([updated.cron, updated.timezone, updated.intervalMs, updated.missed, updated.template.type, updated.template.priority], ["30 13 * * *", "Europe/Paris", 0, "skip", "report", 5]);
      assert.equal(updated.paused, false, "update does not pause");
      assert.equal(updated.lastFireAt, before.lastFireAt);
      assert.equal(updated.createdAt, before.createdAt);
      assert.equal(new Date(updated.nextFireAt).toISOString(), "2026-03-27T12:30:00.000Z");
      await advance(node, 3_600_000, 60_000);
      assert.deepEqual((await tasksOf(node)).map((t) => [t.type, new Date(t.schedule!.at).toISOString()]), [
        ["echo", "2026-03-27T12:01:00.000Z"],
        ["report", "2026-03-27T12:30:00.000Z"],
      ]);
    });

    it("keeps a paused schedule paused, checks the input as a create does, and answers NOT_FOUND for another tenant's", async () => {
      const node = await startNode();
      await node.schedules.create(every(1000, { paused: true }), "acme");
      const updated = await node.schedules.update(every(5000), "acme");
      assert.equal(updated.paused, true);
      assert.equal(updated.nextFireAt, 0);
      assert.equal(updated.intervalMs, 5000);
      await rejectsWith(node.schedules.update(every(5000, { cron: "bad" }), "acme"), Code.INVALID_ARGUMENT, /^schedule\.cron and schedule\.interval_ms are exclusive/);
      await rejectsWith(node.schedules.update(every(500), "acme"), Code.INVALID_ARGUMENT, /^schedule\.interval_ms must be 1000/);
      await rejectsWith(node.schedules.update(every(5000), "globex"), Code.NOT_FOUND, /schedule tick not found in tenant globex/);
      assert.equal(node.schedules.get("tick", "acme").intervalMs, 5000);
      const stored = await (node.cp.store as MemoryTaskStore).loadSchedules();
      assert.equal(stored[0]!.intervalMs, 5000, "written through");
    });
  });

  describe("delete", () => {
    it("stops the firings and removes it from the store; its tasks stay", async () => {
      const node = await startNode();
      await node.schedules.create(every(1000), "default");
      await advance(node, 2000);
      const deleted = await node.schedules.delete("tick", "default");
      assert.equal(deleted.id, "tick");
      await advance(node, 3000);
      assert.equal((await tasksOf(node)).length, 2);
      assert.deepEqual(await (node.cp.store as MemoryTaskStore).loadSchedules(), []);
      await rejectsWith(() => node.schedules.get("tick", "default"), Code.NOT_FOUND, /not found/);
    });
  });
});
