import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { scheduleStoreConformance, storeConformance } from "@taskflow/core/testing";
import { SqliteTaskStore, type SqliteTaskStoreOptions } from "./index.js";

const freshPath = () => join(mkdtempSync(join(tmpdir(), "taskflow-sqlite-")), "tasks.db");

const configurations: { name: string; options: Omit<SqliteTaskStoreOptions, "path"> }[] = [
  { name: "SqliteTaskStore (defaults: writer thread, synchronous normal)", options: {} },
  { name: "SqliteTaskStore (inline writer)", options: { writer: "inline" } },
  { name: "SqliteTaskStore (synchronous full, 2 ms group commit)", options: { synchronous: "full", groupCommitMaxDelayMs: 2 } },
];

for (const { name, options } of configurations) {
  const kit = {
    makeStore: () => new SqliteTaskStore({ path: freshPath(), ...options }),
    reopen: (closed: SqliteTaskStore) => new SqliteTaskStore({ path: closed.path, ...options }),
    dispose: (store: SqliteTaskStore) => rmSync(dirname(store.path), { recursive: true, force: true }),
    schedulesOf: (store: SqliteTaskStore) => store.schedules,
  };
  storeConformance(name, kit);
  scheduleStoreConformance(name, kit);
}
