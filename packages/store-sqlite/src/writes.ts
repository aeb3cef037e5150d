/**
 * The write side: group commit of queued calls, and purging. Runs wherever the writing
 * connection lives (the writer thread, or the main thread with `writer: "inline"`), so what it
 * takes and returns is plain data that can cross a thread boundary.
 */
import type Database from "better-sqlite3";
import type { ThreadTiming } from "./trace.js";
import { FINAL_STATES_SQL, INSERT_RESULT, TASK_COLUMNS, UPDATE_RESULT, UPDATE_SQL } from "./columns.js";

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

/**
 * A group as it crosses to the writer thread. Structured clone is slow for many small objects
 * and typed arrays (about 10 µs a call when each call travels as its own object with its own
 * payload buffer), so the group travels as flat arrays plus one buffer holding every payload and
 * result, which is transferred rather than copied.
 */
export interface WireGroup {
  /** By call. */
  inserts: boolean[];
  /** Rows of each call. */
  counts: number[];
  /** Every row of every call, in order, with the result replaced by null. */
  rows: unknown[][];
  /** By row in order: an insert's payload length, then (inserts and updates) its result's length or -1 for none. */
  lengths: number[];
  bytes: Uint8Array;
}

/** Copies a group's bytes into one new buffer; the rows' result slots are cleared (they are ours). */
export function encodeGroup(calls: readonly WriteCall[]): WireGroup {
  let total = 0;
  for (const call of calls) {
    const resultAt = call.insert ? INSERT_RESULT : UPDATE_RESULT;
    for (const row of call.rows) total += (row[resultAt] as Uint8Array | null)?.byteLength ?? 0;
    if (call.payloads) for (const p of call.payloads) total += p.byteLength;
  }
  const bytes = new Uint8Array(total);
  const group: WireGroup = { inserts: [], counts: [], rows: [], lengths: [], bytes };
  let offset = 0;
  const put = (b: Uint8Array) => {
    bytes.set(b, offset);
    offset += b.byteLength;
    group.lengths.push(b.byteLength);
  };
  for (const call of calls) {
    group.inserts.push(call.insert);
    group.counts.push(call.rows.length);
    const resultAt = call.insert ? INSERT_RESULT : UPDATE_RESULT;
    for (let i = 0; i < call.rows.length; i++) {
      const row = call.rows[i]!;
      if (call.payloads) put(call.payloads[i]!);
      const result = row[resultAt] as Uint8Array | null;
      if (result) put(result);
      else group.lengths.push(-1);
      row[resultAt] = null;
      group.rows.push(row);
    }
  }
  return group;
}

/** The calls of a group, with views into its buffer for the bytes. */
export function decodeGroup(group: WireGroup): WriteCall[] {
  const calls: WriteCall[] = [];
  let row = 0;
  let slot = 0;
  let offset = 0;
  const take = (): Uint8Array | null => {
    const length = group.lengths[slot++]!;
    if (length < 0) return null;
    offset += length;
    return group.bytes.subarray(offset - length, offset);
  };
  for (let c = 0; c < group.inserts.length; c++) {
    const insert = group.inserts[c]!;
    const resultAt = insert ? INSERT_RESULT : UPDATE_RESULT;
    const rows = group.rows.slice(row, row + group.counts[c]!);
    row += rows.length;
    const payloads: Uint8Array[] | null = insert ? [] : null;
    for (const r of rows) {
      if (payloads) payloads.push(take()!);
      r[resultAt] = take();
    }
    calls.push({ insert, rows, payloads });
  }
  return calls;
}

export interface GroupResult {
  /** By call: null when it was committed. */
  failures: (WriteFailure | null)[];
  /** Transactions committed. */
  commits: number;
  /** The writer thread's timing of it, when tracing (see trace.ts). */
  timing?: ThreadTiming;
}

/** A schedule saved (its encoded body) or deleted; small, so it crosses threads as it is. */
export type ScheduleWrite = { save: true; tenant: string; id: string; body: string } | { save: false; tenant: string; id: string };

export interface Writes {
  commitGroup(calls: readonly WriteCall[]): GroupResult;
  purge(beforeMs: number): number;
  /** Applies one schedule write in its own transaction; returns the rows it changed. */
  schedule(write: ScheduleWrite): number;
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

  const saveSchedule = db.prepare<[string, string, string]>(
    "INSERT INTO schedules (tenant, id, body) VALUES (?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET body = excluded.body",
  );
  const deleteSchedule = db.prepare<[string, string]>("DELETE FROM schedules WHERE tenant = ? AND id = ?");

  return {
    schedule: (write) => (write.save ? saveSchedule.run(write.tenant, write.id, write.body) : deleteSchedule.run(write.tenant, write.id)).changes,
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
