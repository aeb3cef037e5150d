/**
 * Following one task on the server with `WatchTask`, across restarts and failovers of the
 * control node: a watch that breaks with a transient failure (the node died, a standby answered
 * NOT_LEADER, the node ended the stream before the task finished) is opened again after a
 * backoff, on whichever node leads by then (the `LeaderChannel` moved on that UNAVAILABLE).
 * Each new watch opens with the task's current state; a state already reported is not reported
 * again, so the caller sees every change once and the final state exactly once.
 */
import type { Task, TaskService } from "@taskflow/proto";
import type { ServiceClient } from "@taskflow/proto/grpc";
import { Code, TaskflowError } from "@taskflow/core/base";
import { Backoff, retryDelay } from "./backoff.js";
import { isTransient, wireError } from "./errors.js";
import { isFinalState } from "./outcome.js";

export interface WatchSettings {
  /** Several control addresses: a broken watch is opened again sooner (see `retryDelay`). */
  followLeader: boolean;
  /** True once the client is closed: a broken watch then fails instead of opening again. */
  closed: () => boolean;
}

/**
 * Yields the task on every change until it finishes, or until `signal` aborts (then it returns
 * quietly). A transient failure opens the watch again; any other failure (NOT_FOUND,
 * PERMISSION_DENIED, the client closed) is thrown as a TaskflowError.
 */
export async function* followTask(
  tasks: ServiceClient<typeof TaskService.method>,
  taskId: string,
  settings: WatchSettings,
  signal?: AbortSignal,
): AsyncGenerator<Task> {
  const backoff = new Backoff();
  let last: Task | undefined;
  for (;;) {
    let failure: TaskflowError;
    const stream = tasks.watchTask({ taskId }, signal ? { signal } : {});
    try {
      for await (const msg of stream as AsyncIterable<{ task?: Task }>) {
        const task = msg.task;
        if (!task) continue;
        backoff.reset();
        // A watch opened again starts with the state the last one may already have reported.
        if (last && sameState(last, task)) continue;
        last = task;
        yield task;
        if (isFinalState(task.state)) return;
      }
      // A node that stops ends its streams; the task is not finished, so watch it elsewhere.
      failure = new TaskflowError(Code.UNAVAILABLE, `the control node ended the watch of task ${taskId} before it finished`);
    } catch (err) {
      if (signal?.aborted) return;
      failure = wireError(err);
    } finally {
      stream.cancel();
    }
    if (!isTransient(failure.code) || settings.closed()) throw failure;
    await pause(retryDelay(backoff, failure, settings.followLeader), signal);
    if (signal?.aborted) return;
    if (settings.closed()) throw new TaskflowError(Code.CANCELLED, "the client was closed");
  }
}

/** The same reported state: what a watch opened again sends first when nothing changed meanwhile. */
function sameState(a: Task, b: Task): boolean {
  return a.state === b.state && a.attempt === b.attempt && a.epoch === b.epoch && a.workerId === b.workerId;
}

/** Waits `ms`, or less when `signal` aborts. The timer keeps the process alive: someone awaits the task. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
