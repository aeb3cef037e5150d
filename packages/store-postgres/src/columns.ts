/**
 * How a TaskRecord maps onto the `tasks` table, both ways, and the batched statements: a group's
 * inserts and updates each go as one statement over `UNNEST` of one array per column, so the text
 * of the statement is the same for 1 row or 5,000 (prepared once per connection, planned once)
 * and a group of any size costs one round trip.
 */
import { TASK_STATES, decodeSpecAttributes, encodeSpecAttributes, isFinal, type AttemptRecord, type TaskRecord, type TaskState } from "@taskflow/core";

const sqlList = (states: readonly string[]) => `(${states.map((s) => `'${s}'`).join(", ")})`;
export const FINAL_STATES_SQL = sqlList(TASK_STATES.filter(isFinal));

/** A column: its name, its Postgres type, and how a record gives its value. */
interface Column {
  name: string;
  type: string;
  value(t: TaskRecord): unknown;
}

const column = (name: string, type: string, value: (t: TaskRecord) => unknown): Column => ({ name, type, value });

/** A Uint8Array as a Buffer over the same memory: node-postgres encodes Buffers as bytea. */
function buffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Most tasks require no labels: skip JSON.stringify for them. */
function labelsJson(labels: Readonly<Record<string, string>>): string {
  for (const _ in labels) return JSON.stringify(labels);
  return "{}";
}

/** What can change after submission: what an update writes. */
const MUTABLE: readonly Column[] = [
  column("state", "text", (t) => t.state),
  column("priority", "integer", (t) => t.priority),
  column("max_attempts", "integer", (t) => t.maxAttempts),
  column("timeout_ms", "bigint", (t) => t.timeoutMs),
  column("expected_duration_ms", "bigint", (t) => t.expectedDurationMs),
  column("attempt", "integer", (t) => t.attempt),
  column("epoch", "bigint", (t) => t.epoch),
  column("worker_id", "text", (t) => t.workerId),
  column("assigned_at", "bigint", (t) => t.assignedAt),
  column("started_at", "bigint", (t) => t.startedAt),
  column("finished_at", "bigint", (t) => t.finishedAt),
  column("not_before", "bigint", (t) => t.notBefore),
  column("error", "text", (t) => t.error),
  column("waiting_reason", "text", (t) => t.waitingReason),
  column("required_labels", "jsonb", (t) => labelsJson(t.requiredLabels)),
  column("attempts", "jsonb", (t) => JSON.stringify(t.attempts)),
  column("result", "bytea", (t) => (t.result === undefined ? null : buffer(t.result))),
];

/** Fixed at submission: written by the insert only. `seq` and `id` also identify the row of an update. */
const FIXED: readonly Column[] = [
  column("seq", "bigint", (t) => t.seq),
  column("id", "text", (t) => t.id),
  column("type", "text", (t) => t.type),
  column("tenant", "text", (t) => t.tenant),
  column("client_id", "text", (t) => t.clientId),
  column("idempotency_key", "text", (t) => t.idempotencyKey),
  column("created_at", "bigint", (t) => t.createdAt),
  column("payload", "bytea", (t) => buffer(t.payload)),
  column("attributes", "text", (t) => encodeSpecAttributes(t)),
];

const INSERTED = [...FIXED, ...MUTABLE];
const UPDATE_KEY = FIXED.slice(0, 2);
const UPDATED = [...UPDATE_KEY, ...MUTABLE];

const unnest = (columns: readonly Column[]) => `UNNEST(${columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(", ")})`;

/**
 * Inserts every row of the arrays. No ON CONFLICT: a duplicate id, seq or idempotency key fails
 * the statement, and the store then retries the group call by call so that only the call with
 * the duplicate fails (see `PostgresTaskStore`).
 */
export const INSERT_SQL = `INSERT INTO tasks (${INSERTED.map((c) => c.name).join(", ")}) SELECT * FROM ${unnest(INSERTED)}`;

/** Rewrites the mutable columns of the rows found by (seq, id); a row that is gone is skipped. */
export const UPDATE_SQL =
  `UPDATE tasks t SET ${MUTABLE.map((c) => `${c.name} = u.${c.name}`).join(", ")} ` +
  `FROM ${unnest(UPDATED)} AS u(${UPDATED.map((c) => c.name).join(", ")}) ` +
  "WHERE t.seq = u.seq AND t.id = u.id";

/** The UPDATE of {@link UPDATE_SQL} with its arrays from parameter `offset + 1` on. */
const updateFrom = (offset: number) =>
  `UPDATE tasks t SET ${MUTABLE.map((c) => `${c.name} = u.${c.name}`).join(", ")} ` +
  `FROM UNNEST(${UPDATED.map((c, i) => `$${i + offset + 1}::${c.type}[]`).join(", ")}) AS u(${UPDATED.map((c) => c.name).join(", ")}) ` +
  "WHERE t.seq = u.seq AND t.id = u.id";

/**
 * A group's inserts and updates in one statement, so one round trip and no BEGIN/COMMIT: the
 * insert as a data-modifying WITH, then the update. Both see the snapshot from before the
 * statement, so the update must not touch a row of the insert: {@link foldUpdates} first
 * writes such updates into the inserted rows.
 */
export const INSERT_UPDATE_SQL = `WITH inserted AS (${INSERT_SQL}) ${updateFrom(INSERTED.length)}`;

/**
 * Locks the lease row until the statement's (implicit) transaction ends, as `checkFence` does in
 * a transaction of several statements (see fencing.ts: FOR KEY SHARE, and why). A WITH query
 * that locks rows is never inlined: it is read once, before any row is written (the writes are
 * gated on it), and every reference sees that one row version.
 */
const FENCE = "fence AS (SELECT epoch, holder FROM taskflow_leader WHERE id = 1 FOR KEY SHARE)";
const fenceHolds = (param: number) => `(SELECT epoch FROM fence) = $${param}::bigint`;

/**
 * A group's one statement fenced inside itself: it writes only while the lease row's epoch is
 * this node's (its last parameter) and returns the row's epoch and holder, so the caller can
 * tell a refused write from a done one. One round trip instead of BEGIN, the fence's SELECT, the
 * statement and COMMIT.
 */
export function fencedStatement(s: Statement, epoch: number): Statement | undefined {
  const values = [...s.values, epoch];
  const param = values.length;
  const gated = (sql: string) => `WITH ${FENCE}, written AS (${sql}) SELECT epoch, holder FROM fence`;
  switch (s.text) {
    case INSERT_SQL:
      return { name: "tf_fenced_insert", text: gated(`${INSERT_SQL} WHERE ${fenceHolds(param)}`), values };
    case UPDATE_SQL:
      return { name: "tf_fenced_update", text: gated(`${UPDATE_SQL} AND ${fenceHolds(param)}`), values };
    case INSERT_UPDATE_SQL:
      return {
        name: "tf_fenced_insert_update",
        text: `WITH ${FENCE}, inserted AS (${INSERT_SQL} WHERE ${fenceHolds(param)}), written AS (${updateFrom(INSERTED.length)} AND ${fenceHolds(param)}) SELECT epoch, holder FROM fence`,
        values,
      };
    default:
      // Rows alone with binary parameters: the group takes a transaction and checkFence.
      return undefined;
  }
}

/**
 * Writes the newest version of a task inserted in this same group into its inserted row (the
 * mutable columns; the fixed ones keep their inserted values, as an update would) and returns
 * the records that remain to be updated: rows inserted before the group. `inserted` is changed
 * in place, so it must be the group's own copy.
 */
export function foldUpdates(inserted: ColumnArrays, updates: readonly TaskRecord[]): TaskRecord[] {
  const rowOf = new Map<string, number>();
  const ids = inserted[1]!;
  for (let r = 0; r < ids.length; r++) rowOf.set(ids[r] as string, r);
  const rest: TaskRecord[] = [];
  for (const task of updates) {
    const r = rowOf.get(task.id);
    // seq and id identify an update's row; an id inserted with another seq is not this row.
    if (r === undefined || inserted[0]![r] !== task.seq) {
      rest.push(task);
      continue;
    }
    for (let j = 0; j < MUTABLE.length; j++) inserted[FIXED.length + j]![r] = MUTABLE[j]!.value(task);
  }
  return rest;
}

/** One row at a time with binary parameters: for rows whose bytes would be costly as array text. */
const INSERT_ONE_SQL = `INSERT INTO tasks (${INSERTED.map((c) => c.name).join(", ")}) VALUES (${INSERTED.map((c, i) => `$${i + 1}::${c.type}`).join(", ")})`;
const UPDATE_ONE_SQL =
  `UPDATE tasks SET ${MUTABLE.map((c, i) => `${c.name} = $${i + UPDATE_KEY.length + 1}::${c.type}`).join(", ")} ` + "WHERE seq = $1::bigint AND id = $2::text";

/**
 * The one statement for a group whose inserts and updates each fit one UNNEST statement (the
 * usual case), or undefined (rows too big for arrays, or too many: then one statement each).
 */
export function insertUpdateStatement(inserts: readonly Statement[], updates: readonly Statement[]): Statement | undefined {
  if (inserts.length !== 1 || updates.length !== 1 || inserts[0]!.text !== INSERT_SQL || updates[0]!.text !== UPDATE_SQL) return undefined;
  return { name: "tf_insert_update", text: INSERT_UPDATE_SQL, values: [...inserts[0]!.values, ...updates[0]!.values] };
}

/** Column-wise arrays for {@link INSERT_SQL} or {@link UPDATE_SQL}: one array per column, one element per record. */
export type ColumnArrays = unknown[][];

export interface Statement {
  /** node-postgres prepares a named statement once per connection. */
  name: string;
  text: string;
  values: unknown[];
}

/**
 * Inside an array parameter, bytea travels as hex text (twice its size, parsed by the server),
 * and one JavaScript string holds the whole array: a group of a thousand 4 MiB payloads would
 * not fit in one. So a row with more than this many bytes (payload + result) goes alone, with
 * binary parameters…
 */
const ALONE_BYTES = 64 * 1024;
/** …and the other rows go in UNNEST statements of at most this many bytes and rows each. */
const CHUNK_BYTES = 8 * 1024 * 1024;
const CHUNK_ROWS = 10_000;

function rowBytes(arrays: ColumnArrays, byteColumns: readonly number[], row: number): number {
  let n = 0;
  for (const c of byteColumns) n += (arrays[c]![row] as Buffer | null)?.byteLength ?? 0;
  return n;
}

function statementsFor(
  arrays: ColumnArrays,
  columns: readonly Column[],
  many: { name: string; text: string },
  one: { name: string; text: string },
): Statement[] {
  const byteColumns = columns.flatMap((c, i) => (c.type === "bytea" ? [i] : []));
  const rows = arrays[0]!.length;
  const out: Statement[] = [];
  let chunk: number[] = [];
  let chunkBytes = 0;
  const flush = () => {
    if (!chunk.length) return;
    // The common case, one chunk of every row: the arrays as they are, no copy.
    const values = chunk.length === rows ? arrays : arrays.map((column) => chunk.map((r) => column[r]));
    out.push({ ...many, values });
    chunk = [];
    chunkBytes = 0;
  };
  for (let r = 0; r < rows; r++) {
    const bytes = rowBytes(arrays, byteColumns, r);
    if (bytes > ALONE_BYTES) {
      out.push({ ...one, values: arrays.map((column) => column[r]) });
      continue;
    }
    if (chunk.length >= CHUNK_ROWS || chunkBytes + bytes > CHUNK_BYTES) flush();
    chunk.push(r);
    chunkBytes += bytes;
  }
  flush();
  return out;
}

/** The statements that insert these rows (usually one). */
export const insertStatements = (arrays: ColumnArrays): Statement[] =>
  statementsFor(arrays, INSERTED, { name: "tf_insert", text: INSERT_SQL }, { name: "tf_insert_one", text: INSERT_ONE_SQL });

/** The statements that update these rows (usually one). */
export const updateStatements = (arrays: ColumnArrays): Statement[] =>
  statementsFor(arrays, UPDATED, { name: "tf_update", text: UPDATE_SQL }, { name: "tf_update_one", text: UPDATE_ONE_SQL });

function arrays(columns: readonly Column[], records: readonly TaskRecord[]): ColumnArrays {
  return columns.map((c) => records.map((t) => c.value(t)));
}

/** Taken when `insert` is called, so later changes to the records do not reach the store. */
export const insertArrays = (records: readonly TaskRecord[]): ColumnArrays => arrays(INSERTED, records);
export const updateArrays = (records: readonly TaskRecord[]): ColumnArrays => arrays(UPDATED, records);

/** Appends `more` to `into`, column by column (several calls in one statement). */
export function appendArrays(into: ColumnArrays, more: ColumnArrays): void {
  for (let i = 0; i < more.length; i++) for (const v of more[i]!) into[i]!.push(v);
}

/** Selected in this order everywhere and read back by position (`rowMode: "array"`). */
export const SELECT_COLUMNS = [
  "seq",
  "id",
  "state",
  "type",
  "client_id",
  "idempotency_key",
  "priority",
  "max_attempts",
  "timeout_ms",
  "expected_duration_ms",
  "attempt",
  "epoch",
  "worker_id",
  "created_at",
  "assigned_at",
  "started_at",
  "finished_at",
  "not_before",
  "error",
  "waiting_reason",
  "required_labels",
  "attempts",
  "result",
  "payload",
  "tenant",
  "attributes",
].join(", ");

function bytes(value: Buffer): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** A row selected with {@link SELECT_COLUMNS} (bigints already numbers, jsonb already parsed), back into a record. */
export function toRecord(row: unknown[]): TaskRecord {
  const result = row[22] as Buffer | null;
  const record: TaskRecord = {
    seq: row[0] as number,
    id: row[1] as string,
    tenant: row[24] as string,
    state: row[2] as TaskState,
    type: row[3] as string,
    clientId: row[4] as string,
    idempotencyKey: row[5] as string,
    priority: row[6] as number,
    maxAttempts: row[7] as number,
    timeoutMs: row[8] as number,
    expectedDurationMs: row[9] as number,
    attempt: row[10] as number,
    epoch: row[11] as number,
    workerId: row[12] as string,
    createdAt: row[13] as number,
    assignedAt: row[14] as number,
    startedAt: row[15] as number,
    finishedAt: row[16] as number,
    notBefore: row[17] as number,
    error: row[18] as string,
    waitingReason: row[19] as string,
    requiredLabels: row[20] as Record<string, string>,
    attempts: row[21] as AttemptRecord[],
    result: result === null ? undefined : bytes(result),
    payload: bytes(row[23] as Buffer),
  };
  const attributes = row[25] as string;
  return attributes === "" ? record : Object.assign(record, decodeSpecAttributes(attributes));
}
