/** How a finished task is handed to whoever awaits it: an outcome, or a value or a thrown error. */
import { Code, Reason, TaskflowError } from "@taskflow/core/base";
import { TaskState, taskStateName, type Task, type TaskResult } from "@taskflow/proto";
import type { Codec } from "./codec.js";

/** A finished task's outcome as the SDK gives it. */
export interface Outcome<T = unknown> {
  taskId: string;
  state: "succeeded" | "failed" | "cancelled";
  /** Decoded result when succeeded. */
  value: T | undefined;
  error: string;
  attempt: number;
  workerId: string;
}

export function isFinalState(state: TaskState): boolean {
  return state === TaskState.SUCCEEDED || state === TaskState.FAILED || state === TaskState.CANCELLED;
}

/** Options of `TaskflowClient.result` and `TaskflowClient.outcome`. */
export interface AwaitOptions {
  /**
   * Stops waiting when it aborts: the call rejects with CANCELLED, or DEADLINE_EXCEEDED for
   * `AbortSignal.timeout(ms)`. The task is not cancelled, and its outcome can still be awaited.
   * Without it a wait lasts until the task ends or the client closes, across restarts and
   * failovers of the control node. @defaultValue none
   */
  signal?: AbortSignal;
}

/** The error a wait for `taskId` stopped by `signal` rejects with. */
export function abortedWait(taskId: string, signal: AbortSignal): TaskflowError {
  const timedOut = (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return new TaskflowError(timedOut ? Code.DEADLINE_EXCEEDED : Code.CANCELLED, `stopped waiting for task ${taskId}: ${timedOut ? "timed out" : "aborted"}`, {
    cause: signal.reason,
  });
}

/** Someone awaiting a task: `result()` wants the value (or a thrown error), `outcome()` the outcome. */
export interface Waiter {
  resolve: Resolve<unknown>;
  reject: Reject;
  wantsValue: boolean;
}

type Resolve<T> = (value: T) => void;
type Reject = (err: unknown) => void;

/** The fields of a `TaskResult` the SDK reads (the hand decoder gives them without `$typeName`). */
export type TaskResultFields = Omit<TaskResult, "$typeName">;

export function resultFromTask(task: Task): TaskResultFields {
  return { taskId: task.id, state: task.state, result: task.result, error: task.error, attempt: task.attempt, workerId: task.workerId };
}

/** How a finished task ended, its result decoded with `codec`. */
export function outcomeOf(codec: Codec, r: TaskResultFields): Outcome {
  const state = taskStateName(r.state) as Outcome["state"];
  return {
    taskId: r.taskId,
    state,
    value: state === "succeeded" ? codec.decode(r.result) : undefined,
    error: r.error,
    attempt: r.attempt,
    workerId: r.workerId,
  };
}

/** A finished outcome as result() gives it: the value, or the failure thrown. */
export function settle(outcome: Outcome): Promise<unknown> {
  if (outcome.state === "succeeded") return Promise.resolve(outcome.value);
  return Promise.reject(failure(outcome));
}

function failure(outcome: Outcome): TaskflowError {
  if (outcome.state === "cancelled") {
    return new TaskflowError(Code.CANCELLED, `task ${outcome.taskId} was cancelled: ${outcome.error}`, { reason: Reason.TASK_CANCELLED });
  }
  return new TaskflowError(Code.ABORTED, `task ${outcome.taskId} failed after ${outcome.attempt} attempt(s): ${outcome.error}`, {
    reason: Reason.TASK_FAILED,
  });
}

export function hand(w: Waiter, outcome: Outcome): void {
  if (!w.wantsValue) w.resolve(outcome);
  else if (outcome.state === "succeeded") w.resolve(outcome.value);
  else w.reject(failure(outcome));
}
