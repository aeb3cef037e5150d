import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { storeConformance } from "@taskflow/core/testing";
import { SqliteTaskStore } from "./index.js";

const freshPath = () => join(mkdtempSync(join(tmpdir(), "taskflow-sqlite-")), "tasks.db");

storeConformance("SqliteTaskStore", {
  makeStore: () => new SqliteTaskStore({ path: freshPath() }),
  reopen: (closed) => new SqliteTaskStore({ path: closed.path }),
  dispose: (store) => rmSync(dirname(store.path), { recursive: true, force: true }),
});

storeConformance("SqliteTaskStore (synchronous full, 2 ms group commit)", {
  makeStore: () => new SqliteTaskStore({ path: freshPath(), synchronous: "full", groupCommitMaxDelayMs: 2 }),
  reopen: (closed) => new SqliteTaskStore({ path: closed.path, synchronous: "full", groupCommitMaxDelayMs: 2 }),
  dispose: (store) => rmSync(dirname(store.path), { recursive: true, force: true }),
});
