import { after, before } from "node:test";
import { scheduleStoreConformance, storeConformance } from "@taskflow/core/testing";
import { PostgresLeaderLease, PostgresTaskStore, type PostgresTaskStoreOptions } from "./index.js";
import { startTestPostgres, type TestPostgres } from "./testing/index.js";

// One real server for the file; every test gets a schema of its own in it.
let pg: TestPostgres | undefined;
before(async () => {
  pg = await startTestPostgres();
});
after(() => pg?.stop());

let n = 0;
const configurations: { name: string; options: Omit<PostgresTaskStoreOptions, "url" | "schema"> }[] = [
  { name: "PostgresTaskStore (defaults)", options: {} },
  { name: "PostgresTaskStore (2 ms group commit, 2 connections)", options: { groupCommitMaxDelayMs: 2, poolSize: 2 } },
];

for (const { name, options } of configurations) {
  const kit = {
    makeStore: () => new PostgresTaskStore({ url: pg!.url, schema: `conformance_${++n}`, ...options }),
    reopen: (closed: PostgresTaskStore) => new PostgresTaskStore({ url: pg!.url, schema: closed.schema, ...options }),
    schedulesOf: (store: PostgresTaskStore) => store.schedules,
  };
  storeConformance(name, kit);
  scheduleStoreConformance(name, kit);
}

// Every write fenced by the leader epoch (standby control nodes, ADR 0016): the same contract.
const leases = new Map<string, PostgresLeaderLease>();
async function fencedStore(schema: string): Promise<PostgresTaskStore> {
  let lease = leases.get(schema);
  if (!lease) {
    lease = new PostgresLeaderLease({ url: pg!.url, schema, holder: "conformance", ttlMs: 600_000 });
    await lease.open();
    if ((await lease.tryAcquire()) === undefined) throw new Error("a fresh schema's lease is free");
    leases.set(schema, lease);
  }
  const held = lease;
  return new PostgresTaskStore({ url: pg!.url, schema, leaderEpoch: () => held.epoch });
}
const fencedKit = {
  makeStore: () => fencedStore(`fenced_${++n}`),
  reopen: (closed: PostgresTaskStore) => fencedStore(closed.schema),
  schedulesOf: (store: PostgresTaskStore) => store.schedules,
  dispose: async (store: PostgresTaskStore) => {
    await leases.get(store.schema)?.close();
    leases.delete(store.schema);
  },
};
storeConformance("PostgresTaskStore (writes fenced by a held leader lease)", fencedKit);
scheduleStoreConformance("PostgresTaskStore (writes fenced by a held leader lease)", fencedKit);
