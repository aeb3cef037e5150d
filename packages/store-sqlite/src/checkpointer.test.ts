import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTaskRecord } from "@taskflow/core/testing";
import { CHECKPOINT_INTERVAL_MS, RESTART_FRAMES, type CheckpointPass } from "./checkpointer.js";
import { WRITER_CHECKPOINT_PAGES } from "./connection.js";
import { SqliteTaskStore, type SqliteTaskStoreOptions } from "./index.js";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "taskflow-sqlite-checkpoint-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const freshPath = () => join(root, `db-${++n}`, "tasks.db");

/** The WAL header's first salt: SQLite picks a new one each time it starts the WAL over. */
function walSalt(path: string): number {
  return readFileSync(`${path}-wal`).readUInt32BE(16);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const writer of ["thread", "inline"] as const) {
  describe(`SqliteTaskStore checkpoints (${writer} writer)`, () => {
    it("copies the WAL back on its own thread, so the WAL starts over long before the writer's bound", async () => {
      const options: SqliteTaskStoreOptions = { path: freshPath(), writer };
      const store = new SqliteTaskStore(options);
      await store.open();
      try {
        // One-row groups, the shape of a lightly loaded node: each commit writes several pages.
        await store.insert([makeTaskRecord({ seq: 1 })]);
        const firstSalt = walSalt(options.path);
        for (let seq = 2; seq <= 300; seq++) await store.insert([makeTaskRecord({ seq })]);
        const walBytes = statSync(`${options.path}-wal`).size;
        // Far below the bound at which the writer would checkpoint (and start the WAL over) itself.
        assert.ok(walBytes < (WRITER_CHECKPOINT_PAGES * 4096) / 4, `WAL of ${walBytes} bytes`);
        // A pass copies everything while nothing commits; the next write then starts the WAL over.
        await sleep(3 * CHECKPOINT_INTERVAL_MS);
        await store.insert([makeTaskRecord({ seq: 301 })]);
        assert.notEqual(walSalt(options.path), firstSalt, "the WAL started over");
        assert.equal(store.stats().checkpointThreadError, "");
        assert.equal((await store.list({ pageSize: 1 })).totalSize, 301);
      } finally {
        await store.close();
      }
    });
  });
}

describe("SqliteTaskStore WAL restart under steady load", () => {
  it("has the writer thread finish the checkpoint when a pass leaves the WAL long, so the next write starts it over", async () => {
    const path = freshPath();
    const store = new SqliteTaskStore({ path });
    await store.open();
    type Inside = { checkpointer: { close(): Promise<void> }; onCheckpointPass(pass: CheckpointPass): void };
    const inside = store as unknown as Inside;
    try {
      // Without the checkpoint thread nothing copies the WAL back below the connections' bound.
      await inside.checkpointer.close();
      for (let seq = 1; seq <= 50; seq++) await store.insert([makeTaskRecord({ seq })]);
      const salt = walSalt(path);
      inside.onCheckpointPass({ at: 0, ms: 1, frames: RESTART_FRAMES - 1, copied: 0 });
      await store.insert([makeTaskRecord({ seq: 51 })]);
      assert.equal(walSalt(path), salt, "a WAL under the threshold is left alone");
      inside.onCheckpointPass({ at: 0, ms: 1, frames: RESTART_FRAMES, copied: 0 });
      // Sent after the checkpoint request, so it commits after it (on the thread, in order).
      await store.insert([makeTaskRecord({ seq: 52 })]);
      assert.notEqual(walSalt(path), salt, "the WAL started over");
      assert.equal((await store.list({ pageSize: 1 })).totalSize, 52);
    } finally {
      await store.close();
    }
  });
});

describe("SqliteTaskStore close", () => {
  it("finishes in a process that nothing else keeps alive (the threads are unreferenced while idle)", async () => {
    const path = freshPath();
    const index = new URL("./index.js", import.meta.url).href;
    const script = `
      const { SqliteTaskStore } = await import(${JSON.stringify(index)});
      const store = new SqliteTaskStore({ path: ${JSON.stringify(path)} });
      await store.open();
      await store.close();
      console.log("closed");
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, "exit")) as [number];
    assert.equal(code, 0);
    assert.equal(out.trim(), "closed", "close resolved before the process ran out of work");
  });
});
