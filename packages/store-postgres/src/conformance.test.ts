import { after, before } from "node:test";
import { storeConformance } from "@taskflow/core/testing";
import { PostgresTaskStore, type PostgresTaskStoreOptions } from "./index.js";
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
  storeConformance(name, {
    makeStore: () => new PostgresTaskStore({ url: pg!.url, schema: `conformance_${++n}`, ...options }),
    reopen: (closed) => new PostgresTaskStore({ url: pg!.url, schema: closed.schema, ...options }),
  });
}
