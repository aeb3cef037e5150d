import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { SqliteTaskStore } from "./index.js";

const CHILD = fileURLToPath(new URL("./crash-child.js", import.meta.url));

/** What a child acknowledged before it died: seqs inserted and seqs marked running. */
interface Acked {
  inserted: Set<number>;
  updated: Set<number>;
  readyAt: number;
}

/**
 * Runs the child until it has acknowledged at least `minInserts` tasks plus a random extra
 * moment, then SIGKILLs it in the middle of its writes.
 */
async function runAndKill(path: string, synchronous: string, writer: string, minInserts: number): Promise<Acked> {
  const acked: Acked = { inserted: new Set(), updated: new Set(), readyAt: -1 };
  const child: ChildProcess = spawn(process.execPath, [CHILD, path, synchronous, writer], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      let buffered = "";
      let killScheduled = false;
      child.on("error", reject);
      child.on("exit", (code, signal) => {
        if (signal === "SIGKILL") resolve();
        else reject(new Error(`child exited by itself (code ${code}, signal ${signal}): ${stderr}`));
      });
      child.stdout!.on("data", (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split("\n");
        // Only whole lines count: a torn last line was not fully printed before the kill.
        buffered = lines.pop()!;
        for (const line of lines) {
          const [what, a, b] = line.split(" ");
          if (what === "ready") acked.readyAt = Number(a);
          const target = what === "ins" ? acked.inserted : what === "upd" ? acked.updated : undefined;
          if (target) for (let s = Number(a); s < Number(a) + Number(b); s++) target.add(s);
        }
        if (!killScheduled && acked.inserted.size >= minInserts) {
          killScheduled = true;
          setTimeout(() => child.kill("SIGKILL"), Math.floor(Math.random() * 50));
        }
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  return acked;
}

async function verify(path: string, acked: Acked, previouslyAcked: Set<number>): Promise<void> {
  const raw = new Database(path);
  try {
    assert.equal(raw.pragma("integrity_check", { simple: true }), "ok");
  } finally {
    raw.close();
  }
  const store = new SqliteTaskStore({ path });
  await store.open();
  try {
    for (const seq of [...previouslyAcked, ...acked.inserted]) {
      const task = await store.get(`crash-${seq}`);
      assert.ok(task, `acknowledged task ${seq} survived`);
      assert.equal(task.seq, seq);
      assert.equal((await store.findByIdempotencyKey("default", `crash-key-${seq}`))?.id, task.id);
      const expected = new Uint8Array(32).map((_, i) => (seq * 31 + i) & 0xff);
      assert.deepEqual(new Uint8Array(task.payload), expected, `payload of ${seq}`);
    }
    for (const seq of acked.updated) {
      const task = await store.get(`crash-${seq}`);
      assert.equal(task?.state, "running", `acknowledged update of ${seq} survived`);
      assert.equal(task.epoch, 1);
    }
    assert.ok((await store.maxSeq()) >= Math.max(0, ...acked.inserted));
  } finally {
    await store.close();
  }
}

describe("SqliteTaskStore under kill -9", () => {
  for (const [synchronous, writer] of [
    ["normal", "thread"],
    ["full", "thread"],
    ["normal", "inline"],
  ] as const) {
    it(`keeps every acknowledged write (synchronous ${synchronous}, ${writer} writer, three kills)`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "taskflow-sqlite-crash-"));
      try {
        const path = join(dir, "tasks.db");
        const survived = new Set<number>();
        for (let round = 0; round < 3; round++) {
          const acked = await runAndKill(path, synchronous, writer, 2_000);
          assert.ok(acked.inserted.size >= 2_000, "the child got work done before the kill");
          // The restarted child continued after the highest seq stored: nothing acknowledged
          // before was overwritten or reused.
          assert.ok(acked.readyAt >= Math.max(0, ...survived), `round ${round} resumed after seq ${acked.readyAt}`);
          await verify(path, acked, survived);
          for (const seq of acked.inserted) survived.add(seq);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
