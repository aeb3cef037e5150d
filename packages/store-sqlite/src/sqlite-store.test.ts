import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { Code, Reason, TaskflowError } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { SCHEMA_VERSION, SqliteTaskStore, type SqliteTaskStoreOptions } from "./index.js";
import { SMALL_GROUP_ROWS } from "./sqlite-store.js";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "taskflow-sqlite-unit-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const freshPath = () => join(root, `db-${++n}`, "tasks.db");

async function opened(options: Partial<SqliteTaskStoreOptions> = {}): Promise<SqliteTaskStore> {
  const store = new SqliteTaskStore({ path: freshPath(), ...options });
  await store.open();
  return store;
}

async function rejectsWith(promise: Promise<unknown>, code: Code): Promise<TaskflowError> {
  const err = await promise.then(
    () => assert.fail("expected a rejection"),
    (e: unknown) => e,
  );
  assert.ok(TaskflowError.is(err), `a TaskflowError, got ${String(err)}`);
  assert.equal(err.codeName, Code[code], err.message);
  assert.equal(err.reason, Reason.STORE);
  return err;
}

describe("SqliteTaskStore", () => {
  describe("constructor", () => {
    it("rejects bad options", () => {
      for (const options of [
        { path: "" },
        { path: "x.db", synchronous: "off" as never },
        { path: "x.db", groupCommitMaxDelayMs: -1 },
        { path: "x.db", groupCommitMaxDelayMs: Number.NaN },
      ]) {
        assert.throws(() => new SqliteTaskStore(options), (e: unknown) => TaskflowError.is(e) && e.code === Code.INVALID_ARGUMENT);
      }
    });
  });

  describe("open", () => {
    it("creates the missing folders, a WAL-mode file and the current schema version", async () => {
      const path = join(root, "deep", "er", "tasks.db");
      const store = new SqliteTaskStore({ path });
      await store.open();
      await store.close();
      const raw = new Database(path, { readonly: true });
      try {
        assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
        assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION);
      } finally {
        raw.close();
      }
    });

    it("refuses a file written by a newer schema version", async () => {
      const path = freshPath();
      const store = new SqliteTaskStore({ path });
      await store.open();
      await store.close();
      const raw = new Database(path);
      raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      raw.close();
      const err = await rejectsWith(new SqliteTaskStore({ path }).open(), Code.FAILED_PRECONDITION);
      assert.match(err.message, /schema version/);
    });

    it("reports a path it cannot create as UNAVAILABLE, with the cause", async () => {
      const file = join(root, "a-file");
      writeFileSync(file, "not a folder");
      const err = await rejectsWith(new SqliteTaskStore({ path: join(file, "tasks.db") }).open(), Code.UNAVAILABLE);
      assert.ok(err.cause);
    });

    it("reports a file that is not a database as DATA_LOSS", async () => {
      const path = freshPath();
      mkdirSync(join(path, ".."), { recursive: true });
      writeFileSync(path, Buffer.alloc(8192, 0x5a));
      await rejectsWith(new SqliteTaskStore({ path }).open(), Code.DATA_LOSS);
    });

    it("opens once when asked twice at the same time, and again after a close", async () => {
      const store = new SqliteTaskStore({ path: freshPath() });
      await Promise.all([store.open(), store.open()]);
      await store.insert([makeTaskRecord()]);
      await store.close();
      await store.open();
      try {
        assert.equal((await store.list({})).totalSize, 1);
      } finally {
        await store.close();
      }
    });

    it("fails calls before open and after close with UNAVAILABLE", async () => {
      const store = new SqliteTaskStore({ path: freshPath() });
      await rejectsWith(store.get("x"), Code.UNAVAILABLE);
      await rejectsWith(store.insert([makeTaskRecord()]), Code.UNAVAILABLE);
      await store.open();
      await store.close();
      await rejectsWith(store.list({}), Code.UNAVAILABLE);
      await rejectsWith(store.update([makeTaskRecord()]), Code.UNAVAILABLE);
    });
  });

  describe("group commit", () => {
    for (const writer of ["thread", "inline"] as const) {
      it(`commits the writes of one tick in one transaction, resolving each after it (${writer} writer)`, async () => {
        const store = await opened({ writer });
        try {
          const records = Array.from({ length: 100 }, () => makeTaskRecord());
          await Promise.all([...records.map((r) => store.insert([r])), store.update([{ ...records[0]!, state: "running" }])]);
          assert.deepEqual(store.stats(), { commits: 1, writeCalls: 101, rows: 101, checkpointThreadError: "" });
          assert.equal((await store.get(records[0]!.id))?.state, "running");
        } finally {
          await store.close();
        }
      });
    }

    it("gathers the writes made while a group commits into the next group", async () => {
      const store = await opened();
      try {
        const first = store.insert([makeTaskRecord()]);
        // Let the first group leave for the writer thread, then write more while it commits.
        await new Promise((resolve) => setImmediate(resolve));
        const more = Array.from({ length: 50 }, () => store.insert([makeTaskRecord()]));
        await Promise.all([first, ...more]);
        assert.equal(store.stats().commits, 2);
        assert.equal((await store.list({})).totalSize, 51);
      } finally {
        await store.close();
      }
    });

    it("carries payloads and results of every size to the writer thread and back", async () => {
      const store = await opened();
      try {
        const sizes = [0, 1, 64, 70_000, 1_000_000];
        const tasks = sizes.map((size) => makeTaskRecord({ payload: new Uint8Array(size).fill(size % 251) }));
        // Views into a larger buffer, as a decoded message gives them.
        const big = new Uint8Array(2_000_000).fill(7);
        tasks.push(makeTaskRecord({ payload: big.subarray(10, 20) }));
        await Promise.all([store.insert(tasks.slice(0, 2)), ...tasks.slice(2).map((t) => store.insert([t]))]);
        const finished = tasks.map((t, i) => ({ ...t, state: "succeeded" as const, finishedAt: 1, result: i % 2 ? undefined : new Uint8Array(sizes[i] ?? 3).fill(1) }));
        await Promise.all([store.update(finished.slice(0, 3)), store.update(finished.slice(3))]);
        for (const t of finished) {
          const got = (await store.get(t.id))!;
          assert.deepEqual(new Uint8Array(got.payload), new Uint8Array(t.payload), `payload of ${t.id}`);
          assert.deepEqual(got.result && new Uint8Array(got.result), t.result && new Uint8Array(t.result), `result of ${t.id}`);
        }
        assert.equal(big.byteLength, 2_000_000, "the caller's buffers are not detached");
      } finally {
        await store.close();
      }
    });

    it("lets a process that awaits a write get its acknowledgement, and exit when idle without close", async () => {
      const dir = mkdtempSync(join(root, "exit-"));
      const index = new URL("./index.js", import.meta.url).href;
      const script = `
        import { SqliteTaskStore } from ${JSON.stringify(index)};
        const store = new SqliteTaskStore({ path: ${JSON.stringify(join(dir, "t.db"))} });
        await store.open();
        await store.insert([${JSON.stringify({ ...makeTaskRecord(), payload: undefined })}].map((t) => ({ ...t, payload: new Uint8Array(1) })));
        process.stdout.write("acked " + (await store.maxSeq()) + "\\n");
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
      clearTimeout(timer);
      assert.equal(signal, null, "exited by itself, not killed after 10 s");
      assert.equal(code, 0);
      assert.match(out, /^acked \d+/);
    });

    it("gathers writes across ticks within groupCommitMaxDelayMs", async () => {
      const store = await opened({ groupCommitMaxDelayMs: 50 });
      try {
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 5; i++) {
          writes.push(store.insert([makeTaskRecord()]));
          await new Promise((resolve) => setImmediate(resolve));
        }
        await Promise.all(writes);
        assert.equal(store.stats().commits, 1);
        assert.equal(store.stats().writeCalls, 5);
      } finally {
        await store.close();
      }
    });

    it("fails only the call that broke a constraint, and stores none of its records", async () => {
      const store = await opened();
      try {
        const existing = makeTaskRecord();
        await store.insert([existing]);
        const before = makeTaskRecord();
        const innocent = makeTaskRecord();
        const dupId = makeTaskRecord({ id: existing.id });
        const dupKey = [makeTaskRecord({ idempotencyKey: "same" }), makeTaskRecord({ idempotencyKey: "same" })];
        const after = makeTaskRecord();
        const results = await Promise.allSettled([
          store.insert([before]),
          store.insert([innocent, dupId]),
          store.insert(dupKey),
          store.insert([after]),
        ]);
        assert.deepEqual(
          results.map((r) => r.status),
          ["fulfilled", "rejected", "rejected", "fulfilled"],
        );
        for (const r of results.filter((r) => r.status === "rejected")) {
          await rejectsWith(Promise.reject(r.reason), Code.ALREADY_EXISTS);
        }
        assert.ok(await store.get(before.id));
        assert.ok(await store.get(after.id));
        assert.equal(await store.get(innocent.id), undefined, "the failed call stored nothing");
        assert.equal(await store.findByIdempotencyKey("default", "same"), undefined);
        assert.equal((await store.list({})).totalSize, 3);
      } finally {
        await store.close();
      }
    });

    it("commits what is queued when closed", async () => {
      const path = freshPath();
      const store = new SqliteTaskStore({ path, groupCommitMaxDelayMs: 10_000 });
      await store.open();
      const task = makeTaskRecord();
      const written = store.insert([task]);
      await store.close();
      await written;
      const reopened = new SqliteTaskStore({ path });
      await reopened.open();
      try {
        assert.equal((await reopened.get(task.id))?.id, task.id);
      } finally {
        await reopened.close();
      }
    });
  });

  describe("writer thread", () => {
    it("commits a small group on the calling thread while the thread is idle, and a larger one on the thread", async () => {
      const store = await opened();
      try {
        const thread = (store as unknown as { writer: { nextId: number } }).writer;
        const sentBefore = thread.nextId;
        await store.insert([makeTaskRecord()]);
        await store.update([{ ...makeTaskRecord(), state: "running" }]);
        assert.equal(thread.nextId, sentBefore, "one-row groups skipped the hand-over");
        await store.insert(Array.from({ length: SMALL_GROUP_ROWS + 1 }, () => makeTaskRecord()));
        assert.equal(thread.nextId, sentBefore + 1, "the larger group went to the thread");
        assert.equal((await store.list({})).totalSize, SMALL_GROUP_ROWS + 2);
        assert.deepEqual({ ...store.stats(), checkpointThreadError: undefined }, { commits: 3, writeCalls: 3, rows: SMALL_GROUP_ROWS + 3, checkpointThreadError: undefined });
      } finally {
        await store.close();
      }
    });

    it("fails writes with UNAVAILABLE once the thread is gone, and still closes", async () => {
      const store = await opened();
      try {
        await store.insert([makeTaskRecord()]);
        // Reach in to simulate the thread dying (an out-of-memory kill of the thread, a native crash).
        const writer = (store as unknown as { writer: { worker: { terminate(): Promise<number> } } }).writer;
        await writer.worker.terminate();
        await rejectsWith(store.insert([makeTaskRecord()]), Code.UNAVAILABLE);
        await rejectsWith(store.purgeFinished(Date.now()), Code.UNAVAILABLE);
        assert.equal((await store.list({})).totalSize, 1, "reads still work");
      } finally {
        await store.close();
      }
    });
  });

  describe("update", () => {
    it("skips a task that is not stored", async () => {
      const store = await opened();
      try {
        await store.update([makeTaskRecord({ state: "running" })]);
        assert.equal((await store.list({})).totalSize, 0);
      } finally {
        await store.close();
      }
    });

    it("writes a record passed to several calls of one group once, as it is when the group is sent", async () => {
      const store = await opened();
      try {
        const task = makeTaskRecord({ requiredLabels: { zone: "a" } });
        const other = makeTaskRecord();
        await store.insert([task, other]);
        const before = store.stats();
        // The PLM's pattern: the same record object changes and is saved again before the
        // first save committed.
        task.state = "assigned";
        task.workerId = "w1";
        const first = store.update([task, other]);
        task.state = "succeeded";
        task.attempts = [{ attempt: 1, epoch: 1, workerId: "w1", startedAt: 5, finishedAt: 6, error: "" }];
        const second = store.update([task]);
        await Promise.all([first, second]);
        const after = store.stats();
        assert.equal(after.commits - before.commits, 1, "one group");
        assert.equal(after.writeCalls - before.writeCalls, 2, "both calls resolved");
        assert.equal(after.rows - before.rows, 2, "task written once, other once");
        const got = await store.get(task.id);
        assert.equal(got?.state, "succeeded");
        assert.equal(got.workerId, "w1");
        assert.deepEqual(got.requiredLabels, { zone: "a" });
        assert.deepEqual(got.attempts, task.attempts);
        assert.equal((await store.get(other.id))?.state, other.state);
      } finally {
        await store.close();
      }
    });

    it("keeps the fields fixed at submission", async () => {
      const store = await opened();
      try {
        const task = makeTaskRecord({ type: "a", clientId: "c", idempotencyKey: "k" });
        await store.insert([task]);
        await store.update([{ ...task, type: "b", clientId: "d", idempotencyKey: "other", payload: new Uint8Array([1]), state: "running" }]);
        const got = await store.get(task.id);
        assert.equal(got?.state, "running");
        assert.deepEqual([got.type, got.clientId, got.idempotencyKey, [...got.payload]], ["a", "c", "k", [...task.payload]]);
      } finally {
        await store.close();
      }
    });
  });

  describe("list", () => {
    it("rejects a page token it did not make", async () => {
      const store = await opened();
      try {
        await rejectsWith(store.list({ pageToken: "not-a-token" }), Code.INVALID_ARGUMENT);
        await rejectsWith(store.list({ pageSize: -1 }), Code.INVALID_ARGUMENT);
      } finally {
        await store.close();
      }
    });
  });
});
