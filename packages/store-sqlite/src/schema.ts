/**
 * The database layout and its migrations. `PRAGMA user_version` holds the number of migrations
 * applied, so a later version of this package adds a step to `MIGRATIONS` and older files are
 * brought forward on open.
 */
import type Database from "better-sqlite3";
import { Code, Reason, TaskflowError } from "@taskflow/core";

/**
 * Each entry moves the schema from version `index` to `index + 1`; never edit a released one.
 *
 * v1 notes:
 * - `seq` is the INTEGER PRIMARY KEY (the rowid), `id` a UNIQUE column: both are unique and
 *   indexed as with `id` as the primary key, but with one b-tree fewer to maintain, and rows are
 *   appended in submission order, so "newest first" and "in submission order" walk the table
 *   itself. Every secondary index ends in the rowid, so `state`, `type` and `client_id` serve as
 *   (column, seq) indexes for the filtered, seq-ordered `list`.
 * - The idempotency and `finished_at` indexes are partial: tasks without a key and tasks not yet
 *   finished (the ones being written most) never touch them.
 * - Payloads (up to 64 MiB) live in their own table: SQLite rewrites a whole row, overflow pages
 *   included, on every UPDATE, and a task is updated about three times after its insert; the
 *   payload never changes, so it is written once.
 * - `meta.max_seq` remembers the highest seq a purge deleted, so `maxSeq` never goes back.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tasks (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT    NOT NULL UNIQUE,
    state                TEXT    NOT NULL,
    type                 TEXT    NOT NULL,
    client_id            TEXT    NOT NULL,
    idempotency_key      TEXT    NOT NULL,
    priority             INTEGER NOT NULL,
    max_attempts         INTEGER NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    expected_duration_ms INTEGER NOT NULL,
    attempt              INTEGER NOT NULL,
    epoch                INTEGER NOT NULL,
    worker_id            TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    assigned_at          INTEGER NOT NULL,
    started_at           INTEGER NOT NULL,
    finished_at          INTEGER NOT NULL,
    not_before           INTEGER NOT NULL,
    error                TEXT    NOT NULL,
    waiting_reason       TEXT    NOT NULL,
    required_labels      TEXT    NOT NULL,
    attempts             TEXT    NOT NULL,
    result               BLOB
  );
  CREATE TABLE task_payloads (
    seq     INTEGER PRIMARY KEY,
    payload BLOB    NOT NULL
  );
  CREATE INDEX tasks_state ON tasks (state);
  CREATE INDEX tasks_type ON tasks (type);
  CREATE INDEX tasks_client ON tasks (client_id);
  CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key <> '';
  CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at > 0;
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  `,
  // v2: tenants. Rows stored before belong to the default tenant (ADD COLUMN with a constant
  // default rewrites no row), and idempotency keys become unique per tenant, not cluster-wide.
  `
  ALTER TABLE tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
  DROP INDEX tasks_idempotency_key;
  CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (tenant, idempotency_key) WHERE idempotency_key <> '';
  CREATE INDEX tasks_tenant ON tasks (tenant);
  `,
  // v3: submission attributes (SPEC_ATTRIBUTE_KEYS in @taskflow/core) as one JSON text column,
  // '' when a task has none; features add keys there, not columns here.
  `
  ALTER TABLE tasks ADD COLUMN attributes TEXT NOT NULL DEFAULT '';
  `,
  // v4: recurring schedules (ADR 0025), keyed by tenant and the ID the tenant chose. The whole
  // schedule is one JSON text (encodeSchedule in @taskflow/core): they are read only on start.
  `
  CREATE TABLE schedules (
    tenant TEXT NOT NULL,
    id     TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
  ) WITHOUT ROWID;
  `,
];

/** The schema version this package writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the file to `SCHEMA_VERSION`; refuses a file written by a newer version. */
export function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new TaskflowError(
      Code.FAILED_PRECONDITION,
      `sqlite store: ${db.name} has schema version ${current}, this version of @taskflow/store-sqlite knows up to ${SCHEMA_VERSION}; upgrade it`,
      { reason: Reason.STORE },
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      // PRAGMA takes no bound parameters; the value is our own integer.
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
