/**
 * One error type for all of Taskflow. Its code maps one-to-one onto gRPC status codes, so the
 * services answer a precise status and clients get the same code back.
 */

/** gRPC status codes, by the numbers the wire uses. */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/**
 * Stable reason strings for errors a user or a script may want to match on. Those an RPC may
 * answer travel in the `google.rpc.ErrorInfo` of the status details (proto/taskflow/v1/
 * task_service.proto lists them); the rest are the node's own start-up errors and the SDK's.
 */
export const Reason = {
  CONFIG: "TASKFLOW_ERR_CONFIG",
  CONFIG_FILE: "TASKFLOW_ERR_CONFIG_FILE",
  POLICY_NOT_FOUND: "TASKFLOW_ERR_POLICY_NOT_FOUND",
  POLICY_INVALID: "TASKFLOW_ERR_POLICY_INVALID",
  POLICY_VERSION: "TASKFLOW_ERR_POLICY_VERSION",
  POLICY_OPTIONS: "TASKFLOW_ERR_POLICY_OPTIONS",
  HANDLERS: "TASKFLOW_ERR_HANDLERS",
  INVALID_REQUEST: "TASKFLOW_ERR_INVALID_REQUEST",
  TASK_NOT_FOUND: "TASKFLOW_ERR_TASK_NOT_FOUND",
  WORKER_NOT_FOUND: "TASKFLOW_ERR_WORKER_NOT_FOUND",
  HEAP_FULL: "TASKFLOW_ERR_HEAP_FULL",
  /** A tenant's quota (`tenants.*`: unfinished tasks, submit rate) refused a submit; the message names the key. */
  QUOTA: "TASKFLOW_ERR_QUOTA",
  /** A worker's hello found the register full (`control.workerHeapCapacity`). */
  WORKER_CAPACITY: "TASKFLOW_ERR_WORKER_CAPACITY",
  /** The control node's memory is near its budget (`control.memoryBudget`); submits resume once it falls. */
  MEMORY: "TASKFLOW_ERR_MEMORY",
  PAYLOAD_TOO_LARGE: "TASKFLOW_ERR_PAYLOAD_TOO_LARGE",
  /** No schedule with this ID in the caller's tenant (ScheduleService). */
  SCHEDULE_NOT_FOUND: "TASKFLOW_ERR_SCHEDULE_NOT_FOUND",
  /** CreateSchedule names an ID its tenant already uses. */
  SCHEDULE_EXISTS: "TASKFLOW_ERR_SCHEDULE_EXISTS",
  STORE: "TASKFLOW_ERR_STORE",
  /** A standby control node (`ha.enabled`) answered; the ErrorInfo's `leader` metadata is the leader's address, when one leads. */
  NOT_LEADER: "TASKFLOW_ERR_NOT_LEADER",
  TASK_FAILED: "TASKFLOW_ERR_TASK_FAILED",
  TASK_CANCELLED: "TASKFLOW_ERR_TASK_CANCELLED",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

const brand = Symbol.for("taskflow:TaskflowError");

export interface TaskflowErrorOptions {
  cause?: unknown;
  /** A stable `TASKFLOW_ERR_*` reason, when there is one. */
  reason?: Reason | string;
  /**
   * Facts about the error a program may read, such as `{ limitBytes: "4194304" }`; they travel
   * with the reason in the status details' `google.rpc.ErrorInfo`. @defaultValue {}
   */
  metadata?: Readonly<Record<string, string>>;
}

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

export class TaskflowError extends Error {
  override readonly name = "TaskflowError";
  readonly code: Code;
  readonly reason: string | undefined;
  /** Facts about the error, sent and read back with the reason (see {@link TaskflowErrorOptions.metadata}). */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(code: Code, message: string, options: TaskflowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
    this.metadata = options.metadata ?? NO_METADATA;
    Object.defineProperty(this, brand, { value: true });
  }

  /** The code's name, for example `NOT_FOUND`. */
  get codeName(): string {
    return Code[this.code] ?? String(this.code);
  }

  /**
   * True for a TaskflowError, also one made by another copy of this library (a guard that
   * `instanceof` cannot give when two versions are installed side by side).
   */
  static is(value: unknown): value is TaskflowError {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }

  /** Wraps anything thrown into a TaskflowError, keeping TaskflowErrors as they are. */
  static from(value: unknown, code: Code = Code.INTERNAL): TaskflowError {
    if (TaskflowError.is(value)) return value;
    if (isGrpcStatusError(value)) {
      // The server's reason travels in the `taskflow-reason` trailer.
      const reason = trailerReason(value);
      return new TaskflowError(value.code as Code, value.details || value.message, typeof reason === "string" ? { cause: value, reason } : { cause: value });
    }
    const message = value instanceof Error ? value.message : String(value);
    return new TaskflowError(code, message, { cause: value });
  }
}

/** The `taskflow-reason` trailer of a grpc-js status error (its `metadata`), if any. */
function trailerReason(err: Error): unknown {
  const metadata = (err as { metadata?: { get?: unknown } }).metadata;
  if (typeof metadata?.get !== "function") return undefined;
  return (metadata as { get(key: string): unknown[] }).get("taskflow-reason")[0];
}

function isGrpcStatusError(value: unknown): value is Error & { code: number; details: string } {
  return (
    value instanceof Error &&
    typeof (value as { code?: unknown }).code === "number" &&
    typeof (value as { details?: unknown }).details === "string"
  );
}
