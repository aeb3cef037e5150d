/**
 * The gRPC rich error model on Taskflow's wire: a failed call's `grpc-status-details-bin` trailer
 * holds a serialized `google.rpc.Status` whose details carry one `google.rpc.ErrorInfo` with the
 * `TASKFLOW_ERR_*` reason and its metadata, so any gRPC client (another language, a script) can
 * read why a call failed, not only its code.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema, type Status } from "./gen/google/rpc/status_pb.js";

/** The `ErrorInfo.domain` of every reason Taskflow sends. */
export const ERROR_DOMAIN = "taskflow.dev";

/** The trailer that carries the serialized `google.rpc.Status`, as every gRPC implementation names it. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/**
 * The older trailer that carries the reason alone, as text. Still sent beside the details: a
 * client of an earlier release reads only this one, and it costs a few bytes on failures only.
 */
export const REASON_KEY = "taskflow-reason";

/** What an error says besides its code and message. */
export interface ErrorReason {
  /** A `TASKFLOW_ERR_*` reason. */
  readonly reason: string;
  /** Facts about the error, such as `{ limitBytes: "4194304" }`. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** A `google.rpc.Status` for a failed call; with a reason, its details hold one `ErrorInfo`. */
export function statusMessage(code: number, message: string, reason?: string, metadata?: Readonly<Record<string, string>>): Status {
  const details = reason ? [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: { ...metadata } }))] : [];
  return create(StatusSchema, { code, message, details });
}

/** {@link statusMessage} serialized, as the `grpc-status-details-bin` trailer carries it. */
export function encodeStatus(code: number, message: string, reason?: string, metadata?: Readonly<Record<string, string>>): Uint8Array {
  return toBinary(StatusSchema, statusMessage(code, message, reason, metadata));
}

/** The first `ErrorInfo` in a status's details, if any. */
export function errorInfoOf(status: Status): ErrorInfo | undefined {
  for (const any of status.details) {
    const info = anyUnpack(any, ErrorInfoSchema);
    if (info) return info;
  }
  return undefined;
}

/** The reason in serialized `google.rpc.Status` bytes; undefined when they hold none or do not decode. */
export function reasonFromStatusBytes(bytes: Uint8Array): ErrorReason | undefined {
  try {
    const info = errorInfoOf(fromBinary(StatusSchema, bytes));
    return info?.reason ? { reason: info.reason, metadata: info.metadata } : undefined;
  } catch {
    // A peer's malformed details must not hide the status code and message they came with.
    return undefined;
  }
}
