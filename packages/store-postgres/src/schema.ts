/**
 * The database layout and its versioned migrations. `taskflow_migrations` holds one row per
 * migration applied; each migration runs in its own transaction under an advisory lock, so
 * several control nodes opening the same database at once apply each step exactly once.
 */
import type { ClientBase } from "pg";
import { Code, Reason, TaskflowError } from "@taskflow/core";

/**
 * Each entry moves the schema from version `index` to `index + 1`; never edit a released one.
 * A later column is one more entry, as `tenant` is (v3).
 *
 * v1 notes:
 * - `seq` is the primary key and `id` UNIQUE: "newest first" and "in submission order" walk the
 *   primary key, updates find their row by seq (and check the id).
 * - `(state, seq)`, `(type, seq)`, `(client_id, seq)` serve the filtered, seq-ordered `list`.
 * - The idempotency and `finished_at` indexes are partial: tasks without a key and tasks not yet
 *   finished (the ones written most) never touch them.
 * - Labels and attempts are `jsonb` (queryable by operators); payload and result `bytea` (large
 *   ones are TOASTed out of line, and an UPDATE that does not change them does not copy them).
 * - `taskflow_meta.max_seq` remembers the highest seq a purge deleted, so `maxSeq` never goes back.
 * - `fillfactor = 90` leaves room on each page for the new row versions of the three updates a
 *   task gets, so updates that change no indexed column can stay on the page (HOT).
 */
const MIGRATIONS: readonly { description: string; sql: string }[] = [
  {
    description: "tasks, meta",
    sql: `
    CREATE TABLE tasks (
      seq                  bigint  PRIMARY KEY,
      id                   text    NOT NULL UNIQUE,
      state                text    NOT NULL,
      type                 text    NOT NULL,
      client_id            text    NOT NULL,
      idempotency_key      text    NOT NULL,
      priority             integer NOT NULL,
      max_attempts         integer NOT NULL,
      timeout_ms           bigint  NOT NULL,
      expected_duration_ms bigint  NOT NULL,
      attempt              integer NOT NULL,
      epoch                bigint  NOT NULL,
      worker_id            text    NOT NULL,
      created_at           bigint  NOT NULL,
      assigned_at          bigint  NOT NULL,
      started_at           bigint  NOT NULL,
      finished_at          bigint  NOT NULL,
      not_before           bigint  NOT NULL,
      error                text    NOT NULL,
      waiting_reason       text    NOT NULL,
      required_labels      jsonb   NOT NULL,
      attempts             jsonb   NOT NULL,
      result               bytea,
      payload              bytea   NOT NULL
    ) WITH (fillfactor = 90);
    CREATE INDEX tasks_state ON tasks (state, seq);
    CREATE INDEX tasks_type ON tasks (type, seq);
    CREATE INDEX tasks_client ON tasks (client_id, seq);
    CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key <> '';
    CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at > 0;
    CREATE TABLE taskflow_meta (key text PRIMARY KEY, value bigint NOT NULL);
    `,
  },
  {
    // The leader lease (ADR 0016): one row; `epoch` only grows, `expires_at` is server time.
    description: "leader lease",
    sql: `
    CREATE TABLE taskflow_leader (
      id         integer     PRIMARY KEY CHECK (id = 1),
      holder     text        NOT NULL,
      epoch      bigint      NOT NULL,
      expires_at timestamptz NOT NULL
    );
    INSERT INTO taskflow_leader (id, holder, epoch, expires_at) VALUES (1, '', 0, '-infinity');
    `,
  },
  {
    // Tenants (ADR 0013). Rows stored before belong to the default tenant: ADD COLUMN with a
    // constant default is instant (Postgres 11+ rewrites no row). Idempotency keys become unique
    // per tenant, not cluster-wide; (tenant, seq) serves a tenant's seq-ordered `list`.
    description: "tenants",
    sql: `
    ALTER TABLE tasks ADD COLUMN tenant text NOT NULL DEFAULT 'default';
    DROP INDEX tasks_idempotency_key;
    CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (tenant, idempotency_key) WHERE idempotency_key <> '';
    CREATE INDEX tasks_tenant ON tasks (tenant, seq);
    `,
  },
  {
    // Submission attributes (SPEC_ATTRIBUTE_KEYS in @taskflow/core) as one JSON text column, ''
    // when a task has none; features add keys there, not columns here. text, not jsonb: nothing
    // queries inside it, and text skips the server's parse and the client's re-serialisation.
    description: "attributes",
    sql: `
    ALTER TABLE tasks ADD COLUMN attributes text NOT NULL DEFAULT '';
    `,
  },
  {
    // Recurring schedules (ADR 0025), keyed by tenant and the ID the tenant chose. The whole
    // schedule is one JSON text (encodeSchedule in @taskflow/core): read only when a node starts.
    description: "schedules",
    sql: `
    CREATE TABLE schedules (
      tenant text NOT NULL,
      id     text NOT NULL,
      body   text NOT NULL,
      PRIMARY KEY (tenant, id)
    );
    `,
  },
  {
    // Updates that stay on their page (HOT). Every write of a task changed `state`, and
    // `(state, seq)` indexed it, so each of a task's updates added an entry to every index.
    // `unfinished` (generated from `state`) stays true from queued to running, so the
    // assignment and start updates change no indexed column and can be HOT; only the final
    // update (finished_at, unfinished) touches the indexes. `loadUnfinished` reads the
    // partial index; a `list` filtered by state walks the primary key (newest first) instead.
    // Adding a stored generated column rewrites the table once. The states are spelled out: a
    // released migration never changes (core's isFinal says the same).
    description: "unfinished index",
    sql: `
    ALTER TABLE tasks ADD COLUMN unfinished boolean GENERATED ALWAYS AS (state IN ('queued', 'assigned', 'running')) STORED;
    DROP INDEX tasks_state;
    CREATE INDEX tasks_unfinished ON tasks (seq) WHERE unfinished;
    `,
  },
  {
    // Room on each page for every row's next version. A group commit updates the tasks of a
    // page together (assignment is in seq order), in one transaction, so none of the old
    // versions can be pruned until it commits: at fillfactor 90 a page of ~30 rows had room for
    // ~3 new versions and the rest of the assignment updates left the page (not HOT, an entry in
    // every index). At 50, a whole page's rows fit their next version. The table grows about
    // twofold; pages already written keep their fill (only new pages use the setting).
    description: "fillfactor 50",
    sql: `
    ALTER TABLE tasks SET (fillfactor = 50);
    `,
  },
];

/** The schema version this package writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Arbitrary, fixed: the advisory lock key that serialises migrations of one database. */
const MIGRATION_LOCK = 0x7461736b; // "task"

/**
 * Brings the schema to `target`, one migration per transaction; refuses a database written by a
 * newer version of this package.
 * @param schema the Postgres schema holding the tables (made when missing); the connection's
 *   `search_path` must name it.
 * @param target the version to reach; only tests of an upgrade stop before the newest.
 *   @defaultValue SCHEMA_VERSION
 */
export async function migrate(client: ClientBase, schema: string, target = SCHEMA_VERSION): Promise<void> {
  for (;;) {
    await client.query("BEGIN");
    try {
      // Held until COMMIT: a second node opening now waits, then sees this step as applied
      // (two CREATE … IF NOT EXISTS at once can still collide, so they run under it too).
      await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
      await client.query(
        "CREATE TABLE IF NOT EXISTS taskflow_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
      );
      const { rows } = await client.query<{ version: number | null }>("SELECT max(version) AS version FROM taskflow_migrations");
      const current = rows[0]?.version ?? 0;
      if (current > SCHEMA_VERSION) {
        throw new TaskflowError(
          Code.FAILED_PRECONDITION,
          `postgres store: schema ${schema} has version ${current}, this version of @taskflow/store-postgres knows up to ${SCHEMA_VERSION}; upgrade it`,
          { reason: Reason.STORE },
        );
      }
      if (current >= target) {
        await client.query("COMMIT");
        return;
      }
      const step = MIGRATIONS[current]!;
      await client.query(step.sql);
      await client.query("INSERT INTO taskflow_migrations (version, description) VALUES ($1, $2)", [current + 1, step.description]);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }
}

/** A Postgres identifier, quoted (doubling any `"` inside). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
