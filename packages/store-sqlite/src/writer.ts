/**
 * Where the writes run. `ThreadWriter` gives them a worker thread with its own connection, so
 * the control node's event loop spends about 4–7 µs per row preparing and handing them over
 * instead of the 15–25 µs SQLite takes; `InlineWriter` runs them on the caller's thread.
 */
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { Synchronous } from "./connection.js";
import { encodeGroup, failure, prepareWrites, type GroupResult, type ScheduleWrite, type WireGroup, type WriteCall, type WriteFailure, type Writes } from "./writes.js";

export interface Writer {
  /** True when nothing sent to it is still running or queued. */
  readonly idle: boolean;
  commitGroup(calls: WriteCall[]): Promise<GroupResult>;
  purge(beforeMs: number): Promise<number>;
  schedule(write: ScheduleWrite): Promise<number>;
  /**
   * Copies what the checkpoint thread has not yet copied, on the writer's connection and in order
   * with what was sent before; nothing commits meanwhile, so the next write starts the WAL over.
   */
  checkpoint(): Promise<void>;
  close(): Promise<void>;
}

/** The code of the failure reported once the writer thread is gone. */
export const WRITER_GONE = "TASKFLOW_SQLITE_WRITER_GONE";

/** Thrown for a failure outside any one call (the thread died, a purge failed). */
export class WriterError extends Error {
  constructor(readonly failure: WriteFailure) {
    super(failure.message);
  }
  get code(): string {
    return this.failure.code;
  }
}

export class InlineWriter implements Writer {
  readonly idle = true;
  private readonly writes: Writes;

  constructor(db: Database.Database) {
    this.writes = prepareWrites(db);
  }

  async commitGroup(calls: WriteCall[]): Promise<GroupResult> {
    return this.writes.commitGroup(calls);
  }

  async purge(beforeMs: number): Promise<number> {
    return this.writes.purge(beforeMs);
  }

  async schedule(write: ScheduleWrite): Promise<number> {
    return this.writes.schedule(write);
  }

  /** Nothing: here it would stop the event loop for its fsyncs; the connection's own bound applies. */
  async checkpoint(): Promise<void> {}

  async close(): Promise<void> {}
}

/** Messages to the writer thread. */
export type ToWriter =
  | { kind: "commit"; id: number; group: WireGroup }
  | { kind: "purge"; id: number; beforeMs: number }
  | { kind: "schedule"; id: number; write: ScheduleWrite }
  | { kind: "checkpoint"; id: number }
  | { kind: "close" };

/** Messages from the writer thread. */
export type FromWriter =
  | { kind: "ready" }
  | { kind: "failed"; failure: WriteFailure }
  | { kind: "done"; id: number; result: GroupResult | number }
  | { kind: "error"; id: number; failure: WriteFailure };

export interface WriterThreadData {
  path: string;
  synchronous: Synchronous;
  /** Time each commit and watch for WAL resets (see trace.ts). */
  trace: boolean;
}

interface Waiting {
  resolve: (result: GroupResult | number) => void;
  reject: (err: Error) => void;
}

/**
 * The parent's Node options minus those about an inline script (`-e`, `-p`, `--input-type`):
 * a worker inherits them by default and then refuses to start from a file.
 */
export function workerExecArgv(): string[] {
  const args: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (["-e", "--eval", "-p", "--print", "-pe", "--input-type"].includes(arg)) i++;
    else if (/^(--eval|--print|--input-type)=/.test(arg)) continue;
    else args.push(arg);
  }
  return args;
}

export class ThreadWriter implements Writer {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private broken: WriterError | undefined;
  private closing = false;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (msg: FromWriter) => {
      if (msg.kind !== "done" && msg.kind !== "error") return;
      const waiting = this.waiting.get(msg.id);
      if (!waiting) return;
      this.waiting.delete(msg.id);
      this.refWhileBusy();
      if (msg.kind === "done") waiting.resolve(msg.result);
      else waiting.reject(new WriterError(msg.failure));
    });
    worker.on("error", (err) => this.fail(failure(err)));
    worker.on("exit", (code) => {
      if (!this.closing) this.fail({ code: WRITER_GONE, message: `the writer thread exited unexpectedly (code ${code})` });
    });
  }

  /** A dead thread is never idle: every write then goes to it and fails UNAVAILABLE (ADR 0005). */
  get idle(): boolean {
    return this.waiting.size === 0 && !this.broken;
  }

  /** Starts the thread and waits until its connection is open. */
  static start(data: WriterThreadData): Promise<ThreadWriter> {
    const worker = new Worker(new URL("./writer-thread.js", import.meta.url), { workerData: data, execArgv: workerExecArgv() });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new WriterError(failure(err)));
      const onExit = (code: number) => reject(new WriterError({ code: "", message: `the writer thread exited during start (code ${code})` }));
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", (msg: FromWriter) => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        if (msg.kind === "ready") {
          const writer = new ThreadWriter(worker);
          writer.refWhileBusy();
          resolve(writer);
        } else {
          void worker.terminate();
          reject(new WriterError(msg.kind === "failed" ? msg.failure : { code: "", message: "unexpected first message from the writer thread" }));
        }
      });
    });
  }

  commitGroup(calls: WriteCall[]): Promise<GroupResult> {
    const group = encodeGroup(calls);
    return this.request({ kind: "commit", id: this.nextId++, group }, [group.bytes.buffer as ArrayBuffer]) as Promise<GroupResult>;
  }

  purge(beforeMs: number): Promise<number> {
    return this.request({ kind: "purge", id: this.nextId++, beforeMs }, []) as Promise<number>;
  }

  schedule(write: ScheduleWrite): Promise<number> {
    return this.request({ kind: "schedule", id: this.nextId++, write }, []) as Promise<number>;
  }

  async checkpoint(): Promise<void> {
    await this.request({ kind: "checkpoint", id: this.nextId++ }, []);
  }

  /** Lets queued work finish (messages are handled in order), then ends the thread. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.broken) {
      await this.worker.terminate();
      return;
    }
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.ref();
    this.worker.postMessage({ kind: "close" } satisfies ToWriter);
    await exited;
  }

  private request(msg: ToWriter & { id: number }, transfer: ArrayBuffer[]): Promise<GroupResult | number> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.waiting.set(msg.id, { resolve, reject });
      this.refWhileBusy();
      this.worker.postMessage(msg, transfer);
    });
  }

  /**
   * An idle store must not keep the process alive (the in-memory one does not), but a process
   * waiting for an acknowledgement must not exit before it comes.
   */
  private refWhileBusy(): void {
    if (this.waiting.size > 0) this.worker.ref();
    else this.worker.unref();
  }

  private fail(why: WriteFailure): void {
    this.broken ??= new WriterError(why);
    for (const waiting of this.waiting.values()) waiting.reject(this.broken);
    this.waiting.clear();
    this.refWhileBusy();
  }
}
