/**
 * The worker SDK: runs task handlers inside an application's own process. One bidirectional
 * session per worker carries hello, heartbeats and results up, assignments and cancellations
 * down. Results ride on heartbeats, and a heartbeat goes out at once when results are waiting.
 *
 * A result is held until the control node says it is stored: heartbeats that carry results are
 * numbered 1, 2, 3 … per session (`seq`), and `ResultsStored` lists the numbers whose results are
 * durable. When a session breaks, every result not yet stored is listed in the next hello and sent
 * again after the welcome; the control node acknowledges one it already has, so a control node
 * crash neither loses a result nor finishes a task twice.
 */
import { hostname } from "node:os";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core/base";
import { TaskState, WorkerService, type Assignment, type DependencyResult, type SessionRequest, type SessionResponse } from "@taskflow/proto";
import { decodeSessionResponse, encodeHeartbeat } from "@taskflow/proto/fast";
import { createClient, type ServiceClient } from "@taskflow/proto/grpc";
import { jsonCodec, type Codec } from "./codec.js";
import { controlConnection } from "./connection.js";
import { UnrecoverableError, wireError } from "./errors.js";
import { Backoff, retryDelay, type RetryCause } from "./backoff.js";
import { WORKER_DEFAULTS } from "./defaults.js";
import { chunkResults } from "./batching.js";
import type { DependencyOutcome, HandlerMap, HeldResult, TaskContext, WorkerHooks, WorkerOptions } from "./worker-options.js";

interface Running {
  taskId: string;
  epoch: bigint;
  /** Made only when the handler reads `context.signal`: most never do, and it costs. */
  controller: AbortController | undefined;
  aborted: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The handler returned a promise that has not settled yet. */
  pending: boolean;
  type: string;
}

const NO_DEPENDENCIES: readonly DependencyOutcome[] = Object.freeze([]);

const DEPENDENCY_STATES: Partial<Record<TaskState, DependencyOutcome["state"]>> = {
  [TaskState.SUCCEEDED]: "succeeded",
  [TaskState.FAILED]: "failed",
  [TaskState.CANCELLED]: "cancelled",
};

/** The context a handler gets; its signal is created on first use, its dependencies decoded on first use. */
class RunContext implements TaskContext {
  private decoded: readonly DependencyOutcome[] | undefined;

  constructor(
    private readonly entry: Running,
    readonly type: string,
    readonly attempt: number,
    readonly rawPayload: Uint8Array,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly wireDependencies: readonly DependencyResult[],
    private readonly codec: Codec,
  ) {}

  get dependencies(): readonly DependencyOutcome[] {
    if (this.decoded) return this.decoded;
    if (!this.wireDependencies.length) return (this.decoded = NO_DEPENDENCIES);
    return (this.decoded = this.wireDependencies.map((d) => ({
      taskId: d.taskId,
      state: DEPENDENCY_STATES[d.state] ?? "cancelled",
      result: d.state === TaskState.SUCCEEDED && !d.resultOmitted ? this.codec.decode(d.result) : undefined,
      error: d.error,
      resultOmitted: d.resultOmitted,
    })));
  }

  get taskId(): string {
    return this.entry.taskId;
  }

  get signal(): AbortSignal {
    const entry = this.entry;
    if (!entry.controller) {
      entry.controller = new AbortController();
      if (entry.aborted) entry.controller.abort(new Error("aborted"));
    }
    return entry.controller.signal;
  }
}

export class TaskflowWorker {
  readonly workerId: string;
  private readonly client: ServiceClient<typeof WorkerService.method>;
  private readonly handlers: HandlerMap;
  private readonly slots: number;
  private readonly prefetch: number;
  /** Assigned tasks waiting for a free slot. */
  private waiting: Assignment[] = [];
  private readonly codec: Codec;
  private readonly options: WorkerOptions;
  private session: grpc.ClientDuplexStream<SessionRequest | object, SessionResponse> | undefined;
  private readonly running = new Map<string, Running>();
  /** Held results not yet sent on the current session. */
  private results: HeldResult[] = [];
  /** Held results sent on the current session, by the `seq` of their heartbeat, until stored. */
  private readonly unstored = new Map<bigint, HeldResult[]>();
  /** Heartbeats with results sent on the current session: their numbering. */
  private seq = 0n;
  /** False for a control node that never sends ResultsStored (older than it): results are forgotten once sent. */
  private controlStoresResults = true;
  /** The current session was welcomed: results may go out on it. */
  private sessionOpen = false;
  /** No reconnecting any more: the worker has stopped or was refused. */
  private closed = false;
  private readonly hooks: WorkerHooks | undefined;
  /** Called when nothing is held any more. */
  private storedWaiters: (() => void)[] = [];
  private started: { taskId: string; epoch: bigint }[] = [];
  private released: { taskId: string; epoch: bigint }[] = [];
  /** Assignments received on the current session, acknowledged on every heartbeat. */
  private received = 0n;
  private ackPending = false;
  private stopped: Promise<void> | undefined;
  private pumping = false;
  private flushScheduled = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatIntervalMs = 500;
  private stopping = false;
  private draining = false;
  private readonly reconnectBackoff: Backoff;
  /** Several control addresses: reconnects after a broken session wait less (see `retryDelay`). */
  private readonly followLeader: boolean;
  private welcomed: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  private drainedResolve: (() => void) | undefined;
  /** Resolves when the control node asked this worker to drain and it has. */
  readonly drained: Promise<void>;
  /** Counters, for logs and tests. */
  readonly stats = { completed: 0, failed: 0, cancelled: 0 };

  constructor(options: WorkerOptions) {
    if (!options.handlers || Object.keys(options.handlers).length === 0) {
      throw new TaskflowError(Code.INVALID_ARGUMENT, "a worker needs at least one handler (options.handlers)");
    }
    this.options = options;
    this.handlers = options.handlers;
    this.slots = options.slots ?? WORKER_DEFAULTS.slots;
    this.prefetch = options.prefetch ?? this.slots;
    this.codec = options.codec ?? jsonCodec;
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}`;
    this.reconnectBackoff = new Backoff(100, options.maxReconnectDelayMs ?? WORKER_DEFAULTS.maxReconnectDelayMs);
    // Several addresses: the session goes to the leader among standby control nodes (ADR 0028).
    // One connection per process for its workers (ADR 0031), unless asked otherwise; grpc-js keeps
    // it while any worker uses it, and a broken one breaks every session on it, as a restart would.
    const shared = { "grpc.use_local_subchannel_pool": (options.shareConnection ?? WORKER_DEFAULTS.shareConnection) ? 0 : 1 };
    const { target, credentials, channelOptions, channel } = controlConnection(options.address ?? WORKER_DEFAULTS.address, options, { ...shared, ...options.channelOptions });
    this.followLeader = channel !== undefined;
    this.client = createClient(WorkerService, target, {
      credentials,
      channelOptions,
      channel,
      // Assignments arrive once per task: decoded by hand into the generated shape.
      responseDecoders: { session: decodeSessionResponse },
    });
    this.drained = new Promise((resolve) => (this.drainedResolve = resolve));
    this.hooks = options.hooks;
    for (const r of options.heldResults ?? []) this.hold(r);
  }

  /**
   * Connects and says hello; resolves once the control node welcomed this worker. Rejects, and
   * stops reconnecting, when the control node refuses the hello: INVALID_ARGUMENT,
   * UNAUTHENTICATED, PERMISSION_DENIED, or RESOURCE_EXHAUSTED (reason
   * `TASKFLOW_ERR_WORKER_CAPACITY`: it has `control.workerHeapCapacity` workers already).
   */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.welcomed = { resolve, reject };
      this.connect();
    });
  }

  /** Finishes running tasks (no new ones arrive once the control node drains it), then closes. */
  async drain(): Promise<void> {
    this.beginDrain();
    await this.waitIdle();
    await this.stop();
  }

  /** Takes no new work: hands back tasks not yet started and tells the control node. */
  private beginDrain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const a of this.waiting) this.released.push({ taskId: a.taskId, epoch: a.epoch });
    this.waiting = [];
    this.flush(true);
  }

  /**
   * Closes the session: running handlers see their signal abort, tasks not yet started are handed
   * back, and every held result goes out and is waited for until the control node has stored it
   * (reconnecting if the session breaks meanwhile). Resolves once the control node has closed its
   * side, all within `graceMs`, so a process may exit right after and lose nothing.
   */
  stop(graceMs = 2000): Promise<void> {
    if (this.stopped) return this.stopped;
    const deadline = Date.now() + graceMs;
    this.beginDrain();
    this.stopping = true;
    for (const r of [...this.running.values()]) this.abort(r, new Error("worker stopped"));
    this.flush();
    this.stopped = this.allStored(graceMs)
      .then(() => {
        this.closed = true;
        clearInterval(this.heartbeatTimer);
        const session = this.session;
        return new Promise<void>((resolve) => {
          if (!session) return resolve();
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          session.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          session.end();
        });
      })
      .then(() => {
        if (this.held > 0) this.log("warn", "stopped with results the control node has not confirmed", { results: this.held });
        this.client.raw.close();
        this.drainedResolve?.();
      });
    return this.stopped;
  }

  /** Results held: finished, not yet stored by the control node. */
  get held(): number {
    let n = this.results.length;
    for (const batch of this.unstored.values()) n += batch.length;
    return n;
  }

  /** Resolves when no result is held any more, or after `timeoutMs`. */
  private allStored(timeoutMs: number): Promise<void> {
    if (this.results.length === 0 && this.unstored.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      this.storedWaiters.push(done);
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** Tasks running or waiting for a slot. */
  get runningCount(): number {
    return this.running.size + this.waiting.length;
  }

  private waitIdle(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (this.running.size + this.waiting.length === 0 ? (this.flush(), resolve()) : setTimeout(check, 10));
      check();
    });
  }

  private log(level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void {
    this.options.onLog?.(level, message, fields);
  }

  private connect(): void {
    if (this.closed) return;
    const call = this.client.session();
    this.session = call;
    this.sessionOpen = false;
    this.seq = 0n;
    let welcomed = false;
    call.on("data", (msg: SessionResponse) => {
      switch (msg.kind.case) {
        case "welcome":
          welcomed = true;
          this.sessionOpen = true;
          this.seq = 0n;
          this.received = 0n;
          this.reconnectBackoff.reset();
          this.heartbeatIntervalMs = msg.kind.value.heartbeatIntervalMs || 500;
          this.controlStoresResults = msg.kind.value.storesResults;
          clearInterval(this.heartbeatTimer);
          this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatIntervalMs);
          this.heartbeatTimer.unref();
          this.welcomed?.resolve();
          this.welcomed = undefined;
          // Results held across the break go out now; the control node fences stale ones.
          if (this.results.length || this.started.length || this.released.length || this.draining) this.scheduleFlush();
          break;
        case "stored":
          for (const seq of msg.kind.value.seqs) {
            const batch = this.unstored.get(seq);
            if (!batch) continue;
            this.unstored.delete(seq);
            this.hooks?.resultsStored?.(batch);
          }
          if (this.storedWaiters.length && this.results.length === 0 && this.unstored.size === 0) {
            const waiters = this.storedWaiters;
            this.storedWaiters = [];
            for (const w of waiters) w();
          }
          break;
        case "assign":
          this.received += BigInt(msg.kind.value.assignments.length);
          this.ackPending = true;
          for (const a of msg.kind.value.assignments) {
            // Sent before the control node learnt we drain: hand it straight back.
            if (this.draining || this.stopping) this.released.push({ taskId: a.taskId, epoch: a.epoch });
            else this.waiting.push(a);
          }
          this.pump();
          this.scheduleFlush();
          break;
        case "cancel":
          for (const t of msg.kind.value.tasks) {
            const r = this.running.get(t.taskId);
            if (r && r.epoch === t.epoch) this.abort(r, new Error(msg.kind.value.reason || "cancelled"));
            const before = this.waiting.length;
            this.waiting = this.waiting.filter((a) => !(a.taskId === t.taskId && a.epoch === t.epoch));
            if (this.waiting.length !== before) {
              this.hold({ taskId: t.taskId, epoch: t.epoch, ok: false, result: new Uint8Array(0), error: msg.kind.value.reason || "cancelled" });
              this.scheduleFlush();
            }
          }
          break;
        case "drain":
          this.log("info", "control node asked this worker to drain");
          this.beginDrain();
          void this.waitIdle().then(() => this.stop());
          break;
        default:
          break;
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (this.closed) return;
      // Refused outright (a bad hello, no or the wrong credentials, a full register): retrying cannot help.
      const refused = [Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.RESOURCE_EXHAUSTED].includes(err.code as number);
      if (!welcomed && this.welcomed && refused) {
        this.welcomed.reject(wireError(err));
        this.welcomed = undefined;
        this.stopping = true;
        this.closed = true;
        return;
      }
      this.log("warn", "session to the control node broke; reconnecting", { error: err.message, held: this.held });
      this.reconnect(wireError(err));
    });
    call.on("end", () => {
      if (this.closed) return;
      // Draining or stopping: reconnect only to hand over results the control node has not stored.
      if ((this.draining || this.stopping) && this.held === 0 && this.running.size === 0) {
        void this.stop();
        return;
      }
      this.reconnect();
    });
    call.write({
      kind: {
        case: "hello",
        value: {
          workerId: this.workerId,
          host: this.options.host ?? hostname(),
          slots: this.slots,
          prefetch: this.prefetch,
          labels: this.options.labels ?? {},
          taskTypes: Object.keys(this.handlers),
          pid: process.pid,
          // Everything it still holds: running, waiting for a slot, or finished but not yet reported.
          running: [
            ...[...this.running.values()].map((r) => ({ taskId: r.taskId, epoch: r.epoch })),
            ...this.waiting.map((a) => ({ taskId: a.taskId, epoch: a.epoch })),
            ...this.results.map((r) => ({ taskId: r.taskId, epoch: r.epoch })),
          ],
        },
      },
    });
  }

  /** @param cause the error that broke the session: after a standby's NOT_LEADER it retries sooner. */
  private reconnect(cause?: RetryCause): void {
    clearInterval(this.heartbeatTimer);
    this.sessionOpen = false;
    // What the broken session did not confirm is held again: listed in the next hello, sent anew.
    if (this.unstored.size) {
      const unconfirmed: HeldResult[] = [];
      for (const batch of this.unstored.values()) for (const r of batch) unconfirmed.push(r);
      this.unstored.clear();
      this.results = unconfirmed.concat(this.results);
    }
    if (this.session) {
      this.session.removeAllListeners();
      this.session.on("error", () => {});
      this.session.cancel();
      this.session = undefined;
    }
    setTimeout(() => this.connect(), retryDelay(this.reconnectBackoff, cause, this.followLeader)).unref();
  }

  /** Starts waiting tasks while slots are free; a loop, not recursion, as handlers may finish synchronously. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running.size < this.slots && this.waiting.length && !this.stopping) this.run(this.waiting.shift()!);
    } finally {
      this.pumping = false;
    }
  }

  private run(a: Assignment): void {
    const entry: Running = { taskId: a.taskId, epoch: a.epoch, controller: undefined, aborted: false, timer: undefined, pending: false, type: a.type };
    this.running.set(a.taskId, entry);
    if (a.timeoutMs > 0) {
      entry.timer = setTimeout(() => this.abort(entry, new Error(`timed out after ${a.timeoutMs} ms`)), a.timeoutMs);
    }
    this.started.push({ taskId: a.taskId, epoch: a.epoch });
    const handler = this.handlers[a.type];
    try {
      if (!handler) throw new Error(`this worker has no handler for task type "${a.type}"`);
      const hooks = this.hooks;
      let value: unknown;
      if (hooks) {
        hooks.handlerEntered?.(a.taskId, a.epoch);
        try {
          value = handler(this.codec.decode(a.payload), new RunContext(entry, a.type, a.attempt, a.payload, a.metadata, a.dependencyResults, this.codec));
        } finally {
          hooks.handlerExited?.();
        }
      } else {
        value = handler(this.codec.decode(a.payload), new RunContext(entry, a.type, a.attempt, a.payload, a.metadata, a.dependencyResults, this.codec));
      }
      if (value instanceof Promise) {
        entry.pending = true;
        value.then(
          (v) => {
            entry.pending = false;
            this.succeed(entry, v);
          },
          (err: unknown) => {
            entry.pending = false;
            this.finish(entry, false, new Uint8Array(0), errorText(err), UnrecoverableError.is(err));
          },
        );
      } else {
        this.succeed(entry, value);
      }
    } catch (err) {
      this.finish(entry, false, new Uint8Array(0), errorText(err), UnrecoverableError.is(err));
    }
  }

  /** A handler returned: its value encoded, or a failed attempt when the codec cannot encode it. */
  private succeed(entry: Running, value: unknown): void {
    let bytes: Uint8Array;
    try {
      bytes = this.codec.encode(value);
    } catch (err) {
      // Thrown inside a promise callback this would be an unhandled rejection: the process would die.
      this.finish(entry, false, new Uint8Array(0), `the handler's result cannot be encoded: ${errorText(err)}`);
      return;
    }
    this.finish(entry, true, bytes, "");
  }

  /**
   * Cancelled, timed out or stopping: the handler's signal fires and the slot is free at once,
   * even if the handler ignores the signal (its late outcome is dropped by `finish`).
   */
  private abort(entry: Running, reason: Error): void {
    if (this.running.get(entry.taskId) !== entry) return;
    entry.aborted = true;
    entry.controller?.abort(reason);
    this.finish(entry, false, new Uint8Array(0), reason.message);
    const ignored = this.hooks?.handlerIgnoredAbort;
    if (ignored && entry.pending && !this.stopping) {
      const graceMs = this.options.abortGraceMs ?? WORKER_DEFAULTS.abortGraceMs;
      setTimeout(() => {
        if (entry.pending) ignored(entry.taskId, entry.type, graceMs);
      }, graceMs).unref();
    }
  }

  private finish(entry: Running, ok: boolean, result: Uint8Array, error: string, unrecoverable = false): void {
    if (this.running.get(entry.taskId) !== entry) return;
    clearTimeout(entry.timer);
    this.running.delete(entry.taskId);
    if (ok) this.stats.completed++;
    else if (entry.aborted) this.stats.cancelled++;
    else this.stats.failed++;
    this.hold(unrecoverable ? { taskId: entry.taskId, epoch: entry.epoch, ok, result, error, unrecoverable } : { taskId: entry.taskId, epoch: entry.epoch, ok, result, error });
    this.pump();
    this.scheduleFlush();
  }

  private hold(result: HeldResult): void {
    this.results.push(result);
    this.hooks?.resultHeld?.(result);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private heartbeat(): void {
    this.flush(true);
  }

  /** Sends waiting results (and start notices) as one heartbeat, numbered when it carries results. */
  private flush(force = false): void {
    const session = this.session;
    if (!session || !this.sessionOpen) return;
    if (!force && !this.results.length && !this.started.length && !this.released.length && !this.ackPending) return;
    // A task that started and finished within one flush needs no start notice.
    const finished = new Set(this.results.map((r) => r.taskId));
    const started = this.started.filter((s) => !finished.has(s.taskId));
    const results = this.results;
    const released = this.released;
    this.results = [];
    this.started = [];
    this.released = [];
    this.ackPending = false;
    // Results go out in heartbeats of at most ~4 MiB each (one result alone may be more): the
    // control node refuses a message past its receive limit whole, and the session with it.
    const chunks = chunkResults(results);
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      let seq = 0n;
      if (chunk.length && this.controlStoresResults) {
        seq = ++this.seq;
        this.unstored.set(seq, chunk);
      }
      // Hand-encoded SessionRequest{heartbeat}: it carries every result.
      session.write(
        encodeHeartbeat({
          running: this.running.size,
          results: chunk,
          started: i === 0 ? started : [],
          assignmentsReceived: this.received,
          draining: this.draining,
          released: i === 0 ? released : [],
          seq,
        }),
      );
    }
    if (results.length && !this.controlStoresResults) this.hooks?.resultsStored?.(results);
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
