/**
 * The worker SDK: runs task handlers inside an application's own process. One bidirectional
 * session per worker carries hello, heartbeats and results up, assignments and cancellations
 * down. Results ride on heartbeats, and a heartbeat goes out at once when results are waiting.
 */
import { hostname } from "node:os";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core";
import { WorkerService, type Assignment, type SessionRequest, type SessionResponse } from "@taskflow/proto";
import { decodeSessionResponse, encodeHeartbeat } from "@taskflow/proto/fast";
import { createClient, type ServiceClient } from "@taskflow/proto/grpc";
import { jsonCodec, type Codec } from "./codec.js";

/** What a handler gets besides its payload. */
export interface TaskContext {
  readonly taskId: string;
  readonly type: string;
  /** 1 on the first run. */
  readonly attempt: number;
  /** Fires when the task is cancelled, times out, or the worker stops. */
  readonly signal: AbortSignal;
  /** The payload's raw bytes. */
  readonly rawPayload: Uint8Array;
}

// Handlers receive decoded JSON, whose shape only the application knows.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskHandler<P = any, R = unknown> = (payload: P, context: TaskContext) => R | Promise<R>;

export type HandlerMap = Record<string, TaskHandler>;

export interface WorkerOptions {
  /** The control node's address. @defaultValue "127.0.0.1:50051" */
  address?: string;
  /** Handlers by task type. Required. */
  handlers: HandlerMap;
  /** Tasks run at once. @defaultValue 16 */
  slots?: number;
  /**
   * Tasks the control node may send beyond `slots`; they wait here for a free slot. Hides the
   * round trip between a result and the next assignment, at the cost of holding tasks another
   * idle worker could have run. @defaultValue equal to `slots`
   */
  prefetch?: number;
  /** Labels tasks can require. @defaultValue {} */
  labels?: Record<string, string>;
  /** Stable ID; a worker that reconnects with the same ID keeps its tasks. @defaultValue `${hostname}-${pid}` */
  workerId?: string;
  /** @defaultValue os.hostname() */
  host?: string;
  /** How payloads and results are encoded. @defaultValue JSON */
  codec?: Codec;
  /** Longest wait between reconnect attempts, in ms. @defaultValue 2000 */
  maxReconnectDelayMs?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
  /** Called for session problems and handler crashes worth logging. */
  onLog?: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
}

interface Running {
  taskId: string;
  epoch: bigint;
  /** Made only when the handler reads `context.signal`: most never do, and it costs. */
  controller: AbortController | undefined;
  aborted: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The context a handler gets; its signal is created on first use. */
class RunContext implements TaskContext {
  constructor(
    private readonly entry: Running,
    readonly type: string,
    readonly attempt: number,
    readonly rawPayload: Uint8Array,
  ) {}

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

interface ResultOut {
  taskId: string;
  epoch: bigint;
  ok: boolean;
  result: Uint8Array;
  error: string;
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
  private results: ResultOut[] = [];
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
  private reconnectDelay = 100;
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
    this.slots = options.slots ?? 16;
    this.prefetch = options.prefetch ?? this.slots;
    this.codec = options.codec ?? jsonCodec;
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}`;
    this.client = createClient(WorkerService, options.address ?? "127.0.0.1:50051", {
      channelOptions: options.channelOptions ?? {},
      // Assignments arrive once per task: decoded by hand into the generated shape.
      responseDecoders: { session: decodeSessionResponse },
    });
    this.drained = new Promise((resolve) => (this.drainedResolve = resolve));
  }

  /** Connects and says hello; resolves once the control node welcomed this worker. */
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

  /** Closes at once; running handlers see their signal abort. */
  /**
   * Closes the session: running handlers see their signal abort, and what is unreported goes out
   * first. Resolves once the control node has closed its side (at most `graceMs`), so a process
   * may exit right after without losing the last heartbeat.
   */
  stop(graceMs = 2000): Promise<void> {
    if (this.stopped) return this.stopped;
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    for (const r of [...this.running.values()]) this.abort(r, new Error("worker stopped"));
    this.flush();
    const session = this.session;
    this.stopped = new Promise<void>((resolve) => {
      if (!session) return resolve();
      const timer = setTimeout(resolve, graceMs);
      session.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      session.end();
    }).then(() => {
      this.client.raw.close();
      this.drainedResolve?.();
    });
    return this.stopped;
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
    if (this.stopping) return;
    const call = this.client.session();
    this.session = call;
    let welcomed = false;
    call.on("data", (msg: SessionResponse) => {
      switch (msg.kind.case) {
        case "welcome":
          welcomed = true;
          this.received = 0n;
          this.reconnectDelay = 100;
          this.heartbeatIntervalMs = msg.kind.value.heartbeatIntervalMs || 500;
          clearInterval(this.heartbeatTimer);
          this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatIntervalMs);
          this.heartbeatTimer.unref();
          this.welcomed?.resolve();
          this.welcomed = undefined;
          // Results that finished while disconnected go out now; the control node fences stale ones.
          if (this.results.length) this.scheduleFlush();
          break;
        case "assign":
          this.received += BigInt(msg.kind.value.assignments.length);
          this.ackPending = true;
          for (const a of msg.kind.value.assignments) {
            // Sent before the control node learnt we drain: hand it straight back.
            if (this.draining) this.released.push({ taskId: a.taskId, epoch: a.epoch });
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
              this.results.push({ taskId: t.taskId, epoch: t.epoch, ok: false, result: new Uint8Array(0), error: msg.kind.value.reason || "cancelled" });
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
      if (this.stopping) return;
      if (!welcomed && this.welcomed && (err.code as number) === Code.INVALID_ARGUMENT) {
        this.welcomed.reject(TaskflowError.from(err));
        this.welcomed = undefined;
        this.stopping = true;
        return;
      }
      this.log("warn", "session to the control node broke; reconnecting", { error: err.message });
      this.reconnect();
    });
    call.on("end", () => {
      if (this.stopping) return;
      if (this.draining) {
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

  private reconnect(): void {
    clearInterval(this.heartbeatTimer);
    if (this.session) {
      this.session.removeAllListeners();
      this.session.on("error", () => {});
      this.session.cancel();
      this.session = undefined;
    }
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(delay * 2, this.options.maxReconnectDelayMs ?? 2000);
    setTimeout(() => this.connect(), delay).unref();
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
    const entry: Running = { taskId: a.taskId, epoch: a.epoch, controller: undefined, aborted: false, timer: undefined };
    this.running.set(a.taskId, entry);
    if (a.timeoutMs > 0) {
      entry.timer = setTimeout(() => this.abort(entry, new Error(`timed out after ${a.timeoutMs} ms`)), a.timeoutMs);
    }
    this.started.push({ taskId: a.taskId, epoch: a.epoch });
    const handler = this.handlers[a.type];
    try {
      if (!handler) throw new Error(`this worker has no handler for task type "${a.type}"`);
      const value = handler(this.codec.decode(a.payload), new RunContext(entry, a.type, a.attempt, a.payload));
      if (value instanceof Promise) {
        value.then(
          (v) => this.finish(entry, true, this.codec.encode(v), ""),
          (err: unknown) => this.finish(entry, false, new Uint8Array(0), errorText(err)),
        );
      } else {
        this.finish(entry, true, this.codec.encode(value), "");
      }
    } catch (err) {
      this.finish(entry, false, new Uint8Array(0), errorText(err));
    }
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
  }

  private finish(entry: Running, ok: boolean, result: Uint8Array, error: string): void {
    if (this.running.get(entry.taskId) !== entry) return;
    clearTimeout(entry.timer);
    this.running.delete(entry.taskId);
    if (ok) this.stats.completed++;
    else if (entry.aborted) this.stats.cancelled++;
    else this.stats.failed++;
    this.results.push({ taskId: entry.taskId, epoch: entry.epoch, ok, result, error });
    this.pump();
    this.scheduleFlush();
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

  /** Sends waiting results (and start notices) as one heartbeat. */
  private flush(force = false): void {
    const session = this.session;
    if (!session || (!force && !this.results.length && !this.started.length && !this.released.length && !this.ackPending)) return;
    // A task that started and finished within one flush needs no start notice.
    const finished = new Set(this.results.map((r) => r.taskId));
    const started = this.started.filter((s) => !finished.has(s.taskId));
    const results = this.results;
    const released = this.released;
    this.results = [];
    this.started = [];
    this.released = [];
    this.ackPending = false;
    // Hand-encoded SessionRequest{heartbeat}: it carries every result.
    session.write(
      encodeHeartbeat({
        running: this.running.size,
        results,
        started,
        assignmentsReceived: this.received,
        draining: this.draining,
        released,
      }),
    );
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
