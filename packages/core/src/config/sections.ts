/** The config's sections for the node's roles and servers: each key with its default and TSDoc. */
import { z } from "zod";
import { MAX_TIMEOUT_MS } from "../model.js";
import { DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT } from "./addresses.js";

const MiB = 1024 * 1024;
/** Most records a shared-memory heap holds (`@taskflow/shm-heap`'s MAX_HEAP_CAPACITY, 2^24). */
export const MAX_HEAP_CAPACITY = 16 * MiB;
/** `control.hotQueueDepth`'s default: about 64 MB of queued task objects before packing starts. */
export const DEFAULT_HOT_QUEUE_DEPTH = 65_536;

/**
 * Room a request needs beside one task's payload (type, labels, IDs, framing): the control node's
 * receive limit is never below `control.maxPayloadBytes` plus this, so the largest payload fits.
 */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/**
 * What `control.taskHeapCapacity: "auto"` sets aside per task of the resident-memory budget: a
 * plain queued task costs ~190 bytes off the JavaScript heap and its two heap slots 88 bytes
 * (docs/adr/0030-off-heap-queued-tasks.md), which leaves ~750 bytes of payload a task on average.
 */
export const AUTO_CAPACITY_BYTES_PER_TASK = 1024;

/**
 * The task heap capacity `"auto"` gives for a resident-memory budget (`control.memoryBudget`):
 * one task per {@link AUTO_CAPACITY_BYTES_PER_TASK}, in steps of 65,536, from 65,536 to
 * {@link MAX_HEAP_CAPACITY}.
 */
export function autoTaskHeapCapacity(rssBudgetBytes: number): number {
  const step = 65_536;
  const sized = Math.floor(rssBudgetBytes / AUTO_CAPACITY_BYTES_PER_TASK / step) * step;
  return Math.min(MAX_HEAP_CAPACITY, Math.max(step, sized));
}

const port = z.number().int().min(0).max(65535);
/** Host names (with no port) an HTTP server answers besides its own address and, on loopback, `localhost`. */
const allowedHosts = z.array(z.string().min(1).regex(/^[^\s/:]+$|^\[[0-9A-Fa-f:.]+\]$/, "must be a host name or address without a port")).default([]);
export const positiveInt = z.number().int().positive();
const labels = z.record(z.string().min(1), z.string());

/**
 * How much memory queued tasks may bring the control node to before submits are refused with
 * RESOURCE_EXHAUSTED (`TASKFLOW_ERR_MEMORY`), so that it never dies of an out-of-memory error
 * holding them. Two budgets, each checked on a sample taken every `sampleIntervalMs` plus an
 * estimate of what was accepted since: the V8 heap in use against its limit, and the process's
 * resident memory against the host's (or its cgroup's) memory. Submits resume once both are
 * below `resumeFraction` of their budget. @see docs/adr/0021-memory-admission.md
 */
export const memoryBudgetSchema = z.strictObject({
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
export { DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT } from "./addresses.js";

/** The control role: PLM, Scheduler and Register behind one gRPC server. */
export const controlSchema = z.strictObject({
  /** Address the gRPC server binds. @defaultValue "127.0.0.1" */
  host: z.string().min(1).default(DEFAULT_CONTROL_HOST),
  /** Port the gRPC server binds; 0 picks a free one. @defaultValue 50051 */
  port: port.default(DEFAULT_CONTROL_PORT),
  /** Largest accepted task payload in bytes; bigger submits get RESOURCE_EXHAUSTED. @defaultValue 4 MiB */
  maxPayloadBytes: positiveInt.max(64 * MiB).default(4 * MiB),
  /**
   * Most unfinished tasks at once (the task heap's capacity); more submits get RESOURCE_EXHAUSTED.
   * `"auto"` sizes it from memory: one task per 1 KiB of the resident-memory budget
   * (`control.memoryBudget.rssBytes`, else `systemFraction` of the host's or cgroup's memory), in
   * steps of 65,536, from 65,536 to 16,777,216 (16,777,216 on a host with 20 GiB or more).
   * A number sets it: 1 to 16777216 (2^24, what the heap's handles address). Two heaps of this
   * size are allocated at start, 44 bytes a task each, 12 of them resident from the start (about
   * 400 MB resident at the maximum); queued tasks are kept off the JavaScript heap, so the whole
   * range is usable (docs/adr/0030-off-heap-queued-tasks.md).
   * @defaultValue "auto"
   */
  taskHeapCapacity: z.union([positiveInt.max(MAX_HEAP_CAPACITY), z.literal("auto")]).default("auto"),
  /**
   * Queue depth up to which a queued task stays a JavaScript object (about 1 KB). A plain task
   * queued while more than this many wait is packed off the JavaScript heap instead (about 190
   * bytes beside its payload; packing and unpacking cost the control node a few µs per task):
   * a short queue runs at full speed, a deep one fits in memory. 0 packs every plain queued task.
   * See docs/adr/0030-off-heap-queued-tasks.md.
   * @defaultValue 65536
   */
  hotQueueDepth: z.number().int().min(0).max(MAX_HEAP_CAPACITY).default(DEFAULT_HOT_QUEUE_DEPTH),
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
  /**
   * Record a trace for `taskflow simulate`: the control node appends one JSON line per task
   * submitted, started and finished (type, tenant, priority, metadata, expected duration,
   * arrival time; run times) to this file, relative to the config file's folder. Off when
   * absent: no listener, nothing built per task. @defaultValue none
   */
  traceFile: z.string().min(1).optional(),
}).transform((control) => ({
  ...control,
  maxReceiveMessageBytes: control.maxReceiveMessageBytes ?? Math.max(8 * MiB, control.maxPayloadBytes + MESSAGE_OVERHEAD_BYTES),
}));

export const schedulerSchema = z.strictObject({
  /**
   * The scheduling policy: `fifo`, `priority`, `least-loaded`, `fair-share`, or the name of an npm package that
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
export const postgresSslSchema = z.strictObject({
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

export const storeSchema = z.strictObject({
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
  /** Postgres: most connections the node opens to the server (up to two write group commits at once, the others read). @defaultValue 8 */
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
  /**
   * SQLite: `thread` writes on a worker thread (keeps the event loop free; a group of at most 8
   * rows made while that thread is idle commits on the main thread, which is quicker), `inline`
   * on the main thread. @defaultValue "thread"
   */
  writer: z.enum(["thread", "inline"]).default("thread"),
  /** Memory: most finished tasks kept; the oldest go first beyond it, whatever `control.resultRetentionMs` says. @defaultValue 1000000 */
  maxFinishedTasks: positiveInt.default(1_000_000),
});

export const livenessSchema = z.strictObject({
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
  /**
   * Heartbeats a second the control node paces its workers toward. Up to
   * `maxHeartbeatsPerSecond × heartbeatIntervalMs / 1000` workers (2,000 by default) each beat
   * every `heartbeatIntervalMs`; a worker welcomed beyond that is told to beat k times slower
   * (k = workers ÷ that many, rounded up; at most 10 s apart), and its suspect and dead
   * thresholds stretch by k too. A worker keeps its pace until it reconnects. At 10,000 workers
   * this halves the heartbeats, the control node's main cost when idle (ADR 0031).
   * @defaultValue 4000
   */
  maxHeartbeatsPerSecond: positiveInt.max(1_000_000).default(4000),
});

/** The worker role: processes that run task handlers. */
export const workerSchema = z.strictObject({
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
export const metricsSchema = z.strictObject({
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
  /**
   * Most workers with their own series (`taskflow_worker_running_tasks`, `_slots`,
   * `_heartbeat_age_seconds`, labelled `worker_id`): the first this many to join. The aggregates
   * (`taskflow_workers`, `taskflow_workers_slots`, `taskflow_workers_running_tasks`,
   * `taskflow_workers_heartbeat_age_max_seconds`) always count every worker. 0 turns per-worker
   * series off. A scrape of 10,000 workers' series took 0.5–1.5 s on a loaded control node; this
   * bound keeps it in milliseconds (ADR 0031). @defaultValue 100
   */
  maxWorkerSeries: z.number().int().min(0).max(1_000_000).default(100),
});

/** The live web dashboard of the control role, with its JSON API and event stream. */
export const dashboardSchema = z.strictObject({
  /** Serve the dashboard (control role only). @defaultValue true */
  enabled: z.boolean().default(true),
  /** Address the dashboard HTTP server binds. It can cancel tasks and drain workers: keep it on loopback. @defaultValue "127.0.0.1" */
  host: z.string().min(1).default("127.0.0.1"),
  /** Port of the dashboard HTTP server; 0 picks a free one (printed on the ready line). @defaultValue 9465 */
  port: port.default(9465),
  /** Minutes of queue depth and throughput the charts keep (one sample a second). @defaultValue 10 */
  historyMinutes: positiveInt.max(120).default(10),
  /**
   * Most workers the dashboard lists (the first to join); it shows the counts of all of them
   * beside the list. Its once-a-second update carries the list, so at 10,000 workers a full
   * list would be megabytes a second (ADR 0031). @defaultValue 200
   */
  maxWorkersListed: positiveInt.max(100_000).default(200),
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
export const tlsSchema = z.strictObject({
  /** This node's certificate chain (PEM): the server certificate, also shown as the client certificate of its worker role under mTLS. @defaultValue none (no TLS) */
  cert: z.string().min(1).optional(),
  /** The private key of `tls.cert` (PEM). @defaultValue none */
  key: z.string().min(1).optional(),
  /** CA certificates (PEM) that clients' certificates (mTLS) and, for the worker role, the control node's certificate must chain to. @defaultValue none (the system's CAs for the worker role) */
  ca: z.string().min(1).optional(),
  /** mTLS: refuse a gRPC or HTTPS connection without a client certificate signed by `tls.ca`. @defaultValue false */
  requireClientCert: z.boolean().default(false),
});

