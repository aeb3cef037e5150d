/**
 * The schedule store conformance kit: every {@link ScheduleStore} (each task store keeps the
 * schedules too) runs it beside the task store kit. It pins down what the control node's
 * Schedules part relies on: every field round-trips, a save replaces, schedules are keyed by
 * (tenant, id), delete says whether it deleted, and a durable store keeps them across a reopen.
 *
 * @example
 * ```ts
 * scheduleStoreConformance("MyStore", { makeStore: () => new MyStore(…), reopen: (s) => new MyStore(…) });
 * ```
 */
import assert from "node:assert/strict";
import { describe as nodeDescribe, it as nodeIt } from "node:test";
import { isScheduleStore, type ScheduleRecord, type ScheduleStore } from "../schedule.js";
import type { TaskStore } from "../store.js";
import type { StoreConformanceOptions } from "./store.js";

let counter = 0;

/** A schedule with every field set to a value other than its default, for round-trip tests. */
export function makeScheduleRecord(overrides: Partial<ScheduleRecord> = {}): ScheduleRecord {
  const n = ++counter;
  return {
    id: `schedule-${n}`,
    tenant: "default",
    template: {
      type: "report.build",
      payload: new Uint8Array([0, 1, 2, 250, 255]),
      priority: -3,
      requiredLabels: { zone: "eu-west-1", "emoji": "🚀" },
      maxAttempts: 4,
      timeoutMs: 60_000,
      idempotencyKey: "",
      expectedDurationMs: 1_500,
      metadata: { team: "finance", note: "ünïcode, \"quotes\" and\nnewlines" },
    },
    cron: "*/5 9-17 * * MON-FRI",
    timezone: "Europe/Paris",
    intervalMs: 0,
    missed: "catch-up",
    catchUpMax: 7,
    paused: false,
    nextFireAt: 1_767_000_000_000 + n * 1000,
    lastFireAt: 1_766_999_700_000,
    lastTaskId: `task-of-${n}`,
    createdAt: 1_766_000_000_000,
    lastError: "quota: 'quoted' \n and a newline",
    ...overrides,
  };
}

/** Bytes as plain Uint8Array copies, so a Buffer and a Uint8Array of the same bytes compare equal. */
function normalized(s: ScheduleRecord): ScheduleRecord {
  assert.ok(s.template.payload instanceof Uint8Array, `template payload of ${s.id} is a Uint8Array`);
  return { ...s, template: { ...s.template, payload: new Uint8Array(s.template.payload) } };
}

function sorted(list: readonly ScheduleRecord[]): ScheduleRecord[] {
  return [...list].map(normalized).sort((a, b) => (a.tenant + "\n" + a.id < b.tenant + "\n" + b.id ? -1 : 1));
}

/** Options of {@link scheduleStoreConformance}: the task store kit's, and where its schedules are. */
export interface ScheduleStoreConformanceOptions<S extends TaskStore> extends StoreConformanceOptions<S> {
  /**
   * The schedule store of a task store, for a store that keeps schedules in a part of its own
   * (the SQLite store's `schedules`); it must work once the task store is open.
   * @defaultValue the task store itself, which must then implement `ScheduleStore`
   */
  schedulesOf?(store: S): ScheduleStore;
}

/** Registers the schedule store's conformance tests under `describe(name)`; the options are the task store kit's. */
export function scheduleStoreConformance<S extends TaskStore>(name: string, options: ScheduleStoreConformanceOptions<S>): void {
  const { describe, it } = options.test ?? { describe: nodeDescribe, it: nodeIt };
  const schedulesOf = (store: S): ScheduleStore => {
    if (options.schedulesOf) return options.schedulesOf(store);
    assert.ok(isScheduleStore(store), `${name} implements ScheduleStore, or the kit is given schedulesOf`);
    return store;
  };

  async function withStore(fn: (store: ScheduleStore, reopen: () => Promise<ScheduleStore>) => Promise<void>): Promise<void> {
    const first = await options.makeStore();
    let current = first;
    let isOpen = false;
    try {
      await current.open();
      isOpen = true;
      await fn(schedulesOf(current), async () => {
        assert.ok(options.reopen, "reopen is configured");
        await current.close();
        isOpen = false;
        current = await options.reopen(current);
        await current.open();
        isOpen = true;
        return schedulesOf(current);
      });
    } finally {
      try {
        if (isOpen) await current.close();
      } finally {
        await options.dispose?.(first);
      }
    }
  }
  const test = (title: string, fn: (store: ScheduleStore, reopen: () => Promise<ScheduleStore>) => Promise<void>) => it(title, () => withStore(fn));

  describe(`${name}: schedules`, () => {
    test("starts with none", async (store) => {
      assert.deepEqual(await store.loadSchedules(), []);
    });

    test("round-trips every field, of a cron and of an interval schedule", async (store) => {
      const cron = makeScheduleRecord();
      const interval = makeScheduleRecord({ cron: "", timezone: "", intervalMs: 30_000, missed: "skip", catchUpMax: 10, paused: true, nextFireAt: 0, lastFireAt: 0, lastTaskId: "", lastError: "" });
      const empty = makeScheduleRecord({ template: { ...cron.template, payload: new Uint8Array(0), requiredLabels: {} } });
      delete (empty.template as { metadata?: unknown }).metadata;
      await store.saveSchedule(cron);
      await store.saveSchedule(interval);
      await store.saveSchedule(empty);
      assert.deepEqual(sorted(await store.loadSchedules()), sorted([cron, interval, empty]));
    });

    test("a save replaces the schedule with the same tenant and ID", async (store) => {
      const first = makeScheduleRecord();
      await store.saveSchedule(first);
      const later = { ...first, paused: true, nextFireAt: 0, lastFireAt: first.nextFireAt, lastTaskId: "task-2", lastError: "" };
      await store.saveSchedule(later);
      assert.deepEqual(sorted(await store.loadSchedules()), sorted([later]));
    });

    test("keys schedules by tenant and ID: two tenants may use the same ID", async (store) => {
      const a = makeScheduleRecord({ id: "nightly", tenant: "acme" });
      const b = makeScheduleRecord({ id: "nightly", tenant: "globex", cron: "0 3 * * *" });
      await store.saveSchedule(a);
      await store.saveSchedule(b);
      assert.deepEqual(sorted(await store.loadSchedules()), sorted([a, b]));
      assert.equal(await store.deleteSchedule("acme", "nightly"), true);
      assert.deepEqual(sorted(await store.loadSchedules()), sorted([b]));
    });

    test("delete answers false for an unknown schedule and changes nothing", async (store) => {
      const a = makeScheduleRecord();
      await store.saveSchedule(a);
      assert.equal(await store.deleteSchedule("default", "no-such-schedule"), false);
      assert.equal(await store.deleteSchedule("other-tenant", a.id), false);
      assert.equal((await store.loadSchedules()).length, 1);
    });

    test("is not affected by later changes to a saved object", async (store) => {
      if (options.keepsReferences) return;
      const a = makeScheduleRecord();
      await store.saveSchedule(a);
      const expected = normalized(structuredClone(a));
      a.paused = true;
      a.lastTaskId = "changed";
      assert.deepEqual(sorted(await store.loadSchedules()), [expected]);
    });

    if (options.reopen) {
      test("keeps schedules across a close and a reopen, deletes included", async (store, reopen) => {
        const kept = makeScheduleRecord();
        const changed = makeScheduleRecord({ tenant: "acme" });
        const deleted = makeScheduleRecord();
        for (const s of [kept, changed, deleted]) await store.saveSchedule(s);
        const changedLater = { ...changed, lastFireAt: changed.nextFireAt, nextFireAt: changed.nextFireAt + 300_000, lastTaskId: "task-9" };
        await store.saveSchedule(changedLater);
        await store.deleteSchedule(deleted.tenant, deleted.id);
        const reopened = await reopen();
        assert.deepEqual(sorted(await reopened.loadSchedules()), sorted([kept, changedLater]));
      });
    }
  });
}
