import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { Code, TaskflowError } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { SCHEMA_VERSION, SqliteTaskStore } from "./index.js";
import { MIGRATIONS } from "./schema.js";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "taskflow-sqlite-migration-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A database file as version 1 (before tenants) left it: its schema, and rows in its layout. */
function writeV1File(path: string): void {
  const db = new Database(path);
  try {
    db.pragma("journal_mode = WAL");
    db.exec(MIGRATIONS[0]!);
    db.pragma("user_version = 1");
    const insert = db.prepare(
      "INSERT INTO tasks (seq, id, state, type, client_id, idempotency_key, priority, max_attempts, timeout_ms, expected_duration_ms, " +
        "attempt, epoch, worker_id, created_at, assigned_at, started_at, finished_at, not_before, error, waiting_reason, required_labels, attempts, result) " +
        "VALUES (?, ?, ?, 'echo', 'client-1', ?, 0, 0, 0, 0, 0, 0, '', 1000, 0, 0, ?, 0, '', '', '{}', '[]', NULL)",
    );
    const payload = db.prepare("INSERT INTO task_payloads (seq, payload) VALUES (?, ?)");
    insert.run(1, "old-queued", "queued", "order-1", 0);
    insert.run(2, "old-done", "succeeded", "", 2000);
    payload.run(1, Buffer.from("a"));
    payload.run(2, Buffer.from("b"));
  } finally {
    db.close();
  }
}

describe("SqliteTaskStore migrations from v1", () => {
  it("opens a version 1 file: its tasks belong to the default tenant, its keys are the default tenant's", async () => {
    const path = join(root, "v1.db");
    writeV1File(path);
    const store = new SqliteTaskStore({ path, writer: "inline" });
    await store.open();
    try {
      assert.equal((await store.get("old-queued"))?.tenant, "default");
      assert.equal((await store.get("old-done"))?.tenant, "default");
      assert.equal((await store.get("old-done"))?.metadata, undefined);
      assert.deepEqual((await store.loadUnfinished()).map((t) => [t.id, t.tenant]), [["old-queued", "default"]]);
      assert.equal((await store.findByIdempotencyKey("default", "order-1"))?.id, "old-queued");
      assert.equal(await store.findByIdempotencyKey("acme", "order-1"), undefined);
      assert.equal((await store.list({ tenant: "default" })).totalSize, 2);

      // The key was unique cluster-wide in v1; now another tenant may use it, the same one may not.
      await store.insert([makeTaskRecord({ id: "acme-1", seq: 3, tenant: "acme", idempotencyKey: "order-1" })]);
      assert.equal((await store.findByIdempotencyKey("acme", "order-1"))?.id, "acme-1");
      await assert.rejects(
        store.insert([makeTaskRecord({ id: "dup", seq: 4, tenant: "default", idempotencyKey: "order-1" })]),
        (err: unknown) => TaskflowError.is(err) && err.code === Code.ALREADY_EXISTS && /tasks\.tenant, tasks\.idempotency_key/.test(err.message),
      );
      assert.deepEqual((await store.list({ tenant: "acme" })).tasks.map((t) => t.id), ["acme-1"]);
      // v4 (schedules): none yet, and the table takes them.
      assert.deepEqual(await store.schedules.loadSchedules(), []);
    } finally {
      await store.close();
    }
    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION);
      // v3 (attributes): rows from before have none.
      assert.equal(raw.prepare("SELECT attributes FROM tasks WHERE id = 'old-done'").pluck().get(), "");
    } finally {
      raw.close();
    }
  });
});
