/**
 * Errors as the SDK gives them: a failed call becomes a TaskflowError with the reason and metadata
 * the control node sent, and handlers get {@link UnrecoverableError} to stop retries.
 */
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core/base";
import type { Status } from "@taskflow/proto";
import { errorInfoOf } from "@taskflow/proto";
import { reasonFromTrailers } from "@taskflow/proto/grpc";

/**
 * Anything a call threw as a TaskflowError: a gRPC status keeps its code and message and gains
 * the reason and metadata of its `google.rpc.ErrorInfo` (or its `taskflow-reason` trailer).
 */
export function wireError(err: unknown, code: Code = Code.INTERNAL): TaskflowError {
  if (TaskflowError.is(err) || !isServiceError(err)) return TaskflowError.from(err, code);
  const found = reasonFromTrailers(err.metadata);
  if (!found) return TaskflowError.from(err, code);
  return new TaskflowError(err.code as number as Code, err.details || err.message, { cause: err, reason: found.reason, metadata: found.metadata });
}

/** A TaskflowError from a status sent inside a message (a refused SubmitTaskStream batch). */
export function statusError(code: number, message: string, status: Status | undefined): TaskflowError {
  const info = status && errorInfoOf(status);
  return new TaskflowError(code as Code, message, info?.reason ? { reason: info.reason, metadata: info.metadata } : {});
}

function isServiceError(value: unknown): value is grpc.ServiceError {
  return value instanceof Error && typeof (value as { code?: unknown }).code === "number" && "metadata" in value;
}

const unrecoverable = Symbol.for("taskflow:UnrecoverableError");

/**
 * Thrown by a handler, fails the task at once: no further attempt runs, whatever its
 * `maxAttempts` (the attempts so far stay recorded). For inputs no retry can fix, such as a
 * payload that does not parse. Every other error a handler throws is retried.
 *
 * @example
 * if (!isValid(payload)) throw new UnrecoverableError("payload has no order ID");
 */
export class UnrecoverableError extends Error {
  override readonly name = "UnrecoverableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    Object.defineProperty(this, unrecoverable, { value: true });
  }

  /** True for an UnrecoverableError, also one made by another copy of the SDK. */
  static is(value: unknown): value is UnrecoverableError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[unrecoverable] === true;
  }
}
/** A unary call whose failure is thrown as a TaskflowError with the reason it carried. */
export async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wireError(err);
  }
}

/** Failures a call may not meet when tried again: the node is unreachable or not the leader, overloaded, or slow. */
const TRANSIENT = new Set<number>([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED, Code.ABORTED]);

/** True for a failure worth trying again (see {@link TRANSIENT}). */
export function isTransient(code: number): boolean {
  return TRANSIENT.has(code);
}
