import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { makeTaskRecord } from "@taskflow/core/testing";
import { CHECKPOINT_INTERVAL_MS, CHECKPOINT_RETRY_MS, RESTART_FRAMES, type CheckpointPass } from "./checkpointer.js";
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

/** Writes `file` until its file system has no byte left. */
function fillUp(file: string): void {
  const fd = openSync(file, "w");
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

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

describe("SqliteTaskStore checkpoints on a full disk", () => {
  // A real full file system: a tiny tmpfs, which only root can mount.
  const skip = process.getuid?.() === 0 ? false : "needs root to mount a tmpfs";

  it("keeps trying while the database file cannot grow, and takes over again once there is space", { skip }, async () => {
    const dir = join(root, `full-${++n}`);
    mkdirSync(dir);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]);
    const path = join(dir, "tasks.db");
    const filler = join(dir, "filler");
    const store = new SqliteTaskStore({ path });
    let reader: Database.Database | undefined;
    try {
      await store.open();
      await store.insert([makeTaskRecord({ seq: 1 })]);
      // A reader's snapshot from before the next writes (a backup, say) keeps the checkpoint
      // from copying them, so the database file still has to grow to take them in.
      reader = new Database(path, { readonly: true });
      reader.prepare("BEGIN").run();
      reader.prepare("SELECT COUNT(*) FROM tasks").get();
      const payload = new Uint8Array(4096).fill(7);
      await store.insert(Array.from({ length: 100 }, (_, i) => makeTaskRecord({ seq: i + 2, payload })));
      fillUp(filler);
      reader.prepare("COMMIT").run();
      reader.close();
      reader = undefined;
      await until("a pass failed for want of space", () => store.stats().checkpointThreadError !== "");
      assert.match(store.stats().checkpointThreadError, /full/);

      unlinkSync(filler);
      // The thread tries again (it used to stop for good, leaving checkpoints to the commits).
      await until("a pass succeeded again", () => store.stats().checkpointThreadError === "", 5 * CHECKPOINT_RETRY_MS);
      const salt = walSalt(path);
      await sleep(3 * CHECKPOINT_INTERVAL_MS);
      await store.insert([makeTaskRecord({ seq: 200 })]);
      assert.notEqual(walSalt(path), salt, "everything was copied back, so the WAL started over");
      assert.equal((await store.list({ pageSize: 1 })).totalSize, 102);
    } finally {
      reader?.close();
      await store.close().catch(() => {});
      execFileSync("umount", ["-l", dir]);
    }
  });
});
