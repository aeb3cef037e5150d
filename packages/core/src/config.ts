/**
 * The node's configuration: one schema, one place that applies defaults, and errors that name
 * the key and the fix. Every key is documented here and in the README's config reference.
 */
import { z } from "zod";
import { Code, Reason, TaskflowError } from "./errors.js";
import { MAX_TIMEOUT_MS } from "./model.js";

const MiB = 1024 * 1024;
/** Most records a shared-memory heap holds (`@taskflow/shm-heap`'s MAX_HEAP_CAPACITY, 2^24). */
export const MAX_HEAP_CAPACITY = 16 * MiB;

/**
 * Room a request needs beside one task's payload (type, labels, IDs, framing): the control node's
 * receive limit is never below `control.maxPayloadBytes` plus this, so the largest payload fits.
 */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

const port = z.number().int().min(0).max(65535);
/** Host names (with no port) an HTTP server answers besides its own address and, on loopback, `localhost`. */
const allowedHosts = z.array(z.string().min(1).regex(/^[^\s/:]+$|^\[[0-9A-Fa-f:.]+\]$/, "must be a host name or address without a port")).default([]);
const positiveInt = z.number().int().positive();
const labels = z.record(z.string().min(1), z.string());

/**
 * How much memory queued tasks may bring the control node to before submits are refused with
 * RESOURCE_EXHAUSTED (`TASKFLOW_ERR_MEMORY`), so that it never dies of an out-of-memory error
 * holding them. Two budgets, each checked on a sample taken every `sampleIntervalMs` plus an
 * estimate of what was accepted since: the V8 heap in use against its limit, and the process's
 * resident memory against the host's (or its cgroup's) memory. Submits resume once both are
 * below `resumeFraction` of their budget. @see docs/adr/0021-memory-admission.md
 */
const memoryBudgetSchema = z.strictObject({
  /** Share of the V8 heap limit (`--max-old-space-size`) the heap in use may reach. @defaultValue 0.7 */
  heapFraction: z.number().gt(0).max(1).default(0.7),
  /** Share of the host's memory, or of the cgroup's `memory.max` when lower, the process's resident memory may reach. @defaultValue 0.8 */
  systemFraction: z.number().gt(0).max(1).default(0.8),
  /** The heap budget in bytes, instead of `heapFraction` of the limit. @defaultValue none (`heapFraction` applies) */
  heapBytes: positiveInt.optional(),
  /** The resident memory budget in bytes, instead of `systemFraction` of the host's. @defaultValue none (`systemFraction` applies) */
  rssBytes: positiveInt.optional(),
  /** Once refusing, submits are accepted again when both are below this share of their budget. @defaultValue 0.9 */
  resumeFraction: z.number().gt(0).lt(1).default(0.9),
  /** How often memory is sampled, in ms (the submits between two samples are estimated). @defaultValue 200 */
  sampleIntervalMs: positiveInt.min(10).max(10_000).default(200),
});
/** The control node's default host and port: the config's defaults, and the SDK's and CLI's address. */
export const DEFAULT_CONTROL_HOST = "127.0.0.1";
export const DEFAULT_CONTROL_PORT = 50051;
/** `DEFAULT_CONTROL_HOST:DEFAULT_CONTROL_PORT`, where clients and workers look unless told otherwise. */
export const DEFAULT_CONTROL_ADDRESS = `${DEFAULT_CONTROL_HOST}:${DEFAULT_CONTROL_PORT}`;

/** The control role: PLM, Scheduler and Register behind one gRPC server. */
const controlSchema = z.strictObject({
  /** Address the gRPC server binds. @defaultValue "127.0.0.1" */
  host: z.string().min(1).default(DEFAULT_CONTROL_HOST),
  /** Port the gRPC server binds; 0 picks a free one. @defaultValue 50051 */
  port: port.default(DEFAULT_CONTROL_PORT),
  /** Largest accepted task payload in bytes; bigger submits get RESOURCE_EXHAUSTED. @defaultValue 4 MiB */
  maxPayloadBytes: positiveInt.max(64 * MiB).default(4 * MiB),
  /**
   * Most unfinished tasks at once (the task heap's capacity); more submits get RESOURCE_EXHAUSTED.
   * At most 16777216 (2^24, what the heap's handles address). The heap is allocated at start:
   * 44 bytes a task (46 MB for the default, 738 MB for the maximum).
   * @defaultValue 1048576
   */
  taskHeapCapacity: positiveInt.max(MAX_HEAP_CAPACITY).default(1024 * 1024),
  /**
   * Most workers registered at once (the worker heap's capacity), counting those within their
   * reconnect grace; a hello past it ends with RESOURCE_EXHAUSTED (`TASKFLOW_ERR_WORKER_CAPACITY`).
   * The heap is allocated at start: 44 bytes a worker (5.8 MB for the default).
   * @defaultValue 131072
   */
  workerHeapCapacity: positiveInt.max(MAX_HEAP_CAPACITY).default(128 * 1024),
  /** How long finished tasks stay retrievable, in ms. @defaultValue 3600000 (1 hour) */
  resultRetentionMs: positiveInt.default(3_600_000),
  /** Attempts a task gets when its spec says 0. @defaultValue 3 */
  defaultMaxAttempts: positiveInt.max(100).default(3),
  /** Per-attempt timeout in ms when a task's spec says 0; 0 = none; at most 2000000000 (`MAX_TIMEOUT_MS`). @defaultValue 0 */
  defaultTimeoutMs: z.number().int().min(0).max(MAX_TIMEOUT_MS).default(0),
  /** Where the task heap and worker heap live: `sab` (in-process shared memory) or `shm` (POSIX, shareable between processes). @defaultValue "sab" */
  heapBacking: z.enum(["sab", "shm"]).default("sab"),
  /**
   * Largest gRPC message the control node reads, in bytes: grpc-js refuses a bigger one with
   * RESOURCE_EXHAUSTED before decoding any of it. It must be at least `maxPayloadBytes` plus
   * 64 KiB (`MESSAGE_OVERHEAD_BYTES`), so that a task with the largest payload still fits in a
   * call of its own; clients split bigger batches (the SDK does).
   * @defaultValue 8 MiB, or `maxPayloadBytes` + 64 KiB when that is more
   */
  maxReceiveMessageBytes: positiveInt.max(1024 * MiB).optional(),
  /**
   * Most bytes a server stream (SubscribeResults, WatchTask, WatchEvents, SubmitTaskStream's
   * acknowledgements) may have waiting for a client that does not read: past it the stream is
   * reset with RESOURCE_EXHAUSTED and what it held is freed. One message bigger than this still
   * goes out when nothing else waits. @defaultValue 8 MiB
   */
  maxStreamBufferBytes: positiveInt.min(64 * 1024).max(1024 * MiB).default(8 * MiB),
  /**
   * Memory budget past which submits are refused with RESOURCE_EXHAUSTED (`TASKFLOW_ERR_MEMORY`).
   * @defaultValue `{ heapFraction: 0.7, systemFraction: 0.8, resumeFraction: 0.9, sampleIntervalMs: 200 }`
   */
  memoryBudget: memoryBudgetSchema.prefault({}),
}).transform((control) => ({
  ...control,
  maxReceiveMessageBytes: control.maxReceiveMessageBytes ?? Math.max(8 * MiB, control.maxPayloadBytes + MESSAGE_OVERHEAD_BYTES),
}));

const schedulerSchema = z.strictObject({
  /**
   * The scheduling policy: `fifo`, `priority`, `least-loaded`, or the name of an npm package that
   * exports a policy, resolved from the config file's folder. @defaultValue "fifo"
   */
  policy: z.string().min(1).default("fifo"),
  /** Options for the policy; each policy documents its own. @defaultValue {} */
  policyOptions: z.record(z.string(), z.unknown()).default({}),
  /** Most assignments one loop turn makes before yielding to I/O. @defaultValue 4096 */
  maxAssignmentsPerTurn: positiveInt.default(4096),
});

/**
 * Postgres: TLS to the server. Paths are PEM files relative to the config file.
 * @see packages/store-postgres/README.md
 */
const postgresSslSchema = z.strictObject({
  /** CA certificates (PEM) the server's certificate must chain to. @defaultValue the system's CAs */
  ca: z.string().min(1).optional(),
  /** A client certificate (PEM), for servers that authenticate clients by certificate. @defaultValue none */
  cert: z.string().min(1).optional(),
  /** The private key (PEM) of `store.ssl.cert`. @defaultValue none */
  key: z.string().min(1).optional(),
  /** Refuse a server whose certificate does not chain to the CA or does not name the host; off keeps encryption but not authentication. @defaultValue true */
  rejectUnauthorized: z.boolean().default(true),
  /** The name the server's certificate must carry, when it differs from the URL's host. @defaultValue the URL's host */
  servername: z.string().min(1).optional(),
});

const storeSchema = z.strictObject({
  /** `memory` (fast, lost on restart), `sqlite` (durable, embedded) or `postgres` (durable, on a PostgreSQL server). @defaultValue "memory" */
  kind: z.enum(["memory", "sqlite", "postgres"]).default("memory"),
  /**
   * Postgres: the server, as `postgres://user@host:5432/database` (required with `kind: "postgres"`).
   * Leave the password out: give it through `PGPASSWORD` or `~/.pgpass`. Use `store.ssl` rather
   * than `sslmode` in the URL. @defaultValue none
   */
  url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, "must be a postgres://user@host:port/database URL").optional(),
  /** Postgres: TLS to the server (`{}` for TLS with the system's CAs). @defaultValue none (no TLS) */
  ssl: postgresSslSchema.optional(),
  /** Postgres: most connections the node opens to the server (one writes, the others read). @defaultValue 8 */
  poolSize: z.number().int().min(2).max(1000).default(8),
  /** Postgres: the schema holding Taskflow's tables, made when missing; one per cluster sharing a database. @defaultValue "taskflow" */
  schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "must be a Postgres identifier: letters, digits and _, at most 63").default("taskflow"),
  /** SQLite database file, relative to the config file. @defaultValue ".taskflow/tasks.db" */
  path: z.string().min(1).default(".taskflow/tasks.db"),
  /**
   * SQLite: `normal` syncs the WAL at checkpoints (an acknowledged task survives a crash of the
   * process, not a power loss); `full` syncs on every group commit (survives a power loss too).
   * @defaultValue "normal"
   */
  synchronous: z.enum(["normal", "full"]).default("normal"),
  /** SQLite and Postgres: how long the first queued write waits for others to join its transaction, in ms. @defaultValue 0 */
  groupCommitMaxDelayMs: z.number().min(0).max(1000).default(0),
  /** SQLite: `thread` writes on a worker thread (keeps the event loop free), `inline` on the main thread. @defaultValue "thread" */
  writer: z.enum(["thread", "inline"]).default("thread"),
  /** Memory: most finished tasks kept; the oldest go first beyond it, whatever `control.resultRetentionMs` says. @defaultValue 1000000 */
  maxFinishedTasks: positiveInt.default(1_000_000),
});

const livenessSchema = z.strictObject({
  /** How often workers send a heartbeat, in ms. @defaultValue 500 */
  heartbeatIntervalMs: positiveInt.min(10).default(500),
  /** A worker silent this long is dead and its tasks are requeued, in ms. @defaultValue 2000 */
  heartbeatTimeoutMs: positiveInt.min(20).default(2000),
  /**
   * A worker whose session broke (its connection closed) gets this long to reconnect and resume
   * its tasks before they run elsewhere, in ms. @defaultValue 1000
   */
  reconnectGraceMs: positiveInt.default(1000),
  /**
   * A worker that heartbeats but has not acknowledged an assignment for this long is suspect
   * (gets no new tasks); after twice this long it is dead and its tasks run elsewhere, in ms.
   * @defaultValue 5000
   */
  ackTimeoutMs: positiveInt.min(20).default(5000),
});

/** The worker role: processes that run task handlers. */
const workerSchema = z.strictObject({
  /** The control node's gRPC address. @defaultValue "127.0.0.1:50051" (or the control role's own address) */
  controlAddress: z.string().min(1).optional(),
  /** Worker processes this node runs. @defaultValue 2 */
  processes: z.number().int().min(1).max(256).default(2),
  /** Tasks each worker process runs at once. @defaultValue 16 */
  slots: positiveInt.max(10_000).default(16),
  /**
   * Tasks the control node may send a worker process beyond its slots, waiting there for a free
   * slot: hides the round trip between a result and the next assignment. Lower it for long tasks
   * so that queued work is not held by a busy worker. @defaultValue 16
   */
  prefetch: z.number().int().min(0).max(100_000).default(16),
  /** Module that exports the task handlers, relative to the config file. @defaultValue the built-in examples */
  handlers: z.string().min(1).optional(),
  /** Labels tasks can require (`requiredLabels`). @defaultValue {} */
  labels: labels.default({}),
  /**
   * On SIGTERM a worker process finishes its running tasks for at most this long, then stops
   * them (they run again elsewhere), in ms. @defaultValue 30000
   */
  drainTimeoutMs: positiveInt.default(30_000),
  /** The bearer token (role `worker`) worker processes present; prefer `worker.tokenFile` or TASKFLOW_WORKER_TOKEN. @defaultValue none (TASKFLOW_WORKER_TOKEN if set) */
  token: z.string().min(1).optional(),
  /** A file holding the worker token (one line), relative to the config file. @defaultValue none */
  tokenFile: z.string().min(1).optional(),
  /** Worker ID prefix; each process appends its index. @defaultValue the host name */
  idPrefix: z.string().min(1).optional(),
  /**
   * A worker process whose event loop makes no progress for this long (a handler that blocks it,
   * such as a busy loop) is stopped by its watchdog thread and replaced: the results it had
   * finished are kept, and the blocking task's attempt fails with "blocked the event loop". In ms.
   * @defaultValue 1000
   * @see docs/adr/0010-worker-watchdog.md
   */
  stallTimeoutMs: positiveInt.min(100).max(3_600_000).default(1000),
  /**
   * A handler still running this long after its signal aborted (its task timed out or was
   * cancelled) ignores the abort: its worker process takes no new tasks, lets the others finish
   * (at most `drainTimeoutMs`), and is replaced, in ms. @defaultValue 5000
   */
  abortGraceMs: positiveInt.max(3_600_000).default(5000),
  /**
   * Keep one extra worker process started and loaded, without a worker ID, so that a process that
   * dies is replaced in milliseconds rather than after a Node.js start (its tasks wait for that, or
   * for the control node's `liveness.reconnectGraceMs`). Costs one idle process's memory.
   * @defaultValue true
   */
  standby: z.boolean().default(true),
});

/** The Prometheus endpoint (`GET /metrics`) of every node: control and worker metrics. */
const metricsSchema = z.strictObject({
  /** Serve metrics. @defaultValue true */
  enabled: z.boolean().default(true),
  /** Address the metrics HTTP server binds; keep it on loopback unless a scraper needs it. @defaultValue "127.0.0.1" */
  host: z.string().min(1).default("127.0.0.1"),
  /** Port of the metrics HTTP server; 0 picks a free one (printed on the ready line). @defaultValue 9464 */
  port: port.default(9464),
  /**
   * Host names a request's `Host` header may name besides `host` itself (and, on loopback,
   * `localhost`, `127.0.0.1` and `[::1]`); IP addresses are always accepted. Other requests get
   * 421, so a web page on another site cannot read metrics through DNS rebinding. List the names
   * scrapers use when the server is bound beyond loopback. @defaultValue []
   */
  allowedHosts,
});

/** The live web dashboard of the control role, with its JSON API and event stream. */
const dashboardSchema = z.strictObject({
  /** Serve the dashboard (control role only). @defaultValue true */
  enabled: z.boolean().default(true),
  /** Address the dashboard HTTP server binds. It can cancel tasks and drain workers: keep it on loopback. @defaultValue "127.0.0.1" */
  host: z.string().min(1).default("127.0.0.1"),
  /** Port of the dashboard HTTP server; 0 picks a free one (printed on the ready line). @defaultValue 9465 */
  port: port.default(9465),
  /** Minutes of queue depth and throughput the charts keep (one sample a second). @defaultValue 10 */
  historyMinutes: positiveInt.max(120).default(10),
  /**
   * Host names a request's `Host` header may name besides `host` itself (and, on loopback,
   * `localhost`, `127.0.0.1` and `[::1]`); IP addresses are always accepted. Other requests get
   * 421, so a web page on another site cannot read the API or act through DNS rebinding. List
   * the names browsers use when the dashboard is bound beyond loopback. @defaultValue []
   */
  allowedHosts,
});

/**
 * TLS for the gRPC port and the HTTP ports (metrics, dashboard), and the certificates the worker
 * role and its processes connect with. Paths are PEM files relative to the config file.
 * @see docs/adr/0012-security.md
 */
const tlsSchema = z.strictObject({
  /** This node's certificate chain (PEM): the server certificate, also shown as the client certificate of its worker role under mTLS. @defaultValue none (no TLS) */
  cert: z.string().min(1).optional(),
  /** The private key of `tls.cert` (PEM). @defaultValue none */
  key: z.string().min(1).optional(),
  /** CA certificates (PEM) that clients' certificates (mTLS) and, for the worker role, the control node's certificate must chain to. @defaultValue none (the system's CAs for the worker role) */
  ca: z.string().min(1).optional(),
  /** mTLS: refuse a gRPC or HTTPS connection without a client certificate signed by `tls.ca`. @defaultValue false */
  requireClientCert: z.boolean().default(false),
});

/** What a tenant's name may be: it appears in metric labels, logs and the config's keys. */
export const TENANT_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const tenantName = z.string().regex(TENANT_NAME_PATTERN, "must be 1-64 letters, digits, _ . or -");

/**
 * One tenant's limits. A key left out of `tenants.quotas.<name>` takes `tenants.defaultQuota`'s.
 * A refused submit gets RESOURCE_EXHAUSTED with reason `TASKFLOW_ERR_QUOTA` naming the key.
 */
const quotaSchema = z.strictObject({
  /**
   * Most tasks of the tenant accepted and not yet finished at once (queued, waiting out a retry
   * backoff, or with a worker): each holds a place in the task heap, so this keeps one tenant
   * from filling `control.taskHeapCapacity` for all. 0 = no limit but the heap's. @defaultValue 0
   */
  maxUnfinishedTasks: z.number().int().min(0).optional(),
  /** Tasks (not calls: a batch of 100 counts 100) the tenant may submit per second, on average; 0 = no limit. @defaultValue 0 */
  submitsPerSecond: z.number().min(0).max(10_000_000).optional(),
  /**
   * Tasks the tenant may submit at once beyond the average rate (a token bucket's size); also the
   * largest batch it can ever submit in one call. @defaultValue one second's worth (`submitsPerSecond`, at least 1)
   */
  burst: z.number().int().min(1).optional(),
});

/** Per-tenant quotas; tenants come from tokens (`auth.tokens[].tenant`). @see docs/adr/0013-tenants.md */
const tenantsSchema = z.strictObject({
  /** Quota of every tenant without an entry in `tenants.quotas`, and of the keys an entry leaves out. @defaultValue {} (no limits) */
  defaultQuota: quotaSchema.prefault({}),
  /** Quotas by tenant name, such as `{"acme": {"maxUnfinishedTasks": 10000, "submitsPerSecond": 500}}`. @defaultValue {} */
  quotas: z.record(tenantName, quotaSchema).default({}),
});

/** One tenant's effective quota, and the config key each limit came from (for refusal messages). */
export interface TenantQuota {
  /** 0 = no limit. */
  maxUnfinishedTasks: number;
  /** 0 = no limit. */
  submitsPerSecond: number;
  burst: number;
  /** The key that set `maxUnfinishedTasks`, such as `tenants.quotas.acme.maxUnfinishedTasks`. */
  maxUnfinishedTasksKey: string;
  /** The key that set `submitsPerSecond`. */
  submitsPerSecondKey: string;
  /** The key that set `burst` (or `submitsPerSecond` when it was left to its default). */
  burstKey: string;
}

/** The quota of `tenant`: its own entry's keys, the rest from `tenants.defaultQuota`. The one place that applies these defaults. */
export function tenantQuota(config: TaskflowConfig, tenant: string): TenantQuota {
  const own = Object.hasOwn(config.tenants.quotas, tenant) ? config.tenants.quotas[tenant] : undefined;
  const base = config.tenants.defaultQuota;
  const pick = <K extends keyof z.output<typeof quotaSchema>>(key: K) =>
    own?.[key] !== undefined ? { value: own[key], key: `tenants.quotas.${tenant}.${key}` } : { value: base[key], key: `tenants.defaultQuota.${key}` };
  const max = pick("maxUnfinishedTasks");
  const rate = pick("submitsPerSecond");
  const burst = pick("burst");
  const ratePerSecond = rate.value ?? 0;
  return {
    maxUnfinishedTasks: max.value ?? 0,
    submitsPerSecond: ratePerSecond,
    burst: burst.value ?? Math.max(1, Math.ceil(ratePerSecond)),
    maxUnfinishedTasksKey: max.key,
    submitsPerSecondKey: rate.key,
    burstKey: burst.value !== undefined ? burst.key : rate.key,
  };
}

/** Roles a bearer token can have; see {@link ROLES_BY_METHOD} in the services for what each may call. */
export const AUTH_ROLES = ["client", "worker", "viewer", "admin"] as const;
export type AuthRole = (typeof AUTH_ROLES)[number];

/** One bearer token, stored as its hash (`taskflow token create` prints the line). */
export const tokenEntrySchema = z.strictObject({
  /** `sha256:<64 hex digits>` of the token; the token itself is never stored. */
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 lowercase hex digits>"),
  /** `client` (submits and reads its tenant's tasks), `worker` (runs tasks), `viewer` (reads: dashboard, metrics, get/list/watch), `admin` (everything). */
  role: z.enum(AUTH_ROLES),
  /** The tenant its tasks belong to; tenants see only their own tasks. @defaultValue "default" */
  tenant: tenantName.default("default"),
  /** Who holds it, for logs and for binding worker IDs; unique. */
  name: z.string().min(1).max(128),
  /** Worker tokens: the only task types its workers may take; absent = any. @defaultValue any */
  taskTypes: z.array(z.string().min(1)).min(1).optional(),
});
export type TokenEntry = z.output<typeof tokenEntrySchema>;

/** Bearer-token authentication on the gRPC port (and the HTTP ports beyond loopback). */
const authSchema = z.strictObject({
  /** Accepted tokens with their roles and tenants; empty (and no `auth.tokensFile`) = no authentication. @defaultValue [] */
  tokens: z.array(tokenEntrySchema).default([]),
  /** A JSON file holding more entries like `auth.tokens` (an array), relative to the config file. @defaultValue none */
  tokensFile: z.string().min(1).optional(),
});

const logSchema = z.strictObject({
  /** `trace`, `debug`, `info`, `warn`, `error` or `silent`. @defaultValue "info" */
  level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** `json` (one object a line, for log shippers), `pretty` (readable lines), or `auto`: pretty on a terminal, else JSON. @defaultValue "auto" */
  format: z.enum(["auto", "json", "pretty"]).default("auto"),
});

export const configSchema = z.strictObject({
  /** Which roles this node runs. @defaultValue ["control", "worker"] */
  roles: z
    .array(z.enum(["control", "worker"]))
    .min(1)
    .default(["control", "worker"]),
  control: controlSchema.prefault({}),
  scheduler: schedulerSchema.prefault({}),
  store: storeSchema.prefault({}),
  liveness: livenessSchema.prefault({}),
  worker: workerSchema.prefault({}),
  log: logSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  dashboard: dashboardSchema.prefault({}),
  tls: tlsSchema.optional(),
  auth: authSchema.prefault({}),
  tenants: tenantsSchema.prefault({}),
  /**
   * Lets `control.host`, `metrics.host` or `dashboard.host` bind beyond loopback without TLS and
   * tokens: anyone who reaches the port can then do anything. Logs a warning. @defaultValue false
   */
  insecure: z.boolean().default(false),
});

/** A validated configuration with every default applied. */
export type TaskflowConfig = z.output<typeof configSchema>;
/** What a config file may contain (every key optional). */
export type TaskflowConfigInput = z.input<typeof configSchema>;

/** How to fix a key, shown after the error. */
const hints: Record<string, string> = {
  roles: 'use ["control"], ["worker"] or ["control", "worker"]',
  "control.port": "use a port number such as 50051, or 0 for any free port",
  "control.host": 'use an address to bind such as "127.0.0.1" or "0.0.0.0"',
  "control.maxPayloadBytes": "use a byte count such as 4194304 (4 MiB)",
  "control.heapBacking": 'use "sab" or "shm"',
  "control.taskHeapCapacity": "use a whole number of tasks from 1 to 16777216, such as 1048576",
  "control.workerHeapCapacity": "use a whole number of workers from 1 to 16777216, such as 131072",
  "control.maxReceiveMessageBytes": "use a byte count such as 8388608 (8 MiB), at least control.maxPayloadBytes + 65536",
  "control.maxStreamBufferBytes": "use a byte count such as 8388608 (8 MiB), at least 65536",
  "control.memoryBudget.heapFraction": "use a share of the heap limit above 0 and at most 1, such as 0.7",
  "control.memoryBudget.systemFraction": "use a share of the host's memory above 0 and at most 1, such as 0.8",
  "control.memoryBudget.heapBytes": "use a byte count below the heap limit (--max-old-space-size), such as 1073741824 (1 GiB), or leave it out to use heapFraction",
  "control.memoryBudget.rssBytes": "use a byte count below the host's memory, such as 2147483648 (2 GiB), or leave it out to use systemFraction",
  "control.memoryBudget.resumeFraction": "use a share of the budget above 0 and below 1, such as 0.9",
  "control.memoryBudget.sampleIntervalMs": "use an interval in ms from 10 to 10000, such as 200",
  "control.defaultTimeoutMs": `use a timeout in ms from 0 (none) to ${MAX_TIMEOUT_MS} (about 23 days)`,
  "scheduler.policy": 'use "fifo", "priority", "least-loaded" or an installed policy package name',
  "store.kind": 'use "memory", "sqlite" or "postgres"',
  "store.url": 'use a URL such as "postgres://taskflow@db.internal:5432/taskflow" (password in PGPASSWORD or ~/.pgpass)',
  "store.poolSize": "use a whole number of connections from 2 to 1000, such as 8",
  "store.schema": 'use a Postgres schema name such as "taskflow"',
  "store.ssl.ca": "give the path of the PEM CA certificate that signs the server's certificate, relative to the config file",
  "store.ssl.cert": "give the path of a PEM client certificate, relative to the config file",
  "store.ssl.key": "give the path of the PEM private key of store.ssl.cert, relative to the config file",
  "store.synchronous": 'use "normal" or "full"',
  "store.groupCommitMaxDelayMs": "use a delay in ms from 0 to 1000, such as 0 or 2",
  "store.writer": 'use "thread" or "inline"',
  "store.maxFinishedTasks": "use a whole number of tasks such as 1000000",
  "liveness.heartbeatTimeoutMs": "make it larger than liveness.heartbeatIntervalMs, for example 4 times",
  "worker.processes": "use a whole number of processes such as 2",
  "worker.slots": "use how many tasks one process runs at once, such as 16",
  "log.level": 'use "info", "debug", "warn" or "error"',
  "metrics.port": "use a free port such as 9464, or 0 for any free port",
  "metrics.host": 'use an address to bind such as "127.0.0.1"',
  "dashboard.port": "use a free port such as 9465, or 0 for any free port",
  "dashboard.host": 'use an address to bind such as "127.0.0.1"',
  "dashboard.allowedHosts": 'list host names without a port, such as ["taskflow.example.com"]',
  "metrics.allowedHosts": 'list host names without a port, such as ["node-1.internal"]',
  "tls.cert": "give the path of a PEM certificate chain, relative to the config file",
  "tls.key": "give the path of the PEM private key of tls.cert, relative to the config file",
  "tls.ca": "give the path of a PEM CA certificate, relative to the config file",
  "tenants.quotas.*.maxUnfinishedTasks": "use a whole number of tasks such as 10000, or 0 for no limit",
  "tenants.defaultQuota.maxUnfinishedTasks": "use a whole number of tasks such as 10000, or 0 for no limit",
  "tenants.quotas.*.submitsPerSecond": "use tasks per second such as 500, or 0 for no limit",
  "tenants.defaultQuota.submitsPerSecond": "use tasks per second such as 500, or 0 for no limit",
  "tenants.quotas.*.burst": "use a whole number of tasks of at least 1, such as 1000",
  "tenants.defaultQuota.burst": "use a whole number of tasks of at least 1, such as 1000",
  "tenants.quotas": "name tenants with 1-64 letters, digits, _ . or -, as in auth.tokens[].tenant",
  "auth.tokens": 'add entries printed by `taskflow token create --role client --tenant acme --name app1`',
};

/** True for an address only this host reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Validates a raw config object (as read from a file) and applies defaults.
 * @param source where it came from, named in errors (a file path).
 * @throws TaskflowError INVALID_ARGUMENT with reason `TASKFLOW_ERR_CONFIG`, naming every bad key.
 */
export function parseConfig(raw: unknown, source = "config"): TaskflowConfig {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => describeIssue(issue));
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${lines.join("\n  - ")}`, {
      reason: Reason.CONFIG,
    });
  }
  const config = parsed.data;
  if (config.liveness.heartbeatTimeoutMs <= config.liveness.heartbeatIntervalMs) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `invalid config in ${source}:\n  - liveness.heartbeatTimeoutMs (${config.liveness.heartbeatTimeoutMs}) must be larger than liveness.heartbeatIntervalMs (${config.liveness.heartbeatIntervalMs}); fix: ${hints["liveness.heartbeatTimeoutMs"]}`,
      { reason: Reason.CONFIG },
    );
  }
  const { maxReceiveMessageBytes, maxPayloadBytes } = config.control;
  if (maxReceiveMessageBytes < maxPayloadBytes + MESSAGE_OVERHEAD_BYTES) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `invalid config in ${source}:\n  - control.maxReceiveMessageBytes (${maxReceiveMessageBytes}) must be at least control.maxPayloadBytes (${maxPayloadBytes}) + ${MESSAGE_OVERHEAD_BYTES}, so that a task with the largest payload fits; fix: ${hints["control.maxReceiveMessageBytes"]}`,
      { reason: Reason.CONFIG },
    );
  }
  checkSecurity(config, source);
  checkTenants(config, source);
  checkStore(config, source);
  return config;
}

/** A `burst` needs a rate: without one it would silently do nothing. */
function checkTenants(config: TaskflowConfig, source: string): void {
  const problems: string[] = [];
  const entries: [string, string | undefined][] = [["tenants.defaultQuota", undefined], ...Object.keys(config.tenants.quotas).map((name) => [`tenants.quotas.${name}`, name] as [string, string])];
  for (const [key, name] of entries) {
    const own = name === undefined ? config.tenants.defaultQuota : config.tenants.quotas[name]!;
    if (own.burst === undefined) continue;
    const quota = tenantQuota(config, name ?? "");
    if (name === undefined ? !own.submitsPerSecond : !quota.submitsPerSecond) {
      problems.push(`${key}.burst: has no effect without a submitsPerSecond; fix: set ${key}.submitsPerSecond${name === undefined ? "" : " (or tenants.defaultQuota.submitsPerSecond)"}, or remove the burst`);
    }
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** Cross-key rules of `store`: what `kind: "postgres"` needs. */
function checkStore(config: TaskflowConfig, source: string): void {
  const { kind, url, ssl } = config.store;
  const problems: string[] = [];
  if (kind === "postgres" && !url) problems.push(`store.url: required with store.kind "postgres"; fix: ${hints["store.url"]}`);
  // node-postgres lets the URL's TLS parameters override the ssl options: one place only.
  if (ssl && url && /[?&](sslmode|sslrootcert|sslcert|sslkey)=/.test(url)) {
    problems.push("store.url: has TLS parameters (sslmode, sslrootcert, …) and store.ssl is set too, and the URL's would win; fix: remove them from store.url and keep store.ssl");
  }
  if (ssl && Boolean(ssl.cert) !== Boolean(ssl.key)) {
    problems.push(`store.ssl.${ssl.cert ? "key" : "cert"}: required with store.ssl.${ssl.cert ? "cert" : "key"}; fix: give both the client certificate and its private key`);
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** Cross-key rules of `tls`, `auth` and `insecure`, each naming the key and the fix. */
function checkSecurity(config: TaskflowConfig, source: string): void {
  const problems: string[] = [];
  const tls = config.tls;
  if (tls && Boolean(tls.cert) !== Boolean(tls.key)) {
    problems.push(`tls.${tls.cert ? "key" : "cert"}: required with tls.${tls.cert ? "cert" : "key"}; fix: give both the certificate and its private key`);
  }
  if (tls?.requireClientCert && !tls.ca) problems.push("tls.requireClientCert: needs tls.ca to check client certificates against; fix: set tls.ca to the CA that signs them");
  const names = new Set<string>();
  for (const [i, t] of config.auth.tokens.entries()) {
    if (names.has(t.name)) problems.push(`auth.tokens.${i}.name: "${t.name}" is used by another token; fix: give every token its own name`);
    names.add(t.name);
  }
  const serving = config.roles.includes("control");
  const tlsOn = Boolean(tls?.cert);
  const authOn = config.auth.tokens.length > 0 || Boolean(config.auth.tokensFile);
  const exposed: string[] = [];
  if (serving && !isLoopbackHost(config.control.host)) exposed.push(`control.host (${config.control.host})`);
  if (config.metrics.enabled && !isLoopbackHost(config.metrics.host)) exposed.push(`metrics.host (${config.metrics.host})`);
  if (serving && config.dashboard.enabled && !isLoopbackHost(config.dashboard.host)) exposed.push(`dashboard.host (${config.dashboard.host})`);
  if (exposed.length && !(tlsOn && authOn) && !config.insecure) {
    const missing = [tlsOn ? "" : "tls.cert/tls.key", authOn ? "" : "auth.tokens"].filter(Boolean).join(" and ");
    problems.push(
      `${exposed.join(", ")}: binds beyond loopback without ${missing}, so anyone on the network could run, read and cancel tasks; fix: set ${missing} (see README: Running a secure cluster), bind 127.0.0.1, or set "insecure": true to accept the risk`,
    );
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/**
 * A config value that parsed but that the node cannot start with, found only when used: a port
 * in use, a store folder it cannot create. FAILED_PRECONDITION with reason `TASKFLOW_ERR_CONFIG`,
 * worded like a config file error: `<key>: <problem>; fix: <fix>`.
 */
export function unusableConfig(key: string, problem: string, fix: string, cause?: unknown): TaskflowError {
  return new TaskflowError(Code.FAILED_PRECONDITION, `${key}: ${problem}; fix: ${fix}`, { reason: Reason.CONFIG, cause });
}

const SYSTEM_ERRORS: Record<string, string> = {
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "it is a file, not a folder",
  EISDIR: "it is a folder",
  ENOENT: "no such file or folder, and the file system does not allow creating it",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "no such address on this host",
  ENOTFOUND: "no such host name",
};

/**
 * The cause of an operating system error in words with its code, such as `read-only file
 * system (EROFS)`: the code of `err` or of an error in its `cause` chain, else its message.
 */
export function describeSystemError(err: unknown): string {
  const code = systemErrorCode(err);
  if (code) return `${SYSTEM_ERRORS[code] ?? code.toLowerCase()} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

/** The `E…` code of `err` or of its causes; grpc-js keeps it only in the message. */
export function systemErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
    const inMessage = /\b(E[A-Z]{4,})\b/.exec(e.message)?.[1];
    if (inMessage && inMessage in SYSTEM_ERRORS) return inMessage;
  }
  return undefined;
}

/** The defaults, as `parseConfig({})` gives them. */
export function defaultConfig(): TaskflowConfig {
  return parseConfig({});
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    return issue.keys
      .map((key) => {
        const full = path ? `${path}.${key}` : key;
        const known = knownKeys(issue.path);
        const guess = closest(key, known);
        const fix = guess ? `did you mean "${guess}"?` : `remove it; known keys here: ${known.join(", ")}`;
        return `unknown key "${full}": ${fix}`;
      })
      .join("\n  - ");
  }
  const where = path || "(top level)";
  const hint = hints[path] ?? hints[tenantHintPath(issue.path)];
  return `${where}: ${issue.message}${hint ? `; fix: ${hint}` : ""}`;
}

/** A tenant's name is a key of its own: `tenants.quotas.acme.burst` takes the hint of `tenants.quotas.*.burst`, a bad name that of `tenants.quotas`. */
function tenantHintPath(path: readonly PropertyKey[]): string {
  if (path[0] !== "tenants" || path[1] !== "quotas" || path.length < 3) return "";
  return path.length === 3 ? "tenants.quotas" : `tenants.quotas.*.${String(path[3])}`;
}

function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const part of path) {
    // A record (tenants.quotas): every key holds the same kind of object.
    const values = recordValues(schema);
    if (values) {
      schema = values;
      continue;
    }
    const shape = objectShape(schema);
    if (!shape) return [];
    schema = shape[String(part)] as z.ZodType;
  }
  return Object.keys(objectShape(schema) ?? {});
}

function recordValues(schema: z.ZodType): z.ZodType | undefined {
  let current: unknown = schema;
  for (let i = 0; i < 5 && current; i++) {
    const def = (current as { _zod?: { def?: { type?: string; valueType?: unknown; innerType?: unknown } } })._zod?.def;
    if (def?.type === "record") return def.valueType as z.ZodType;
    current = def?.innerType;
  }
  return undefined;
}

function objectShape(schema: z.ZodType): Record<string, unknown> | undefined {
  let current: unknown = schema;
  // Look through default/prefault/optional wrappers to the object inside.
  for (let i = 0; i < 5 && current; i++) {
    const def = (current as { _zod?: { def?: { shape?: Record<string, unknown>; innerType?: unknown; in?: unknown } } })._zod?.def;
    if (def?.shape) return def.shape;
    // A transform (control's derived defaults) is a pipe: its keys are those of its input.
    current = def?.innerType ?? def?.in;
  }
  return undefined;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
