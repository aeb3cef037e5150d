import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { Code, Reason, TaskflowError } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { PostgresTaskStore, SCHEMA_VERSION, type PostgresTaskStoreOptions } from "./index.js";
import { migrate } from "./schema.js";
import { startTestPostgres, type TestPostgres } from "./testing/index.js";

let server: TestPostgres;
before(async () => {
  server = await startTestPostgres();
});
after(() => server?.stop());

let n = 0;
const freshSchema = () => `unit_${++n}`;

async function opened(options: Partial<PostgresTaskStoreOptions> = {}): Promise<PostgresTaskStore> {
  const store = new PostgresTaskStore({ url: server.url, schema: freshSchema(), ...options });
  await store.open();
  return store;
}

/** A plain connection of its own, to look at what is committed from outside the store. */
async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
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

function throwsCode(fn: () => unknown, code: Code, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => TaskflowError.is(err) && err.code === code && pattern.test(err.message));
}

describe("PostgresTaskStore", () => {
  describe("constructor", () => {
    it("refuses bad options with INVALID_ARGUMENT naming the option", () => {
      throwsCode(() => new PostgresTaskStore({ url: "mysql://x" }), Code.INVALID_ARGUMENT, /url must be a postgres:\/\//);
      throwsCode(() => new PostgresTaskStore({ url: server.url, poolSize: 1 }), Code.INVALID_ARGUMENT, /poolSize must be a whole number from 2 to 1000, got 1/);
      throwsCode(() => new PostgresTaskStore({ url: server.url, schema: "a;drop" }), Code.INVALID_ARGUMENT, /schema must be a Postgres identifier/);
      throwsCode(() => new PostgresTaskStore({ url: server.url, groupCommitMaxDelayMs: -1 }), Code.INVALID_ARGUMENT, /groupCommitMaxDelayMs must be a number ≥ 0/);
      throwsCode(() => new PostgresTaskStore({ url: server.url, connectTimeoutMs: 0 }), Code.INVALID_ARGUMENT, /connectTimeoutMs must be a whole number > 0/);
    });
  });

  describe("open", () => {
    it("records each migration once in taskflow_migrations, also when two nodes open at once", async () => {
      const schema = freshSchema();
      const a = new PostgresTaskStore({ url: server.url, schema });
      const b = new PostgresTaskStore({ url: server.url, schema });
      await Promise.all([a.open(), b.open()]);
      await Promise.all([a.close(), b.close()]);
      const again = new PostgresTaskStore({ url: server.url, schema });
      await again.open();
      await again.close();
      const rows = await withClient(server.url, async (c) => (await c.query(`SELECT version FROM ${schema}.taskflow_migrations ORDER BY version`)).rows);
      assert.deepEqual(
        rows.map((r: { version: number }) => r.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
    });

    it("upgrades a version 2 schema: its tasks belong to the default tenant, its keys become per tenant", async () => {
      const schema = freshSchema();
      await withClient(server.url, async (c) => {
        await c.query(`CREATE SCHEMA ${schema}`);
        await c.query(`SET search_path TO ${schema}`);
        await migrate(c, schema, 2);
        // A row as version 2 wrote it: no tenant column.
        await c.query(
          "INSERT INTO tasks (seq, id, state, type, client_id, idempotency_key, priority, max_attempts, timeout_ms, expected_duration_ms, attempt, epoch, " +
            "worker_id, created_at, assigned_at, started_at, finished_at, not_before, error, waiting_reason, required_labels, attempts, result, payload) " +
            "VALUES (1, 'old-1', 'queued', 't', 'c1', 'order-1', 0, 0, 0, 0, 0, 0, '', 1, 0, 0, 0, 0, '', '', '{}', '[]', NULL, '')",
        );
      });
      const store = new PostgresTaskStore({ url: server.url, schema });
      await store.open();
      try {
        const old = await store.get("old-1");
        assert.equal(old?.tenant, "default");
        assert.equal((await store.findByIdempotencyKey("default", "order-1"))?.id, "old-1");
        assert.equal(await store.findByIdempotencyKey("acme", "order-1"), undefined);
        const acme = makeTaskRecord({ seq: 2, tenant: "acme", idempotencyKey: "order-1" });
        await store.insert([acme]);
        assert.deepEqual((await store.list({ tenant: "default" })).tasks.map((t) => t.id), ["old-1"]);
        assert.deepEqual((await store.loadUnfinished()).map((t) => t.id), ["old-1", acme.id], "a row stored before version 6 counts as unfinished");
        const versions = await withClient(server.url, async (c) => (await c.query(`SELECT max(version) AS v FROM ${schema}.taskflow_migrations`)).rows);
        assert.equal(versions[0].v, SCHEMA_VERSION);
      } finally {
        await store.close();
      }
    });

    it("refuses a schema written by a newer version with FAILED_PRECONDITION", async () => {
      const store = await opened();
      await store.close();
      await withClient(server.url, (c) => c.query(`INSERT INTO ${store.schema}.taskflow_migrations (version, description) VALUES (${SCHEMA_VERSION + 1}, 'from the future')`));
      const err = await rejectsWith(new PostgresTaskStore({ url: server.url, schema: store.schema }).open(), Code.FAILED_PRECONDITION);
      assert.match(err.message, new RegExp(`version ${SCHEMA_VERSION + 1}.*knows up to ${SCHEMA_VERSION}; upgrade it`));
    });

    it("fails with UNAVAILABLE when no server answers, without showing the password", async () => {
      // A port nothing listens on: the server's own port while it is up is taken, so ask the OS.
      const { createServer } = await import("node:net");
      const port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const store = new PostgresTaskStore({ url: `postgres://someone:hunter2@127.0.0.1:${port}/db`, connectTimeoutMs: 5_000 });
      const err = await rejectsWith(store.open(), Code.UNAVAILABLE);
      assert.doesNotMatch(err.message, /hunter2/);
      assert.match(err.message, /postgres:\/\/someone:\*\*\*@127\.0\.0\.1/);
      assert.equal(store.location.includes("hunter2"), false);
    });

    it("fails with UNAVAILABLE for a database that does not exist", async () => {
      const url = server.url.replace(/\/postgres$/, "/no_such_db");
      const err = await rejectsWith(new PostgresTaskStore({ url }).open(), Code.UNAVAILABLE);
      assert.match(err.message, /no_such_db/);
    });
  });

  describe("insert", () => {
    it("is committed when it resolves: another connection sees it at once", async () => {
      const store = await opened();
      try {
        const records = Array.from({ length: 50 }, () => makeTaskRecord());
        await Promise.all(records.map((r) => store.insert([r])));
        const count = await withClient(server.url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${store.schema}.tasks`)).rows[0].n as number);
        assert.equal(count, 50);
      } finally {
        await store.close();
      }
    });

    it("sends concurrent calls together: 300 calls in a handful of commits", async () => {
      const store = await opened();
      try {
        await Promise.all(Array.from({ length: 300 }, () => store.insert([makeTaskRecord()])));
        const stats = store.stats();
        assert.equal(stats.writeCalls, 300);
        assert.equal(stats.rows, 300);
        // The first call goes alone at the end of its tick; the rest gather while it commits.
        assert.ok(stats.commits <= 3, `300 calls made ${stats.commits} commits`);
      } finally {
        await store.close();
      }
    });

    it("fails only the call with a duplicate, not the rest of its group", async () => {
      const store = await opened();
      try {
        const existing = makeTaskRecord({ idempotencyKey: "dup-key" });
        await store.insert([existing]);
        const fine = Array.from({ length: 20 }, () => makeTaskRecord());
        const byId = makeTaskRecord({ id: existing.id });
        const byKey = makeTaskRecord({ idempotencyKey: "dup-key" });
        const withinCall = makeTaskRecord();
        const results = await Promise.allSettled([
          ...fine.slice(0, 10).map((r) => store.insert([r])),
          store.insert([byId]),
          store.insert([byKey]),
          store.insert([withinCall, { ...withinCall }]),
          ...fine.slice(10).map((r) => store.insert([r])),
        ]);
        const rejected = results.flatMap((r, i) => (r.status === "rejected" ? [i] : []));
        assert.deepEqual(rejected, [10, 11, 12]);
        for (const i of rejected) {
          const reason = (results[i] as PromiseRejectedResult).reason as TaskflowError;
          assert.equal(reason.code, Code.ALREADY_EXISTS, reason.message);
        }
        for (const r of fine) assert.ok(await store.get(r.id), `${r.id} stored`);
        assert.equal(await store.get(byKey.id), undefined, "a failed call stores nothing");
        assert.equal(await store.get(withinCall.id), undefined, "a call is all or nothing");
        assert.ok(store.stats().splitGroups >= 1);
      } finally {
        await store.close();
      }
    });
  });

  describe("large payloads and results", () => {
    it("stores a group mixing large and small rows byte for byte", async () => {
      const store = await opened();
      try {
        const big = (seed: number, size: number) => new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
        const large = Array.from({ length: 3 }, (_, i) => makeTaskRecord({ payload: big(i, 6 * 1024 * 1024) }));
        const small = Array.from({ length: 300 }, (_, i) => makeTaskRecord({ payload: big(i, 1000) }));
        await Promise.all([...large, ...small].map((r) => store.insert([r])));
        const done = large.map((r, i) => ({ ...r, state: "succeeded" as const, finishedAt: 10, result: big(100 + i, 5 * 1024 * 1024) }));
        await Promise.all([...done.map((r) => store.update([r])), store.update(small.map((r) => ({ ...r, state: "running" as const })))]);
        for (const [i, r] of done.entries()) {
          const got = await store.get(r.id);
          assert.ok(got, `large task ${i} stored`);
          assert.ok(Buffer.from(got.payload).equals(Buffer.from(large[i]!.payload)), `payload ${i}`);
          assert.ok(Buffer.from(got.result!).equals(Buffer.from(r.result)), `result ${i}`);
        }
        assert.equal((await store.counts()).running, 300);
        assert.ok(Buffer.from((await store.get(small[299]!.id))!.payload).equals(Buffer.from(small[299]!.payload)));
      } finally {
        await store.close();
      }
    });
  });

  describe("update", () => {
    it("writes the newest version of a task updated by several calls in one group", async () => {
      const store = await opened();
      try {
        const a = makeTaskRecord();
        await store.insert([a]);
        const versions = (["assigned", "running", "succeeded", "failed"] as const).map((state, i) => ({ ...a, state, epoch: i + 1 }));
        await Promise.all(versions.map((v) => store.update([v])));
        const got = await store.get(a.id);
        assert.equal(got?.state, "failed");
        assert.equal(got?.epoch, 4);
      } finally {
        await store.close();
      }
    });

    it("keeps a task's updates before its end on the page (HOT): they change no indexed column", async () => {
      const schema = freshSchema();
      const store = new PostgresTaskStore({ url: server.url, schema });
      await store.open();
      const tasks = Array.from({ length: 10 }, (_, i) => makeTaskRecord({ seq: i + 1 }));
      try {
        await store.insert(tasks);
        for (const state of ["assigned", "running"] as const) await store.update(tasks.map((t) => ({ ...t, state, workerId: "w1", epoch: 1 })));
        assert.deepEqual((await store.loadUnfinished()).map((t) => t.state), tasks.map(() => "running"));
      } finally {
        await store.close(); // its sessions end, so their statistics reach the server's views
      }
      const stats = await withClient(server.url, async (c) => {
        for (let i = 0; ; i++) {
          const { rows } = await c.query("SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'", [schema]);
          if (rows[0]?.upd >= 20 || i >= 50) return rows[0] as { upd: number; hot: number };
          await new Promise((r) => setTimeout(r, 100));
        }
      });
      assert.equal(stats.upd, 20);
      // With `state` in an index (before version 6) none could be HOT.
      assert.ok(stats.hot >= 10, `${stats.hot} of 20 updates were HOT`);
    });

    it("keeps a group's assignment updates HOT across many pages (fillfactor 50, version 7)", async () => {
      const schema = freshSchema();
      const store = new PostgresTaskStore({ url: server.url, schema });
      await store.open();
      // Several pages of rows, all assigned in one group commit (one transaction), as a burst is.
      const tasks = Array.from({ length: 400 }, (_, i) => makeTaskRecord({ seq: i + 1, payload: new Uint8Array(16) }));
      try {
        await store.insert(tasks);
        await store.update(tasks.map((t) => ({ ...t, state: "assigned" as const, workerId: "w1", epoch: 1, attempt: 1, assignedAt: 1 })));
      } finally {
        await store.close();
      }
      const stats = await withClient(server.url, async (c) => {
        for (let i = 0; ; i++) {
          const { rows } = await c.query("SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'", [schema]);
          if (rows[0]?.upd >= tasks.length || i >= 50) return rows[0] as { upd: number; hot: number };
          await new Promise((r) => setTimeout(r, 100));
        }
      });
      assert.equal(stats.upd, tasks.length);
      // At fillfactor 90 a page had room for ~3 of its ~30 rows' new versions: ~10 % were HOT.
      assert.ok(stats.hot >= tasks.length * 0.9, `${stats.hot} of ${tasks.length} updates were HOT`);
    });

    it("writes a group of inserts and updates in one statement, a task inserted in it as it is now", async () => {
      const store = await opened();
      try {
        const older = makeTaskRecord();
        await store.insert([older]);
        const fresh = makeTaskRecord();
        const commitsBefore = store.stats().commits;
        // One turn: an insert, its task's update, and an update of a task stored before.
        await Promise.all([
          store.insert([fresh]),
          store.update([{ ...fresh, state: "assigned", workerId: "w1", epoch: 3 }]),
          store.update([{ ...older, state: "running", workerId: "w2", epoch: 5 }]),
        ]);
        assert.equal(store.stats().commits, commitsBefore + 1, "one group");
        const got = await store.get(fresh.id);
        assert.deepEqual([got?.state, got?.workerId, got?.epoch, got?.type, got?.createdAt], ["assigned", "w1", 3, fresh.type, fresh.createdAt]);
        const old = await store.get(older.id);
        assert.deepEqual([old?.state, old?.workerId, old?.epoch], ["running", "w2", 5]);
        // Rows written by one statement carry one transaction ID and command ID 0; BEGIN, INSERT,
        // UPDATE, COMMIT would give the update's row command ID 1.
        const rows = await withClient(server.url, async (c) =>
          (await c.query(`SELECT id, xmin::text AS x, cmin::text AS c FROM ${store.schema}.tasks WHERE id = ANY($1) ORDER BY id`, [[fresh.id, older.id]])).rows as { x: string; c: string }[],
        );
        assert.equal(rows.length, 2);
        assert.equal(rows[0]!.x, rows[1]!.x, "one transaction");
        assert.deepEqual(rows.map((r) => r.c), ["0", "0"], "one statement");
      } finally {
        await store.close();
      }
    });
  });

  describe("write lanes", () => {
    it("commits a group of other tasks while a group waits, and a task's later write only after its earlier one", async () => {
      const store = await opened();
      const holder = new pg.Client({ connectionString: server.url });
      const watcher = new pg.Client({ connectionString: server.url });
      await holder.connect();
      await watcher.connect();
      try {
        const a = makeTaskRecord();
        await store.insert([a]);
        // Another session holds a's row: the group updating a waits for it on the server.
        await holder.query("BEGIN");
        await holder.query(`SELECT 1 FROM ${store.schema}.tasks WHERE id = $1 FOR UPDATE`, [a.id]);
        const first = store.update([{ ...a, state: "assigned", epoch: 1 }]);
        for (let tries = 0; ; tries++) {
          const { rows } = await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE tasks%'");
          if (rows[0].n > 0) break;
          assert.ok(tries < 1200, "the update of a never waited for the row lock");
          await new Promise((r) => setTimeout(r, 50));
        }
        // Another task's insert takes the other lane and commits meanwhile.
        const b = makeTaskRecord();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([store.insert([b]), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("b waited for a's group")), 20_000)))]);
        clearTimeout(timer);
        // a's next version waits for its first: not sent, so not written, while the first waits.
        let secondDone = false;
        const second = store.update([{ ...a, state: "running", epoch: 2 }]).then(() => (secondDone = true));
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(secondDone, false);
        const { rows } = await watcher.query(`SELECT state FROM ${store.schema}.tasks WHERE id = $1`, [a.id]);
        assert.deepEqual(rows, [{ state: "queued" }]);
        await holder.query("COMMIT");
        await Promise.all([first, second]);
        const got = await store.get(a.id);
        assert.deepEqual([got?.state, got?.epoch], ["running", 2]);
      } finally {
        await holder.end();
        await watcher.end();
        await store.close();
      }
    });
  });

  describe("list", () => {
    it("answers INVALID_ARGUMENT for a token that decodes to a seq beyond 2^53", async () => {
      const store = await opened();
      try {
        const token = Buffer.from("s99999999999999999999").toString("base64url");
        await rejectsWith(store.list({ pageToken: token }), Code.INVALID_ARGUMENT);
      } finally {
        await store.close();
      }
    });
  });

  describe("when the server restarts", () => {
    it("fails writes with UNAVAILABLE while it is down and works again once it is back", async () => {
      const own = await startTestPostgres();
      const store = new PostgresTaskStore({ url: own.url, connectTimeoutMs: 3_000 });
      try {
        await store.open();
        const before = makeTaskRecord();
        await store.insert([before]);
        await own.crash();
        await rejectsWith(store.insert([makeTaskRecord()]), Code.UNAVAILABLE);
        await rejectsWith(store.get(before.id), Code.UNAVAILABLE);
        await own.restart();
        const afterRestart = makeTaskRecord();
        // The pool drops the broken connections and opens new ones; the first query after a
        // restart can still meet one that has not noticed yet.
        for (let attempt = 0; ; attempt++) {
          try {
            await store.insert([afterRestart]);
            break;
          } catch (err) {
            assert.ok(attempt < 10 && TaskflowError.is(err) && err.code === Code.UNAVAILABLE, String(err));
          }
        }
        assert.ok(await store.get(before.id), "what was acknowledged before the crash is there");
        assert.ok(await store.get(afterRestart.id));
      } finally {
        await store.close().catch(() => {});
        await own.stop();
      }
    });
  });

  describe("TLS", () => {
    let pki: string;
    let tlsServer: TestPostgres;
    const openssl = (args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: ["ignore", "ignore", "pipe"] });
    const newCa = (name: string) =>
      openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`]);

    before(async () => {
      pki = mkdtempSync(join(tmpdir(), "taskflow-pg-pki-"));
      newCa("ca");
      newCa("other-ca");
      writeFileSync(join(pki, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=postgres-test"]);
      openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"]);
      tlsServer = await startTestPostgres({ tls: { cert: readFileSync(join(pki, "server.pem"), "utf8"), key: readFileSync(join(pki, "server.key"), "utf8") } });
    });
    after(async () => {
      await tlsServer?.stop();
      rmSync(pki, { recursive: true, force: true });
    });

    it("connects with TLS, checking the server's certificate against the given CA", async () => {
      const ca = readFileSync(join(pki, "ca.pem"), "utf8");
      const store = new PostgresTaskStore({ url: tlsServer.url, ssl: { ca } });
      await store.open();
      try {
        const a = makeTaskRecord();
        await store.insert([a]);
        assert.equal((await store.get(a.id))?.id, a.id);
        // The store's own connections (application_name taskflow), as the server sees them.
        const client = new pg.Client({ connectionString: tlsServer.url, ssl: { ca } });
        await client.connect();
        try {
          const { rows } = await client.query<{ ssl: boolean }>(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'taskflow'",
          );
          assert.ok(rows.length > 0, "the store has connections open");
          assert.ok(rows.every((r) => r.ssl), "every one of them uses TLS");
        } finally {
          await client.end();
        }
      } finally {
        await store.close();
      }
    });

    it("refuses a server whose certificate another CA signed (UNAVAILABLE)", async () => {
      const store = new PostgresTaskStore({ url: tlsServer.url, ssl: { ca: readFileSync(join(pki, "other-ca.pem"), "utf8") }, connectTimeoutMs: 5_000 });
      const err = await rejectsWith(store.open(), Code.UNAVAILABLE);
      assert.match(err.message, /certificate/i);
    });

    it("is refused by a TLS-only server when it connects without TLS (UNAVAILABLE)", async () => {
      const err = await rejectsWith(new PostgresTaskStore({ url: tlsServer.url, connectTimeoutMs: 5_000 }).open(), Code.UNAVAILABLE);
      assert.match(err.message, /no pg_hba\.conf entry|SSL off/);
    });
  });
});
