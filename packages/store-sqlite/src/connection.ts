/** Opening a connection the same way on the main thread and in the writer thread. */
import Database from "better-sqlite3";

export type Synchronous = "normal" | "full";

/**
 * The WAL size (pages of 4 KiB: 40 MiB) at which a committing connection checkpoints by itself,
 * in its COMMIT. SQLite's default is 1000; the checkpoint thread keeps the WAL well below this.
 */
export const WRITER_CHECKPOINT_PAGES = 10_000;

export function openConnection(path: string, synchronous: Synchronous): Database.Database {
  const db = new Database(path);
  try {
    // WAL: readers never block the writer and a commit appends to one file; with NORMAL it
    // needs no fsync, which is what lets group commit reach tens of thousands of rows/s.
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal" && !db.memory) throw new Error(`could not switch to WAL mode (got ${String(mode)})`);
    db.pragma(`synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
    // The other connection of this store (reads on the main thread, writes on the writer
    // thread) or another process (a backup, the sqlite3 shell) holding a lock for a moment
    // should delay us, not fail a submit.
    db.pragma("busy_timeout = 5000");
    // 64 MiB of page cache keeps the indexes of a large table hot.
    db.pragma("cache_size = -65536");
    db.pragma("temp_store = MEMORY");
    // Checkpoints run on a thread of their own (checkpointer.ts); a connection checkpoints
    // after its own commit only past this bound, when that thread cannot keep up or is gone.
    db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
