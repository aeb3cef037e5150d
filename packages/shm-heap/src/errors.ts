/**
 * Errors thrown by the heap. Each carries a gRPC status `code` and a stable `reason` so the
 * services can wrap them into a `TaskflowError` without this package depending on core.
 */

/** gRPC status codes used here (numbers match `@taskflow/core`'s `Code`). */
export const GrpcCode = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DEADLINE_EXCEEDED: 4,
} as const;

/** Common base of the heap's errors: an `Error` with a gRPC `code` and a `TASKFLOW_ERR_*` reason. */
export class ShmHeapError extends Error {
  /** gRPC status code. */
  readonly code: number;
  /** Stable machine-readable reason, `TASKFLOW_ERR_*`. */
  readonly reason: string;

  constructor(code: number, reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = reason;
  }
}

/** The heap holds `capacity` records already: code RESOURCE_EXHAUSTED (8). */
export class HeapFullError extends ShmHeapError {
  override readonly name = "HeapFullError";
  /** The heap's capacity. */
  readonly capacity: number;

  constructor(capacity: number) {
    super(GrpcCode.RESOURCE_EXHAUSTED, "TASKFLOW_ERR_HEAP_FULL", `heap is full (capacity ${capacity})`);
    this.capacity = capacity;
  }
}

/**
 * A handle that no longer names a live record (popped, removed or cleared), where the caller
 * asked for an exception instead of the `false`/`-1` the heap methods return.
 */
export class StaleHandleError extends ShmHeapError {
  override readonly name = "StaleHandleError";

  constructor(handle: number) {
    super(GrpcCode.FAILED_PRECONDITION, "TASKFLOW_ERR_HEAP_STALE_HANDLE", `heap handle ${handle} is stale`);
  }
}

/**
 * Creating or attaching a heap failed: no such segment (NOT_FOUND), a segment of another
 * layout, version or size (FAILED_PRECONDITION), a creator that never finished initialising
 * (UNAVAILABLE), bad options (INVALID_ARGUMENT) or a system call error (INTERNAL).
 */
export class HeapAttachError extends ShmHeapError {
  override readonly name = "HeapAttachError";

  constructor(code: number, message: string, options?: { cause?: unknown; reason?: string }) {
    super(code, options?.reason ?? "TASKFLOW_ERR_HEAP_ATTACH", message, options);
  }
}
