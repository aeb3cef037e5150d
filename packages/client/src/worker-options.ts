/** The worker SDK's public types: handlers, options, held results and supervisor hooks. */
import type * as grpc from "@grpc/grpc-js";
import type { Codec } from "./codec.js";
import type { ConnectionOptions } from "./connection.js";

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
  /** The task's metadata, as submitted (`SubmitOptions.metadata`); empty when none. */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * A task graph's dependent (submitted with `dependsOn`, or in a flow): how each dependency
   * ended, in `dependsOn` order, results decoded with the worker's codec. Empty for a task
   * without dependencies.
   */
  readonly dependencies: readonly DependencyOutcome[];
}

/** How one dependency of a task ended, as its dependent's handler sees it. */
export interface DependencyOutcome<R = unknown> {
  readonly taskId: string;
  /** `"succeeded"`, or `"failed"` / `"cancelled"` for a dependent submitted with `onDependencyFailure: "run"`. */
  readonly state: "succeeded" | "failed" | "cancelled";
  /** Its decoded result when it succeeded (undefined when left out, see `resultOmitted`). */
  readonly result: R | undefined;
  /** Why it failed or was cancelled; "" when it succeeded. */
  readonly error: string;
  /**
   * The results of all dependencies together passed the control node's `control.maxPayloadBytes`,
   * so this one was left out of the assignment: read it with `client.result(taskId)`.
   */
  readonly resultOmitted: boolean;
}

// Handlers receive decoded JSON, whose shape only the application knows.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskHandler<P = any, R = unknown> = (payload: P, context: TaskContext) => R | Promise<R>;

export type HandlerMap = Record<string, TaskHandler>;

export interface WorkerOptions extends ConnectionOptions {
  /**
   * The control node's address; with standby control nodes, several (`"a:50051,b:50051"` or an
   * array): the worker connects to the leader and follows it on failover. @defaultValue "127.0.0.1:50051"
   */
  address?: string | readonly string[];
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
  /** Longest wait between reconnect attempts, in ms. @defaultValue 1000 */
  maxReconnectDelayMs?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
  /**
   * Share one connection with the other workers of this process that reach the same address with
   * equal options (grpc-js's global subchannel pool): each worker keeps its own session stream on
   * it. With thousands of workers in a few processes, one connection each cost the control node
   * 5× the CPU to connect them, 70% more per heartbeat and 30 KB more per worker (ADR 0031).
   * With TLS, pass one `credentials` object to every worker, or each still gets its own
   * connection. `false`: a connection of its own. @defaultValue true
   */
  shareConnection?: boolean;
  /** Called for session problems and handler crashes worth logging. */
  onLog?: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  /**
   * Results that an earlier incarnation of this worker (the same `workerId`) finished but the
   * control node may not have stored, for example rescued from a process that was killed. They are
   * held like results of this worker's own tasks: listed in the hello, sent after the welcome, and
   * kept until stored (`hooks.resultsStored` receives these very objects). @defaultValue []
   */
  heldResults?: readonly HeldResult[];
  /**
   * A handler whose signal aborted (timeout or cancellation) and whose promise has still not
   * settled this long after is reported to `hooks.handlerIgnoredAbort`, in ms. Its slot was freed
   * at the abort either way. @defaultValue 5000
   */
  abortGraceMs?: number;
  /** Hooks for a supervisor that watches this worker from outside its event loop. @defaultValue none */
  hooks?: WorkerHooks;
}

/** A finished task's outcome, held by the worker until the control node has stored it. */
export interface HeldResult {
  readonly taskId: string;
  readonly epoch: bigint;
  readonly ok: boolean;
  /** The encoded result when `ok`; empty otherwise. */
  readonly result: Uint8Array;
  /** Why it failed when not `ok`; empty otherwise. */
  readonly error: string;
  /** The handler threw an {@link UnrecoverableError}: the task fails without another attempt. @defaultValue false */
  readonly unrecoverable?: boolean;
}

/**
 * What a supervisor may follow, for example to keep a copy of held results where a watchdog thread
 * can reach them while a handler blocks the event loop. Every hook is optional and is called
 * synchronously on the worker's hot path, so keep them cheap and never throw from them.
 */
export interface WorkerHooks {
  /** A handler's synchronous part starts now (`handlerExited` follows when it returns or throws). */
  handlerEntered?(taskId: string, epoch: bigint): void;
  /** The handler's synchronous part has returned or thrown. */
  handlerExited?(): void;
  /** A result is held from now on: its task finished (or was refused) and is not yet stored. */
  resultHeld?(result: HeldResult): void;
  /** The control node stored these held results; the worker has forgotten them. */
  resultsStored?(results: readonly HeldResult[]): void;
  /**
   * A handler ignored its abort: `graceMs` (`abortGraceMs`) after its timeout or cancellation its
   * promise has not settled. It still holds whatever it holds; a supervisor may replace the process.
   */
  handlerIgnoredAbort?(taskId: string, type: string, graceMs: number): void;
}
