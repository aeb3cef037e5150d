/**
 * The write side: group commit of queued calls, and purging. Runs wherever the writing
 * connection lives (the writer thread, or the main thread with `writer: "inline"`), so what it
 * takes and returns is plain data that can cross a thread boundary.
 */
import type Database from "better-sqlite3";
import { FINAL_STATES_SQL, TASK_COLUMNS, UPDATE_SQL } from "./columns.js";

/** One `insert` or `update` call, as parameters taken when it was made. */
export interface WriteCall {
  insert: boolean;
  rows: unknown[][];
  /** The payloads of inserted tasks, by row. */
  payloads: Uint8Array[] | null;
}

/** Why one call failed: the SQLite error code and message (an Error does not cross threads whole). */
export interface WriteFailure {
  code: string;
  message: string;
}

export interface GroupResult {
  /** By call: null when it was committed. */
  failures: (WriteFailure | null)[];
  /** Transactions committed. */
  commits: number;
}

export interface Writes {
  commitGroup(calls: readonly WriteCall[]): GroupResult;
  purge(beforeMs: number): number;
}

export function prepareWrites(db: Database.Database): Writes {
  const placeholders = TASK_COLUMNS.split(",").map(() => "?").join(", ");
  const insert = db.prepare(`INSERT INTO tasks (${TASK_COLUMNS}) VALUES (${placeholders})`);
  const insertPayload = db.prepare("INSERT INTO task_payloads (seq, payload) VALUES (?, ?)");
  const update = db.prepare(UPDATE_SQL);

  const apply = (call: WriteCall) => {
    if (call.insert) {
      for (let i = 0; i < call.rows.length; i++) {
        const row = call.rows[i]!;
        insert.run(...row);
        insertPayload.run(row[0], call.payloads![i]);
      }
    } else {
      // An id that is not stored (purged meanwhile) changes nothing, which is what we want.
      for (const row of call.rows) update.run(...row);
    }
  };
  const applyAll = db.transaction((calls: readonly WriteCall[]) => {
    for (const call of calls) apply(call);
  });

  // Remembers the highest seq before deleting, in case the newest task is among the deleted, so
  // maxSeq never goes backwards. (`WHERE true` keeps SQLite's parser from reading the upsert's
  // ON as a join constraint.)
  const rememberMaxSeq = db.prepare(
    "INSERT INTO meta (key, value) SELECT 'max_seq', MAX(seq) FROM tasks WHERE true HAVING COUNT(*) > 0 " +
      "ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
  );
  const finished = `finished_at > 0 AND finished_at < ? AND state IN ${FINAL_STATES_SQL}`;
  // INDEXED BY: without statistics the planner would walk the state index, i.e. every finished
  // task, where the partial finished_at index reaches just the expired ones.
  const deletePayloads = db.prepare<[number]>(
    `DELETE FROM task_payloads WHERE seq IN (SELECT seq FROM tasks INDEXED BY tasks_finished WHERE ${finished})`,
  );
  const deleteFinished = db.prepare<[number]>(`DELETE FROM tasks INDEXED BY tasks_finished WHERE ${finished}`);
  const purge = db.transaction((beforeMs: number) => {
    rememberMaxSeq.run();
    deletePayloads.run(beforeMs);
    return deleteFinished.run(beforeMs).changes;
  });

  return {
    commitGroup(calls) {
      try {
        applyAll.immediate(calls);
        return { failures: calls.map(() => null), commits: 1 };
      } catch (err) {
        if (calls.length === 1) return { failures: [failure(err)], commits: 0 };
      }
      // The group was rolled back as a whole. Commit its calls one by one so that only the
      // failing call fails; this is the rare path, the happy path pays for no savepoints.
      let commits = 0;
      const failures = calls.map((call) => {
        try {
          applyAll.immediate([call]);
          commits++;
          return null;
        } catch (err) {
          return failure(err);
        }
      });
      return { failures, commits };
    },
    purge: (beforeMs) => purge.immediate(beforeMs),
  };
}

export function failure(err: unknown): WriteFailure {
  const code = (err as { code?: unknown })?.code;
  return { code: typeof code === "string" ? code : "", message: err instanceof Error ? err.message : String(err) };
}
