/**
 * Checkpoints off the write path (ADR 0033). In WAL mode SQLite's automatic checkpoint runs
 * inside the COMMIT that takes the WAL past 1000 pages, and with `synchronous = NORMAL` it
 * fsyncs the WAL and the database file: a commit that normally takes 0.05 ms then takes 5–30 ms,
 * and every acknowledgement queued behind it waits. At 500 tasks/s one-row groups write about
 * 5 pages each, so that was every ~200 ms. Here a thread of its own checkpoints on its own
 * connection every {@link CHECKPOINT_INTERVAL_MS}, PASSIVE (it waits for no reader or writer),
 * and the writer's automatic checkpoint is kept only as a bound ({@link WRITER_CHECKPOINT_PAGES}).
 */
import { Worker } from "node:worker_threads";
import type { Synchronous } from "./connection.js";
import { WriterError, workerExecArgv } from "./writer.js";
import { failure, type WriteFailure } from "./writes.js";

/** How often the checkpoint thread copies the WAL back (about as often as 1000 pages fill at 500 tasks/s). */
export const CHECKPOINT_INTERVAL_MS = 100;
/** A WAL this long (pages of 4 KiB: 8 MiB) is caught up with passes {@link CATCH_UP_DELAY_MS} apart. */
export const CATCH_UP_FRAMES = 2000;
export const CATCH_UP_DELAY_MS = 5;
/**
 * A WAL still this long (pages of 4 KiB: 24 MiB) after a pass is started over on purpose: the
 * passes could not find a moment without commits (steady load does that), and the alternative is
 * the connections' own bound, whose checkpoint would then run in a commit (on the event loop,
 * for a small group). See the store's `restartWal`.
 */
export const RESTART_FRAMES = 6000;
/**
 * After a failed pass (a full disk, an I/O error) the thread tries again this much later: often
 * enough to take over soon after the cause goes, rarely enough not to spin on it.
 */
export const CHECKPOINT_RETRY_MS = 1000;

export interface CheckpointerData {
  path: string;
  synchronous: Synchronous;
  intervalMs: number;
  catchUpFrames: number;
  catchUpDelayMs: number;
  /** Report every pass that leaves the WAL at least this long (see RESTART_FRAMES). */
  restartFrames: number;
  /** How long after a failed pass the next one runs (see CHECKPOINT_RETRY_MS). */
  retryDelayMs: number;
  /** Report every pass that found frames (see trace.ts). */
  trace: boolean;
}

/** One checkpoint pass, reported when tracing or when it left the WAL long. */
export interface CheckpointPass {
  at: number;
  ms: number;
  /** Frames in the WAL, and how many of them are now in the database file. */
  frames: number;
  copied: number;
}

export type ToCheckpointer = { kind: "close" };
export type FromCheckpointer =
  | { kind: "ready" }
  /** Once per spell of failing passes (the thread keeps trying), or when it could not start. */
  | { kind: "failed"; failure: WriteFailure }
  /** A pass succeeded after failed ones. */
  | { kind: "recovered" }
  | ({ kind: "pass" } & CheckpointPass);

/** The checkpoint thread of one open store. It never keeps the process alive. */
export class Checkpointer {
  private closing = false;

  private constructor(private readonly worker: Worker) {}

  /**
   * Starts the thread and waits until its connection is open. A failure later only means the
   * writer checkpoints by itself again, at its bound, meanwhile: `onFailed` hears why, and
   * `onRecovered` when a pass succeeds again (a failed pass is retried; a dead thread is not).
   */
  static start(
    data: CheckpointerData,
    onPass: (pass: CheckpointPass) => void,
    onFailed: (why: WriteFailure) => void,
    onRecovered: () => void,
  ): Promise<Checkpointer> {
    const worker = new Worker(new URL("./checkpoint-thread.js", import.meta.url), { workerData: data, execArgv: workerExecArgv() });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new WriterError(failure(err)));
      const onExit = (code: number) => reject(new WriterError({ code: "", message: `the checkpoint thread exited during start (code ${code})` }));
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", (msg: FromCheckpointer) => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        if (msg.kind !== "ready") {
          void worker.terminate();
          reject(new WriterError(msg.kind === "failed" ? msg.failure : { code: "", message: "unexpected first message from the checkpoint thread" }));
          return;
        }
        const checkpointer = new Checkpointer(worker);
        worker.on("message", (m: FromCheckpointer) => {
          if (m.kind === "pass") onPass(m);
          else if (m.kind === "failed") onFailed(m.failure);
          else if (m.kind === "recovered") onRecovered();
        });
        worker.on("error", (err) => onFailed(failure(err)));
        worker.on("exit", (code) => {
          if (!checkpointer.closing) onFailed({ code: "", message: `the checkpoint thread exited unexpectedly (code ${code})` });
        });
        worker.unref();
        resolve(checkpointer);
      });
    });
  }

  /** Ends the thread after the pass it may be running. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    // A caller awaiting close must not see the process exit under it for want of a ref.
    this.worker.ref();
    this.worker.postMessage({ kind: "close" } satisfies ToCheckpointer);
    await exited;
  }
}
