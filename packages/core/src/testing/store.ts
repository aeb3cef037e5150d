/**
 * The store conformance kit: every {@link TaskStore} implementation runs it first. It registers
 * `node:test` tests (or those of any runner with the same `describe`/`it` shape) that pin down
 * what the control node relies on: round-trips of every field, the order and paging of `list`,
 * what `loadUnfinished`, `maxSeq`, `purgeFinished` and `counts` return, and, for durable
 * stores, that everything is still there after a close and a reopen.
 *
 * @example
 * ```ts
 * storeConformance("MyStore", {
 *   makeStore: () => new MyStore({ path: freshPath() }),
 *   reopen: (closed) => new MyStore({ path: closed.path }),
 *   dispose: (store) => removeFolderOf(store.path),
 * });
 * ```
 */
import assert from "node:assert/strict";
import { describe as nodeDescribe, it as nodeIt } from "node:test";
import { TASK_STATES, isFinal, type TaskRecord, type TaskState } from "../model.js";
import { Code, TaskflowError } from "../errors.js";
import { isPlainQueuedRecord, isWellFormedPageToken, type TaskQuery, type TaskStore } from "../store.js";
import { SPEC_ATTRIBUTE_KEYS } from "../spec-attributes.js";
import { allPages, assertSameRecord, copy, fullRecord, ids, makeTaskRecord } from "./store-records.js";

export { makeTaskRecord } from "./store-records.js";

/** The two functions of a test runner the kit uses; `node:test` has them, so do vitest and mocha. */
export interface ConformanceTestApi {
  describe(name: string, fn: () => void): unknown;
  it(name: string, fn: () => Promise<void>): unknown;
}

/** How the kit gets and disposes of stores. `S` is the implementation's own type. */
export interface StoreConformanceOptions<S extends TaskStore = TaskStore> {
  /** A new, empty store, not opened yet. Called once per test; the kit opens and closes it. */
  makeStore(): S | Promise<S>;
  /**
   * For durable stores: a new, not yet opened store over the data of `closed`, which the kit has
   * just closed. When given, the durability tests run and `durable` must be true.
   */
  reopen?(closed: S): S | Promise<S>;
  /** Runs after each test, once its stores are closed, for example to remove a temp folder. */
  dispose?(store: S): void | Promise<void>;
  /**
   * True for a store that keeps the caller's record objects instead of copies (the in-memory
   * store does, so that an update costs nothing); skips the tests that a store is unaffected by
   * later changes to the objects it was given or returned.
   * @defaultValue `false`
   */
  keepsReferences?: boolean;
  /**
   * The test functions to register with.
   * @defaultValue `describe` and `it` from `node:test`
   */
  test?: ConformanceTestApi;
}

/** Registers the conformance tests for one store implementation under `describe(name)`. */
export function storeConformance<S extends TaskStore>(name: string, options: StoreConformanceOptions<S>): void {
  const { describe, it } = options.test ?? { describe: nodeDescribe, it: nodeIt };

  interface Context {
    store: S;
    /** Closes the current store, opens `reopen(current)` and makes it the current store. */
    reopen(): Promise<S>;
  }

  /** Each test gets its own store, closed and disposed of whatever happens. */
  async function withStore(fn: (ctx: Context) => Promise<void>): Promise<void> {
    const first = await options.makeStore();
    let current = first;
    let isOpen = false;
    try {
      await current.open();
      isOpen = true;
      const ctx: Context = {
        get store() {
          return current;
        },
        async reopen() {
          assert.ok(options.reopen, "reopen is configured");
          await current.close();
          isOpen = false;
          current = await options.reopen(current);
          await current.open();
          isOpen = true;
          return current;
        },
      };
      await fn(ctx);
    } finally {
      try {
        if (isOpen) await current.close();
      } finally {
        await options.dispose?.(first);
      }
    }
  }

  const test = (title: string, fn: (ctx: Context) => Promise<void>) => it(title, () => withStore(fn));

  describe(name, () => {
    describe("identity", () => {
      test("has a kind and says whether it is durable", async ({ store }) => {
        assert.equal(typeof store.kind, "string");
        assert.ok(store.kind.length > 0);
        assert.equal(typeof store.durable, "boolean");
        if (options.reopen) assert.equal(store.durable, true, "a store with a reopen hook claims durability");
      });
    });

    describe("open", () => {
      test("starts empty", async ({ store }) => {
        assert.equal(await store.maxSeq(), 0);
        assert.deepEqual(await store.loadUnfinished(), []);
        assert.deepEqual(await store.list({}), { tasks: [], nextPageToken: "", totalSize: 0 });
        const counts = await store.counts();
        for (const state of TASK_STATES) assert.equal(counts[state], 0, state);
      });
    });

    describe("insert and get", () => {
      test("round-trips every field", async ({ store }) => {
        const full = fullRecord();
        const minimal = makeTaskRecord({ payload: new Uint8Array(0) });
        const expected = [copy(full), copy(minimal)];
        await store.insert([full, minimal]);
        assertSameRecord(await store.get(full.id), expected[0]!);
        assertSameRecord(await store.get(minimal.id), expected[1]!);
      });

      test("keeps an empty result apart from no result", async ({ store }) => {
        const empty = makeTaskRecord({ state: "succeeded", result: new Uint8Array(0), finishedAt: 5 });
        const none = makeTaskRecord({ state: "succeeded", result: undefined, finishedAt: 5 });
        await store.insert([empty, none]);
        const gotEmpty = await store.get(empty.id);
        assert.ok(gotEmpty?.result instanceof Uint8Array);
        assert.equal(gotEmpty.result.byteLength, 0);
        assert.equal((await store.get(none.id))?.result, undefined);
      });

      test("returns undefined for an unknown id", async ({ store }) => {
        await store.insert([makeTaskRecord()]);
        assert.equal(await store.get("no-such-task"), undefined);
      });

      test("accepts an empty batch", async ({ store }) => {
        await store.insert([]);
        assert.equal((await store.list({})).totalSize, 0);
      });

      test("stores every task of many concurrent calls", async ({ store }) => {
        const records = Array.from({ length: 200 }, () => makeTaskRecord());
        await Promise.all(records.map((r) => store.insert([r])));
        for (const r of records) assertSameRecord(await store.get(r.id), r);
        assert.equal((await store.counts()).queued, 200);
      });

      test("stores a large batch", async ({ store }) => {
        const records = Array.from({ length: 2_000 }, () => makeTaskRecord());
        await store.insert(records);
        assert.equal((await store.list({})).totalSize, 2_000);
        assertSameRecord(await store.get(records[1_234]!.id), records[1_234]!);
      });
    });

    describe("update", () => {
      test("replaces the state of existing tasks", async ({ store }) => {
        const a = makeTaskRecord({ idempotencyKey: "k-a", requiredLabels: { os: "linux" } });
        const b = makeTaskRecord();
        await store.insert([copy(a), copy(b)]);
        const a2 = fullRecord({
          id: a.id,
          seq: a.seq,
          type: a.type,
          tenant: a.tenant,
          clientId: a.clientId,
          idempotencyKey: a.idempotencyKey,
          createdAt: a.createdAt,
          payload: a.payload,
          state: "succeeded",
          finishedAt: a.createdAt + 100,
          result: new Uint8Array([1, 2, 3, 4]),
        });
        // Submission attributes are fixed at submission like the identity: a's (none) stay.
        for (const key of SPEC_ATTRIBUTE_KEYS) delete a2[key];
        const b2 = { ...copy(b), state: "assigned" as const, workerId: "w-1", assignedAt: b.createdAt + 1, epoch: 1, attempt: 1 };
        await store.update([copy(a2), copy(b2)]);
        assertSameRecord(await store.get(a.id), a2);
        assertSameRecord(await store.get(b.id), b2);
        assertSameRecord(await store.findByIdempotencyKey(a2.tenant, "k-a"), a2);
        const counts = await store.counts();
        assert.equal(counts.succeeded, 1);
        assert.equal(counts.assigned, 1);
        assert.equal(counts.queued, 0);
      });

      test("can clear a result and the attempts again", async ({ store }) => {
        const a = fullRecord();
        await store.insert([copy(a)]);
        const a2 = { ...copy(a), state: "queued" as const, result: undefined, attempts: [], error: "", workerId: "" };
        await store.update([copy(a2)]);
        assertSameRecord(await store.get(a.id), a2);
      });

      test("accepts an empty batch", async ({ store }) => {
        await store.update([]);
      });

      test("takes a failed task back to queued (a dead-letter retry): unfinished again, not purged, counted as queued", async ({ store }) => {
        const a = makeTaskRecord();
        const attempts = [{ attempt: 1, epoch: 1, workerId: "w", startedAt: a.createdAt + 1, finishedAt: a.createdAt + 2, error: "boom" }];
        const failed = { ...copy(a), state: "failed" as const, attempt: 1, epoch: 1, workerId: "w", finishedAt: a.createdAt + 2, error: "boom", attempts };
        await store.insert([copy(a)]);
        await store.update([copy(failed)]);
        assert.deepEqual((await store.loadUnfinished()).map((t) => t.id), []);
        const retried = { ...copy(failed), state: "queued" as const, attempt: 0, workerId: "", finishedAt: 0, error: "", waitingReason: "retried by request" };
        await store.update([copy(retried)]);
        assertSameRecord(await store.get(a.id), retried);
        assert.deepEqual((await store.loadUnfinished()).map((t) => t.id), [a.id]);
        assert.deepEqual((await store.list({ states: ["failed"] })).tasks, []);
        assert.equal(await store.purgeFinished(a.createdAt + 1_000_000), 0);
        const counts = await store.counts();
        assert.equal(counts.failed, 0);
        assert.equal(counts.queued, 1);
      });

      test("applies writes in call order when they are not awaited in between", async ({ store }) => {
        const a = makeTaskRecord();
        const assigned = { ...copy(a), state: "assigned" as const, workerId: "w", epoch: 1, attempt: 1, assignedAt: a.createdAt + 1 };
        const running = { ...copy(assigned), state: "running" as const, startedAt: a.createdAt + 2 };
        const done = { ...copy(running), state: "succeeded" as const, finishedAt: a.createdAt + 3, result: new Uint8Array([42]) };
        const b = makeTaskRecord();
        await Promise.all([
          store.insert([copy(a)]),
          store.update([copy(assigned)]),
          store.insert([copy(b)]),
          store.update([copy(running)]),
          store.update([copy(done)]),
        ]);
        assertSameRecord(await store.get(a.id), done);
        assertSameRecord(await store.get(b.id), b);
      });
    });

    describe("keepsRecords", () => {
      // The PLM skips update() for a store that says it keeps records: if it did not really
      // keep them, every state change after the insert would be lost.
      test("is true only when the store hands back the very records it was given", async ({ store }) => {
        const a = makeTaskRecord();
        await store.insert([a]);
        a.state = "running";
        const got = await store.get(a.id);
        if (store.keepsRecords === true) {
          assert.equal(got, a, "keepsRecords, but get() returned another object");
          assert.equal(options.keepsReferences, true, "keepsRecords is true: pass keepsReferences: true to the kit as well");
        } else {
          assert.equal(store.keepsRecords ?? false, false);
          assert.equal(got?.state, "queued", "a store that does not keep records must not see changes made without update()");
        }
      });
    });

    if (!options.keepsReferences) {
      describe("isolation", () => {
        test("stores the record as it was when insert was called", async ({ store }) => {
          const a = makeTaskRecord({ requiredLabels: { zone: "a" } });
          const expected = copy(a);
          const written = store.insert([a]);
          a.state = "failed";
          (a.requiredLabels as Record<string, string>).zone = "changed";
          a.payload = new Uint8Array([0x55]);
          await written;
          assertSameRecord(await store.get(a.id), expected);
        });

        test("is not changed through a record it returned", async ({ store }) => {
          const a = makeTaskRecord({ attempts: [{ attempt: 1, epoch: 1, workerId: "w", startedAt: 1, finishedAt: 2, error: "x" }] });
          await store.insert([copy(a)]);
          const got = (await store.get(a.id))!;
          got.state = "cancelled";
          got.attempts[0]!.error = "changed";
          got.attempts.push({ attempt: 2, epoch: 2, workerId: "w", startedAt: 3, finishedAt: 4, error: "" });
          assertSameRecord(await store.get(a.id), a);
          assert.equal((await store.counts()).queued, 1);
        });
      });
    }

    describe("findByIdempotencyKey", () => {
      test("finds the task with that key", async ({ store }) => {
        const a = makeTaskRecord({ idempotencyKey: "order-17" });
        const b = makeTaskRecord({ idempotencyKey: "order-18" });
        await store.insert([copy(a), copy(b), makeTaskRecord()]);
        assertSameRecord(await store.findByIdempotencyKey("default", "order-17"), a);
        assertSameRecord(await store.findByIdempotencyKey("default", "order-18"), b);
        assert.equal(await store.findByIdempotencyKey("default", "order-19"), undefined);
      });

      test("never matches the empty key", async ({ store }) => {
        await store.insert([makeTaskRecord(), makeTaskRecord()]);
        assert.equal(await store.findByIdempotencyKey("default", ""), undefined);
      });

      test("scopes keys per tenant: two tenants may use the same key", async ({ store }) => {
        const a = makeTaskRecord({ tenant: "acme", idempotencyKey: "order-1" });
        const b = makeTaskRecord({ tenant: "globex", idempotencyKey: "order-1" });
        await store.insert([copy(a)]);
        await store.insert([copy(b)]);
        assertSameRecord(await store.findByIdempotencyKey("acme", "order-1"), a);
        assertSameRecord(await store.findByIdempotencyKey("globex", "order-1"), b);
        assert.equal(await store.findByIdempotencyKey("initech", "order-1"), undefined, "a third tenant finds neither");
      });
    });

    describe("tenant", () => {
      test("is stored and read back with the task", async ({ store }) => {
        const a = makeTaskRecord({ tenant: "acme" });
        const b = makeTaskRecord();
        await store.insert([copy(a), copy(b)]);
        assert.equal((await store.get(a.id))?.tenant, "acme");
        assert.equal((await store.get(b.id))?.tenant, "default");
        assert.deepEqual((await store.loadUnfinished()).map((t) => t.tenant), ["acme", "default"]);
      });
    });

    describe("list", () => {
      /** 30 tasks over 3 types, 2 clients and every state, in seq order. */
      function mixed(): TaskRecord[] {
        return Array.from({ length: 30 }, (_, i) => {
          const state = TASK_STATES[i % TASK_STATES.length]!;
          return makeTaskRecord({
            type: ["a", "b", "c"][i % 3]!,
            clientId: i % 2 === 0 ? "even" : "odd",
            tenant: i % 5 === 0 ? "acme" : "default",
            state,
            finishedAt: isFinal(state) ? 1_000 + i : 0,
            // Not in seq order, so an order by creation time would show.
            createdAt: 5_000 - i * 7 + (i % 4) * 100,
          });
        });
      }

      test("returns the newest first", async ({ store }) => {
        const records = mixed();
        await store.insert(records);
        const page = await store.list({ pageSize: 100 });
        assert.deepEqual(ids(page.tasks), ids([...records].sort((x, y) => y.seq - x.seq)));
        assert.equal(page.nextPageToken, "");
        assert.equal(page.totalSize, 30);
        for (const t of page.tasks) assertSameRecord(t, records.find((r) => r.id === t.id)!);
      });

      test("filters by state, type, client and tenant, alone and together", async ({ store }) => {
        const records = mixed();
        await store.insert(records);
        const cases: TaskQuery[] = [
          { states: ["queued"] },
          { states: ["running", "failed"] },
          { states: [] },
          { type: "b" },
          { clientId: "odd" },
          { states: ["queued", "succeeded", "cancelled"], type: "a" },
          { states: ["assigned"], clientId: "even" },
          { type: "c", clientId: "even" },
          { states: ["failed", "queued"], type: "a", clientId: "odd" },
          { type: "no-such-type" },
          { tenant: "acme" },
          { tenant: "default", clientId: "odd" },
          { states: ["queued", "running"], tenant: "acme" },
          { states: ["succeeded"], type: "c", clientId: "even", tenant: "default" },
          { tenant: "no-such-tenant" },
        ];
        for (const query of cases) {
          const expected = records
            .filter(
              (r) =>
                (!query.states?.length || query.states.includes(r.state)) &&
                (!query.type || r.type === query.type) &&
                (!query.clientId || r.clientId === query.clientId) &&
                (!query.tenant || r.tenant === query.tenant),
            )
            .sort((x, y) => y.seq - x.seq);
          const page = await store.list({ ...query, pageSize: 1000 });
          assert.deepEqual(ids(page.tasks), ids(expected), JSON.stringify(query));
          assert.equal(page.totalSize, expected.length, `totalSize of ${JSON.stringify(query)}`);
          assert.equal(page.nextPageToken, "");
        }
      });

      test("pages 50 at a time by default", async ({ store }) => {
        await store.insert(Array.from({ length: 120 }, () => makeTaskRecord()));
        const { pages } = await allPages(store, {});
        assert.deepEqual(
          pages.map((p) => p.tasks.length),
          [50, 50, 20],
        );
        for (const p of pages) assert.equal(p.totalSize, 120);
      });

      test("caps the page size at 1000", async ({ store }) => {
        await store.insert(Array.from({ length: 1_005 }, () => makeTaskRecord()));
        const first = await store.list({ pageSize: 5_000 });
        assert.equal(first.tasks.length, 1_000);
        assert.notEqual(first.nextPageToken, "");
        assert.equal(first.totalSize, 1_005);
        const second = await store.list({ pageSize: 5_000, pageToken: first.nextPageToken });
        assert.equal(second.tasks.length, 5);
        assert.equal(second.nextPageToken, "");
      });

      test("follows tokens to the end without repeating or missing a task", async ({ store }) => {
        const records = mixed();
        await store.insert(records);
        for (const query of [{ pageSize: 7 }, { pageSize: 1 }, { pageSize: 4, states: ["queued", "running"] as TaskState[] }, { pageSize: 3, clientId: "odd", type: "b" }]) {
          const { pages, tasks } = await allPages(store, query);
          const expected = records
            .filter((r) => (!query.states || query.states.includes(r.state)) && (!query.clientId || r.clientId === query.clientId) && (!("type" in query) || r.type === query.type))
            .sort((x, y) => y.seq - x.seq);
          assert.deepEqual(ids(tasks), ids(expected), JSON.stringify(query));
          for (const p of pages.slice(0, -1)) assert.equal(p.tasks.length, query.pageSize);
          for (const p of pages) assert.equal(p.totalSize, expected.length);
        }
      });

      test("gives out tokens that ListTasks accepts, which lead through every task", async ({ store }) => {
        const records = Array.from({ length: 23 }, () => makeTaskRecord());
        await store.insert(records);
        // allPages checks each token against the rule ListTasks applies before the store.
        const { pages, tasks } = await allPages(store, { pageSize: 5 });
        assert.equal(pages.length, 5);
        assert.deepEqual(ids(tasks), ids([...records].reverse()));
      });

      test("answers INVALID_ARGUMENT for a well-formed token it did not give out", async ({ store }) => {
        await store.insert(Array.from({ length: 3 }, () => makeTaskRecord()));
        for (const pageToken of ["garbage", "AAAA", "not-a-token", "-1"]) {
          assert.ok(isWellFormedPageToken(pageToken));
          await assert.rejects(
            store.list({ pageSize: 1, pageToken }),
            (err: unknown) => TaskflowError.is(err) && err.code === Code.INVALID_ARGUMENT,
            `token ${pageToken}`,
          );
        }
      });

      test("says a page that ends exactly at the last task is the last page", async ({ store }) => {
        await store.insert(Array.from({ length: 14 }, () => makeTaskRecord()));
        const first = await store.list({ pageSize: 7 });
        assert.notEqual(first.nextPageToken, "");
        const second = await store.list({ pageSize: 7, pageToken: first.nextPageToken });
        assert.equal(second.tasks.length, 7);
        assert.equal(second.nextPageToken, "");
      });

      test("keeps paging stable while new tasks arrive", async ({ store }) => {
        const records = Array.from({ length: 25 }, () => makeTaskRecord());
        await store.insert(records);
        const seen: TaskRecord[] = [];
        let page = await store.list({ pageSize: 10 });
        seen.push(...page.tasks);
        while (page.nextPageToken) {
          await store.insert([makeTaskRecord(), makeTaskRecord()]);
          page = await store.list({ pageSize: 10, pageToken: page.nextPageToken });
          seen.push(...page.tasks);
        }
        assert.deepEqual(ids(seen), ids([...records].reverse()));
      });
    });

    describe("loadUnfinished", () => {
      test("returns every unfinished task in submission order", async ({ store }) => {
        const records = Array.from({ length: 40 }, (_, i) => {
          const state = TASK_STATES[(i * 5) % TASK_STATES.length]!;
          // Ids that sort differently from seq, so an order by id would show.
          return makeTaskRecord({ id: `z-${(i * 7919) % 40}-${i}`, state, finishedAt: isFinal(state) ? 10 + i : 0, createdAt: 10_000 - i });
        });
        await store.insert(records);
        const unfinished = await store.loadUnfinished();
        assert.deepEqual(ids(unfinished), ids(records.filter((r) => !isFinal(r.state))));
        for (const t of unfinished) assertSameRecord(t, records.find((r) => r.id === t.id)!);
      });

      test("follows updates into and out of final states", async ({ store }) => {
        const a = makeTaskRecord();
        const b = makeTaskRecord();
        await store.insert([copy(a), copy(b)]);
        await store.update([{ ...copy(a), state: "failed", finishedAt: 50 }]);
        assert.deepEqual(ids(await store.loadUnfinished()), [b.id]);
      });

      test("a page at a time (loadUnfinishedPage, when the store has it): the same tasks, in order, whole", async ({ store }) => {
        if (!store.loadUnfinishedPage) return;
        const records = Array.from({ length: 23 }, (_, i) => {
          const state = TASK_STATES[(i * 5) % TASK_STATES.length]!;
          return makeTaskRecord({ id: `p-${(i * 7919) % 23}-${i}`, state, finishedAt: isFinal(state) ? 10 + i : 0 });
        });
        await store.insert(records);
        const paged: TaskRecord[] = [];
        let after = 0;
        for (let page = await store.loadUnfinishedPage(after, 4); page.length; page = await store.loadUnfinishedPage(after, 4)) {
          assert.ok(page.length <= 4, `a page of ${page.length}, asked for 4`);
          paged.push(...page);
          after = page.at(-1)!.seq;
        }
        assert.deepEqual(ids(paged), ids(await store.loadUnfinished()));
        assert.deepEqual(ids(paged), ids(records.filter((r) => !isFinal(r.state))));
        for (const t of paged) assertSameRecord(t, records.find((r) => r.id === t.id)!);
        assert.deepEqual(await store.loadUnfinishedPage(records.at(-1)!.seq, 10), []);
      });

      test("a page without the plain queued tasks (skipPlainQueued): every other unfinished task, in order, whole", async ({ store }) => {
        if (!store.loadUnfinishedPage) return;
        const records = [
          makeTaskRecord(),
          makeTaskRecord({ workerId: "w-1", epoch: 3 }), // queued, waiting for its worker to re-adopt it
          makeTaskRecord(),
          makeTaskRecord({ notBefore: 1_700_000_900_000 }),
          makeTaskRecord({ dependsOn: ["task-x"] }),
          makeTaskRecord({ metadata: { team: "a" } }),
          makeTaskRecord({ state: "assigned", workerId: "w-2", epoch: 1 }),
          makeTaskRecord({ state: "running", workerId: "w-2", epoch: 1 }),
          makeTaskRecord({ state: "succeeded", finishedAt: 20 }),
          makeTaskRecord(),
          makeTaskRecord({ concurrencyKey: "k" }),
        ];
        await store.insert(records.map(copy));
        const paged: TaskRecord[] = [];
        let after = 0;
        for (let page = await store.loadUnfinishedPage(after, 2, { skipPlainQueued: true }); page.length; page = await store.loadUnfinishedPage(after, 2, { skipPlainQueued: true })) {
          assert.ok(page.length <= 2, `a page of ${page.length}, asked for 2`);
          paged.push(...page);
          after = page.at(-1)!.seq;
        }
        const expected = records.filter((r) => !isFinal(r.state) && !isPlainQueuedRecord(r));
        assert.equal(expected.length, 7);
        assert.deepEqual(ids(paged), ids(expected));
        for (const t of paged) assertSameRecord(t, records.find((r) => r.id === t.id)!);
      });
    });

    describe("maxSeq", () => {
      test("is the highest seq stored", async ({ store }) => {
        const a = makeTaskRecord({ seq: 1_000_017 });
        await store.insert([makeTaskRecord({ seq: 1_000_003 }), a, makeTaskRecord({ seq: 1_000_011 })]);
        assert.equal(await store.maxSeq(), 1_000_017);
      });

      test("does not go back when the newest task is purged", async ({ store }) => {
        const older = makeTaskRecord();
        const newest = makeTaskRecord({ state: "succeeded", finishedAt: 100 });
        await store.insert([older, newest]);
        assert.equal(await store.purgeFinished(1_000), 1);
        assert.equal(await store.get(newest.id), undefined);
        assert.equal(await store.maxSeq(), newest.seq);
      });
    });

    describe("purgeFinished", () => {
      test("deletes tasks in a final state that finished before the cut-off, and only those", async ({ store }) => {
        const old = [
          makeTaskRecord({ state: "succeeded", finishedAt: 100, idempotencyKey: "purged-key" }),
          makeTaskRecord({ state: "failed", finishedAt: 200 }),
          makeTaskRecord({ state: "cancelled", finishedAt: 999 }),
        ];
        const kept = [
          makeTaskRecord({ state: "succeeded", finishedAt: 1_000 }),
          makeTaskRecord({ state: "failed", finishedAt: 5_000 }),
          makeTaskRecord({ state: "queued" }),
          makeTaskRecord({ state: "running", startedAt: 10 }),
          // Requeued after a failed attempt: not final, whatever its finishedAt says.
          makeTaskRecord({ state: "queued", finishedAt: 50, attempt: 1 }),
          makeTaskRecord({ state: "assigned", finishedAt: 60 }),
        ];
        await store.insert([...old, ...kept]);
        assert.equal(await store.purgeFinished(1_000), 3);
        for (const r of old) assert.equal(await store.get(r.id), undefined, r.id);
        for (const r of kept) assertSameRecord(await store.get(r.id), r);
        assert.equal(await store.findByIdempotencyKey("default", "purged-key"), undefined);
        assert.equal((await store.list({})).totalSize, kept.length);
        const counts = await store.counts();
        assert.equal(counts.succeeded, 1);
        assert.equal(counts.failed, 1);
        assert.equal(counts.cancelled, 0);
        assert.equal(await store.purgeFinished(1_000), 0);
      });
    });

    describe("counts", () => {
      test("counts the tasks in each state", async ({ store }) => {
        const perState: Record<TaskState, number> = { queued: 5, assigned: 1, running: 3, succeeded: 7, failed: 2, cancelled: 0 };
        const records = TASK_STATES.flatMap((state) =>
          Array.from({ length: perState[state] }, () => makeTaskRecord({ state, finishedAt: isFinal(state) ? 10 : 0 })),
        );
        await store.insert(records);
        assert.deepEqual({ ...(await store.counts()) }, perState);
        await store.update([{ ...copy(records[0]!), state: "cancelled", finishedAt: 20 }]);
        assert.deepEqual({ ...(await store.counts()) }, { ...perState, queued: 4, cancelled: 1 });
      });
    });

    if (options.reopen) {
      describe("durability", () => {
        test("keeps everything across a close and a reopen", async (ctx) => {
          const queued = makeTaskRecord({ idempotencyKey: "durable-key" });
          const running = fullRecord();
          const done = makeTaskRecord({ state: "succeeded", finishedAt: 10_000, result: new Uint8Array([1]) });
          const purged = makeTaskRecord({ state: "failed", finishedAt: 10 });
          await ctx.store.insert([copy(queued), copy(running), copy(done), copy(purged)]);
          const runningLater = { ...copy(running), attempt: 3, epoch: 10, waitingReason: "" };
          await ctx.store.update([copy(runningLater)]);
          assert.equal(await ctx.store.purgeFinished(100), 1);
          const before = { counts: await ctx.store.counts(), maxSeq: await ctx.store.maxSeq(), list: await ctx.store.list({}) };

          const store = await ctx.reopen();
          assertSameRecord(await store.get(queued.id), queued);
          assertSameRecord(await store.get(running.id), runningLater);
          assertSameRecord(await store.get(done.id), done);
          assert.equal(await store.get(purged.id), undefined);
          assertSameRecord(await store.findByIdempotencyKey("default", "durable-key"), queued);
          assert.deepEqual(ids(await store.loadUnfinished()), [queued.id, running.id]);
          assert.deepEqual({ ...(await store.counts()) }, { ...before.counts });
          assert.equal(await store.maxSeq(), before.maxSeq);
          assert.equal(await store.maxSeq(), purged.seq);
          assert.deepEqual(ids((await store.list({})).tasks), ids(before.list.tasks));
        });

        test("keeps writes acknowledged right before the close", async (ctx) => {
          const records = Array.from({ length: 100 }, () => makeTaskRecord());
          await Promise.all(records.map((r) => ctx.store.insert([copy(r)])));
          const store = await ctx.reopen();
          assert.equal((await store.list({})).totalSize, 100);
          for (const r of records) assertSameRecord(await store.get(r.id), r);
        });
      });
    }
  });
}
