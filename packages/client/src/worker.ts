/**
 * The worker SDK: runs task handlers inside an application's own process. One bidirectional
 * session per worker carries hello, heartbeats and results up, assignments and cancellations
 * down. Results ride on heartbeats, and a heartbeat goes out at once when results are waiting.
 */
import { hostname } from "node:os";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core";
import { WorkerService, type Assignment, type SessionRequest, type SessionResponse } from "@taskflow/proto";
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
  controller: AbortController;
  timer: NodeJS.Timeout | undefined;
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
    this.client = createClient(WorkerService, options.address ?? "127.0.0.1:50051", { channelOptions: options.channelOptions ?? {} });
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
    this.stop();
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
  stop(): void {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    for (const r of this.running.values()) r.controller.abort(new Error("worker stopped"));
    this.flush();
    this.session?.end();
    this.client.raw.close();
    this.drainedResolve?.();
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
            else if (this.running.size < this.slots) this.run(a);
            else this.waiting.push(a);
          }
          this.scheduleFlush();
          break;
        case "cancel":
          for (const t of msg.kind.value.tasks) {
            const r = this.running.get(t.taskId);
            if (r && r.epoch === t.epoch) r.controller.abort(new Error(msg.kind.value.reason || "cancelled"));
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
        this.stop();
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

  private run(a: Assignment): void {
    const controller = new AbortController();
    const entry: Running = { taskId: a.taskId, epoch: a.epoch, controller, timer: undefined };
    this.running.set(a.taskId, entry);
    if (a.timeoutMs > 0) {
      entry.timer = setTimeout(() => controller.abort(new Error(`timed out after ${a.timeoutMs} ms`)), a.timeoutMs);
    }
    const handler = this.handlers[a.type];
    const context: TaskContext = { taskId: a.taskId, type: a.type, attempt: a.attempt, signal: controller.signal, rawPayload: a.payload };
    this.started.push({ taskId: a.taskId, epoch: a.epoch });
    let promise: Promise<unknown>;
    try {
      if (!handler) throw new Error(`this worker has no handler for task type "${a.type}"`);
      const payload = this.codec.decode(a.payload);
      const value = handler(payload, context);
      promise = value instanceof Promise ? value : Promise.resolve(value);
    } catch (err) {
      promise = Promise.reject(err);
    }
    // An aborted task settles at once, even if its handler ignores the signal.
    const aborted = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason);
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    Promise.race([promise, aborted]).then(
      (value) => this.finish(entry, true, this.codec.encode(value), ""),
      (err: unknown) => this.finish(entry, false, new Uint8Array(0), errorText(err)),
    );
  }

  private finish(entry: Running, ok: boolean, result: Uint8Array, error: string): void {
    if (this.running.get(entry.taskId) !== entry) return;
    clearTimeout(entry.timer);
    this.running.delete(entry.taskId);
    if (ok) this.stats.completed++;
    else if (entry.controller.signal.aborted) this.stats.cancelled++;
    else this.stats.failed++;
    this.results.push({ taskId: entry.taskId, epoch: entry.epoch, ok, result, error });
    const next = this.waiting.shift();
    if (next && !this.stopping) this.run(next);
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
    session.write({
      kind: {
        case: "heartbeat",
        value: {
          running: this.running.size,
          results,
          started,
          assignmentsReceived: this.received,
          draining: this.draining,
          released,
        },
      },
    });
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
