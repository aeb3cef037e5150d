import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { Code, Reason, TaskflowError, type TaskRecord } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { PostgresLeaderLease, PostgresTaskStore, type PostgresLeaderLeaseOptions } from "./index.js";
import { startTestPostgres, type TestPostgres } from "./testing/index.js";

let server: TestPostgres;
before(async () => {
  server = await startTestPostgres();
});
after(() => server?.stop());

let n = 0;
/** Leases (and stores) of one test share a fresh schema: one lease row per test. */
function cluster() {
  const schema = `lease_${++n}`;
  const opened: { close(): Promise<void> }[] = [];
  return {
    schema,
    async lease(holder: string, options: Partial<PostgresLeaderLeaseOptions> = {}): Promise<PostgresLeaderLease> {
      const lease = new PostgresLeaderLease({ url: server.url, schema, holder, ttlMs: 1_000, ...options });
      await lease.open();
      opened.push(lease);
      return lease;
    },
    async store(lease: PostgresLeaderLease): Promise<PostgresTaskStore> {
      const store = new PostgresTaskStore({ url: server.url, schema, leaderEpoch: () => lease.epoch });
      await store.open();
      opened.push(store);
      return store;
    },
    /** A plain connection in the test's schema, standing for the server's own clock and locks. */
    async sql(): Promise<pg.Client> {
      const client = new pg.Client({ connectionString: server.url, options: `-c search_path=${schema}` });
      await client.connect();
      opened.push({ close: () => client.end() });
      return client;
    },
    close: () => Promise.all(opened.map((o) => o.close())),
  };
}

const EXPIRE = "UPDATE taskflow_leader SET expires_at = clock_timestamp() - interval '1 second'";

/** Polls until `check` gives a value (no fixed sleeps: the machine may be loaded). */
async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function fenced(promise: Promise<unknown>): Promise<TaskflowError> {
  const err = await promise.then(
    () => assert.fail("a deposed leader's write went through"),
    (e: unknown) => e,
  );
  assert.ok(TaskflowError.is(err), String(err));
  assert.equal(err.code, Code.UNAVAILABLE, err.message);
  assert.equal(err.reason, Reason.NOT_LEADER, err.message);
  return err;
}

describe("PostgresLeaderLease", () => {
  it("refuses bad options naming them", () => {
    assert.throws(() => new PostgresLeaderLease({ url: server.url, holder: "" }), /holder must be this node's name/);
    assert.throws(() => new PostgresLeaderLease({ url: server.url, holder: "a", ttlMs: 10 }), /ttlMs must be a whole number ≥ 100, got 10/);
    assert.throws(() => new PostgresLeaderLease({ url: server.url, holder: "a", ttlMs: 1000, intervalMs: 1000 }), /intervalMs must be a whole number between 0 and ttlMs/);
  });

  it("lets one node hold it at a time, with an epoch that grows on every change of holder", async () => {
    const c = cluster();
    try {
      const a = await c.lease("a", { ttlMs: 60_000 });
      const b = await c.lease("b", { ttlMs: 60_000 });
      assert.equal(await a.tryAcquire(), 1);
      assert.equal(await b.tryAcquire(), undefined, "held by a");
      assert.equal(b.epoch, undefined);
      assert.equal(await a.renew(), true);
      assert.deepEqual({ ...(await b.state()), expiresInMs: 0 }, { holder: "a", epoch: 1, expiresInMs: 0 });
      await a.release();
      assert.equal(a.epoch, undefined);
      assert.equal(await b.tryAcquire(), 2, "a released it: b takes it at once");
      assert.equal(await a.renew(), false, "a released it");
    } finally {
      await c.close();
    }
  });

  it("goes to exactly one of many nodes racing for it", async () => {
    const c = cluster();
    try {
      const leases = await Promise.all(["a", "b", "c", "d", "e"].map((h) => c.lease(h, { ttlMs: 60_000 })));
      const epochs = await Promise.all(leases.map((l) => l.tryAcquire()));
      assert.deepEqual(
        epochs.filter((e) => e !== undefined),
        [1],
      );
    } finally {
      await c.close();
    }
  });

  it("expires when not renewed, and a renewal after expiry fails even if nobody took it", async () => {
    const c = cluster();
    try {
      const a = await c.lease("a", { ttlMs: 300 });
      assert.equal(await a.tryAcquire(), 1);
      await eventually(async () => ((await a.state()).expiresInMs < 0 ? true : undefined), "the lease to expire");
      assert.equal(a.epoch, undefined, "a's own clock says it may have expired too");
      assert.equal(await a.renew(), false);
      assert.equal(await a.tryAcquire(), 2, "taking it again is a new epoch");
    } finally {
      await c.close();
    }
  });

  describe("fencing", () => {
    it("refuses every write of a deposed leader that still believes it leads", async () => {
      const c = cluster();
      try {
        // a holds a long lease locally... but its row on the server is made to expire, as if a
        // was paused (GC, a stopped VM) past its lease: b takes over, and a never learns it.
        const a = await c.lease("a", { ttlMs: 60_000 });
        const storeA = await c.store(a);
        assert.equal(await a.tryAcquire(), 1);
        const early = makeTaskRecord();
        await storeA.insert([early]);
        const b = await c.lease("b", { ttlMs: 60_000 });
        const storeB = await c.store(b);
        // The server's clock moves on: a's lease ends there (a cannot tell).
        await (await c.sql()).query(EXPIRE);
        assert.equal(await b.tryAcquire(), 2);
        assert.equal(a.epoch, 1, "a still believes it leads");

        const late = makeTaskRecord();
        const err = await fenced(storeA.insert([late]));
        assert.match(err.message, /fenced: this node's leader epoch 1 is over; epoch 2 \(b\) leads now/);
        await fenced(storeA.update([{ ...early, state: "cancelled", finishedAt: 5 }]));
        await fenced(storeA.purgeFinished(Date.now()));
        assert.equal(await storeB.get(late.id), undefined, "the late insert wrote nothing");
        assert.equal((await storeB.get(early.id))?.state, "queued", "the late update wrote nothing");

        // The new leader writes; the old one still reads.
        const fromB: TaskRecord = makeTaskRecord();
        await storeB.insert([fromB]);
        await storeB.update([{ ...early, state: "running", epoch: 1, workerId: "w" }]);
        assert.equal((await storeA.get(early.id))?.state, "running");
        assert.equal(await a.renew(), false, "a finds out at its next renewal");
        assert.equal(a.epoch, undefined);
        await fenced(storeA.insert([makeTaskRecord()]));
      } finally {
        await c.close();
      }
    });

    it("makes a new leader wait for a write that checked the old epoch, so that write commits first", async () => {
      const c = cluster();
      try {
        const a = await c.lease("a", { ttlMs: 60_000 });
        assert.equal(await a.tryAcquire(), 1);
        const storeA = await c.store(a);
        // a's lease has just ended on the server, and nobody has taken it yet…
        await (await c.sql()).query(EXPIRE);
        // …when a's write transaction runs, as the store runs it: the fence check (epoch 1 is
        // still the newest), then the write.
        const writer = await c.sql();
        await writer.query("BEGIN");
        assert.deepEqual((await writer.query("SELECT epoch FROM taskflow_leader WHERE id = 1 FOR KEY SHARE")).rows, [{ epoch: "1" }]);
        await writer.query("INSERT INTO taskflow_meta (key, value) VALUES ('written-under', 1)");
        // b takes the lease meanwhile: its lock of the lease row (FOR UPDATE) waits for a's transaction.
        const b = await c.lease("b", { ttlMs: 60_000 });
        const taking = b.tryAcquire();
        const watcher = await c.sql();
        await eventually(async () => {
          const { rows } = await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH free AS%'");
          return rows[0].n > 0 ? true : undefined;
        }, "b's takeover to wait for a's transaction");
        await writer.query("COMMIT");
        assert.equal(await taking, 2);
        assert.deepEqual((await watcher.query("SELECT value::int AS v FROM taskflow_meta WHERE key = 'written-under'")).rows, [{ v: 1 }], "a's write committed, before epoch 2");
        await fenced(storeA.insert([makeTaskRecord()]));
      } finally {
        await c.close();
      }
    });

    it("fences a group inside its one statement: it writes while the epoch holds, waits for a takeover, then writes nothing", async () => {
      const c = cluster();
      try {
        const a = await c.lease("a", { ttlMs: 60_000 });
        assert.equal(await a.tryAcquire(), 1);
        const storeA = await c.store(a);
        const early = makeTaskRecord();
        await storeA.insert([early]);
        // While a leads: an insert and an update in one group (one fenced statement) are written.
        const kept = makeTaskRecord();
        await Promise.all([storeA.insert([kept]), storeA.update([{ ...early, state: "assigned", workerId: "w1" }])]);
        assert.ok(await storeA.get(kept.id));
        assert.equal((await storeA.get(early.id))?.state, "assigned");

        // A takeover as b's runs: the lease row locked FOR UPDATE, then a new epoch and holder.
        const taker = await c.sql();
        await taker.query("BEGIN");
        await taker.query("SELECT epoch FROM taskflow_leader WHERE id = 1 FOR UPDATE");
        const late = makeTaskRecord();
        const writing = Promise.allSettled([storeA.insert([late]), storeA.update([{ ...early, state: "running", workerId: "w1" }])]);
        const watcher = await c.sql();
        await eventually(async () => {
          const { rows } = await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH fence AS%'");
          return rows[0].n > 0 ? true : undefined;
        }, "a's group to wait for the takeover's lock of the lease row");
        await taker.query("UPDATE taskflow_leader SET epoch = 2, holder = 'b' WHERE id = 1");
        await taker.query("COMMIT");
        for (const settled of await writing) {
          assert.equal(settled.status, "rejected");
          const err = await fenced(Promise.reject((settled as PromiseRejectedResult).reason));
          assert.match(err.message, /fenced: this node's leader epoch 1 is over; epoch 2 \(b\) leads now/);
        }
        assert.equal(await storeA.get(late.id), undefined, "the insert wrote nothing");
        assert.equal((await storeA.get(early.id))?.state, "assigned", "the update wrote nothing");
      } finally {
        await c.close();
      }
    });

    it("renews while the leader's own write transactions hold the fence lock", async () => {
      const c = cluster();
      try {
        const a = await c.lease("a", { ttlMs: 60_000 });
        assert.equal(await a.tryAcquire(), 1);
        const writer = await c.sql();
        await writer.query("BEGIN");
        await writer.query("SELECT epoch FROM taskflow_leader WHERE id = 1 FOR KEY SHARE");
        // A busy leader always has a write in flight: its renewal must not queue behind it.
        assert.equal(await a.renew(), true);
        await writer.query("COMMIT");
      } finally {
        await c.close();
      }
    });

    it("refuses writes at once on a node that never held the lease", async () => {
      const c = cluster();
      try {
        const standby = await c.lease("standby");
        const store = await c.store(standby);
        const err = await fenced(store.insert([makeTaskRecord()]));
        assert.match(err.message, /does not hold the leader lease/);
      } finally {
        await c.close();
      }
    });
  });

  describe("start", () => {
    it("tries again right at the expiry of a dead leader's lease, not a whole interval later", async () => {
      const c = cluster();
      try {
        // An interval just under the ttl: trying only every interval, b would take the lease
        // about 0.8 s after it expired (its tries at 0, 0.9 s and 1.8 s against an expiry at 1 s).
        const a = await c.lease("a", { ttlMs: 1_000, intervalMs: 900 });
        const b = await c.lease("b", { ttlMs: 1_000, intervalMs: 900 });
        const d = await c.lease("d", { ttlMs: 1_000, intervalMs: 900 });
        // a takes it and dies at once: no loop, no renewal.
        assert.equal(await a.tryAcquire(), 1);
        // b and d race for it; the loser names the winner, read right after the race.
        let electedAt = 0;
        const elected = new Promise<{ holder: string; epoch: number; freeForMs: number | undefined }>((resolve) => {
          for (const [holder, lease] of [["b", b], ["d", d]] as const) {
            lease.start({
              elected: (epoch, info) => {
                electedAt = performance.now();
                resolve({ holder, epoch, ...info });
              },
              observed: (row) => {
                if (row.epoch === 2) named.push({ by: holder, holder: row.holder, afterMs: performance.now() - electedAt });
              },
            });
          }
        });
        const named: { by: string; holder: string; afterMs: number }[] = [];
        const won = await elected;
        assert.equal(won.epoch, 2);
        assert.ok(won.freeForMs !== undefined && won.freeForMs >= 0, `the time the lease sat free is reported: ${won.freeForMs}`);
        assert.ok(won.freeForMs < 400, `${won.holder} took the lease ${won.freeForMs} ms after it expired (interval 900 ms)`);
        const loser = won.holder === "b" ? "d" : "b";
        const seen = await eventually(async () => named.find((n) => n.by === loser), "the loser to read the new holder");
        assert.equal(seen.holder, won.holder);
        assert.ok(seen.afterMs < 400, `the loser named the new leader ${Math.round(seen.afterMs)} ms after the election (interval 900 ms)`);
      } finally {
        await c.close();
      }
    });

    it("elects a standby once the leader stops renewing, and tells the leader it lost", async () => {
      const c = cluster();
      try {
        // 3 s leases renewed every 100 ms: a loaded machine can stall a renewal for a while.
        const a = await c.lease("a", { ttlMs: 3_000, intervalMs: 100 });
        const b = await c.lease("b", { ttlMs: 3_000, intervalMs: 100 });
        const events: string[] = [];
        a.start({ elected: (e) => events.push(`a elected ${e}`), lost: (e) => events.push(`a lost ${e}`) });
        await eventually(async () => (a.epoch === 1 ? true : undefined), "a to lead");
        b.start({ elected: (e) => events.push(`b elected ${e}`), lost: (e) => events.push(`b lost ${e}`) });
        const storeB = await c.store(b);
        // a keeps renewing: b stays a standby (checked over several of its intervals).
        const stateWhileA = await eventually(async () => {
          const s = await b.state();
          return s.epoch === 1 && s.expiresInMs > 0 ? s : undefined;
        }, "a's renewals");
        assert.equal(stateWhileA.holder, "a");
        await fenced(storeB.insert([makeTaskRecord()]));
        // a stops renewing (a pause): b takes over after the ttl, and a finds out when it resumes,
        // at its first renewal.
        a.stop();
        await eventually(async () => (b.epoch === 2 ? true : undefined), "b to take over");
        await storeB.insert([makeTaskRecord()]);
        a.start({ elected: (e) => events.push(`a elected ${e}`), lost: (e) => events.push(`a lost ${e}`) });
        await eventually(async () => (events.includes("a lost 1") ? true : undefined), "a to find out it lost");
        assert.equal(a.epoch, undefined);
        assert.deepEqual(events, ["a elected 1", "b elected 2", "a lost 1"]);
      } finally {
        await c.close();
      }
    });
  });
});
