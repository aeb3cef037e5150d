/** How a TaskRecord maps onto the `tasks` and `task_payloads` tables, both ways. */
import { TASK_STATES, decodeSpecAttributes, encodeSpecAttributes, isFinal, type AttemptRecord, type TaskRecord, type TaskState } from "@taskflow/core";

const sqlList = (states: readonly string[]) => `(${states.map((s) => `'${s}'`).join(", ")})`;
export const FINAL_STATES_SQL = sqlList(TASK_STATES.filter(isFinal));
export const UNFINISHED_STATES_SQL = sqlList(TASK_STATES.filter((s) => !isFinal(s)));

/** The columns of `tasks`, inserted in this order. */
export const TASK_COLUMNS =
  "seq, id, state, type, client_id, idempotency_key, priority, max_attempts, timeout_ms, expected_duration_ms, " +
  "attempt, epoch, worker_id, created_at, assigned_at, started_at, finished_at, not_before, error, waiting_reason, " +
  "required_labels, attempts, result, tenant, attributes";

/** Selected in this order everywhere, read back by position (raw rows are cheaper than objects). */
export const SELECT_COLUMNS =
  TASK_COLUMNS.split(", ")
    .map((c) => `t.${c}`)
    .join(", ") + ", p.payload";
export const FROM = "tasks t JOIN task_payloads p ON p.seq = t.seq";
/** {@link FROM}, walking `tasks` by its primary key only. */
export const FROM_NOT_INDEXED = "tasks t NOT INDEXED JOIN task_payloads p ON p.seq = t.seq";

/** Index of `result` in {@link insertParams}. */
export const INSERT_RESULT = 22;

/** Bound positionally, in the order of {@link TASK_COLUMNS}. */
export function insertParams(t: TaskRecord): unknown[] {
  return [
    t.seq,
    t.id,
    t.state,
    t.type,
    t.clientId,
    t.idempotencyKey,
    t.priority,
    t.maxAttempts,
    t.timeoutMs,
    t.expectedDurationMs,
    t.attempt,
    t.epoch,
    t.workerId,
    t.createdAt,
    t.assignedAt,
    t.startedAt,
    t.finishedAt,
    t.notBefore,
    t.error,
    t.waitingReason,
    labelsJson(t.requiredLabels),
    JSON.stringify(t.attempts),
    t.result ?? null,
    t.tenant,
    encodeSpecAttributes(t),
  ];
}

/**
 * An update rewrites what can change after submission. The identity and submission fields
 * (`seq`, `type`, `tenant`, `clientId`, `idempotencyKey`, `createdAt`, `payload`, the attributes) are left out on purpose:
 * they never change, and SQLite skips maintaining an index whose columns an UPDATE does not set,
 * so leaving out `type` and `client_id` keeps their indexes untouched on the hottest path.
 */
export const UPDATE_SQL =
  "UPDATE tasks SET state = ?, priority = ?, max_attempts = ?, timeout_ms = ?, expected_duration_ms = ?, attempt = ?, " +
  "epoch = ?, worker_id = ?, assigned_at = ?, started_at = ?, finished_at = ?, not_before = ?, error = ?, " +
  "waiting_reason = ?, required_labels = ?, attempts = ?, result = ? " +
  // The seq finds the row through the table's own b-tree, one search fewer than by id; the id
  // makes sure it is the same task.
  "WHERE seq = ? AND id = ?";

/** Index of `result` in {@link updateParams}. */
export const UPDATE_RESULT = 16;

export function updateParams(t: TaskRecord): unknown[] {
  return [
    t.state,
    t.priority,
    t.maxAttempts,
    t.timeoutMs,
    t.expectedDurationMs,
    t.attempt,
    t.epoch,
    t.workerId,
    t.assignedAt,
    t.startedAt,
    t.finishedAt,
    t.notBefore,
    t.error,
    t.waitingReason,
    labelsJson(t.requiredLabels),
    JSON.stringify(t.attempts),
    t.result ?? null,
    t.seq,
    t.id,
  ];
}

/** Most tasks require no labels: skip JSON.stringify for them (it ran on every write). */
function labelsJson(labels: Readonly<Record<string, string>>): string {
  for (const _ in labels) return JSON.stringify(labels);
  return "{}";
}

/** A Buffer from SQLite as a plain Uint8Array over the same memory (no copy). */
function bytes(value: Buffer): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** A row selected with {@link SELECT_COLUMNS}, back into a record. */
export function toRecord(row: unknown[]): TaskRecord {
  const result = row[22] as Buffer | null;
  const record: TaskRecord = {
    seq: row[0] as number,
    id: row[1] as string,
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
    requiredLabels: JSON.parse(row[20] as string) as Record<string, string>,
    attempts: JSON.parse(row[21] as string) as AttemptRecord[],
    tenant: row[23] as string,
    payload: bytes(row[25] as Buffer),
    result: result === null ? undefined : bytes(result),
  };
  const attributes = row[24] as string;
  return attributes === "" ? record : Object.assign(record, decodeSpecAttributes(attributes));
}
