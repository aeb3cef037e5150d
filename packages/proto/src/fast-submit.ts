/**
 * Hand-written codecs of submits: SubmitTaskStream batches (encoded by the SDK), SubmitTasks and
 * SubmitTaskStream requests decoded under their limits, and the batch acknowledgements.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import type { SubmitTaskStreamResponse } from "./gen/taskflow/v1/task_service_pb.js";
import { EMPTY, HotReader, int32Size, int64Size, lenStrSize, mapSize, strSize, varint64, varintSize, writeInt32, writeInt64, writeMap, writeStr, writeVarint } from "./fast-wire.js";

// ---- SubmitTaskStreamRequest --------------------------------------------------------------

export interface FastSpec {
  type: string;
  payload: Uint8Array;
  priority: number;
  requiredLabels: Readonly<Record<string, string>>;
  maxAttempts: number;
  timeoutMs: number;
  idempotencyKey: string;
  expectedDurationMs: number;
  // ---- delayed tasks (int64 fields 9 and 10); the decoders always set both ----
  delayMs?: bigint;
  runAtMs?: bigint;
  // ---- task graphs (fields 15 and 16); the decoders always set both ----
  dependsOn?: string[];
  /** A `DependencyFailure` enum value; 0 = unspecified. */
  onDependencyFailure?: number;
  // ---- limits (string fields 13 and 14); the decoders always set both ----
  concurrencyKey?: string;
  rateLimitKey?: string;
  // ---- fields 11 and 12; the decoders set metadata only when an entry came, deadlineMs always ----
  metadata?: Record<string, string>;
  deadlineMs?: bigint;
}

/** The shared empty `dependsOn` of decoded specs without dependencies: the decoder never pushes to it. */
const NO_DEPENDENCIES: string[] = [];

/** Encodes `SubmitTaskStreamRequest{ batch_id, specs, client_id, request_id }`. */
export function encodeSubmitTaskStream(batchId: number, specs: readonly FastSpec[], clientId: string, requestId = ""): Buffer {
  return encodeSpecs(specs, clientId, 0x12, 0x1a, batchId, requestId, 0x22);
}

/**
 * Specs under `specsTag`, the client ID under `clientTag`, the request ID under `requestTag`,
 * and a batch ID as field 1 when non-zero.
 */
function encodeSpecs(
  specs: readonly FastSpec[],
  clientId: string,
  specsTag: number,
  clientTag: number,
  batchId: number,
  requestId: string,
  requestTag: number,
): Buffer {
  const sizes = new Array<number>(specs.length);
  let total = 0;
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    let size = 0;
    if (s.type) size += lenStrSize(strSize(s.type));
    if (s.payload.byteLength) size += lenStrSize(s.payload.byteLength);
    if (s.priority) size += 1 + int32Size(s.priority);
    for (const key in s.requiredLabels) {
      const entry = lenStrSize(strSize(key)) + lenStrSize(strSize(s.requiredLabels[key]!));
      size += 1 + varintSize(entry) + entry;
    }
    if (s.maxAttempts) size += 1 + varintSize(s.maxAttempts);
    if (s.timeoutMs) size += 1 + varintSize(s.timeoutMs);
    if (s.idempotencyKey) size += lenStrSize(strSize(s.idempotencyKey));
    if (s.expectedDurationMs) size += 1 + varintSize(s.expectedDurationMs);
    if (s.delayMs) size += 1 + int64Size(s.delayMs);
    if (s.runAtMs) size += 1 + int64Size(s.runAtMs);
    if (s.dependsOn) for (const id of s.dependsOn) size += lenStrSize(strSize(id));
    if (s.onDependencyFailure) size += 2 + varintSize(s.onDependencyFailure);
    if (s.concurrencyKey) size += lenStrSize(strSize(s.concurrencyKey));
    if (s.rateLimitKey) size += lenStrSize(strSize(s.rateLimitKey));
    if (s.metadata) size += mapSize(s.metadata);
    if (s.deadlineMs) size += 1 + int64Size(s.deadlineMs);
    sizes[i] = size;
    total += 1 + varintSize(size) + size;
  }
  const clientBytes = strSize(clientId);
  if (clientBytes) total += lenStrSize(clientBytes);
  const requestBytes = strSize(requestId);
  if (requestBytes) total += lenStrSize(requestBytes);
  if (batchId) total += 1 + varintSize(batchId);
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  if (batchId) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, batchId);
  }
  const str = (tag: number, s: string) => {
    const bytes = strSize(s);
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, bytes);
    pos = writeStr(buf, pos, s, bytes);
  };
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    buf[pos++] = specsTag;
    pos = writeVarint(buf, pos, sizes[i]!);
    if (s.type) str(0x0a, s.type);
    if (s.payload.byteLength) {
      buf[pos++] = 0x12;
      pos = writeVarint(buf, pos, s.payload.byteLength);
      buf.set(s.payload, pos);
      pos += s.payload.byteLength;
    }
    if (s.priority) {
      buf[pos++] = 0x18;
      pos = writeInt32(buf, pos, s.priority);
    }
    for (const key in s.requiredLabels) {
      const value = s.requiredLabels[key]!;
      buf[pos++] = 0x22; // required_labels = 4, a map entry {1: key, 2: value}
      pos = writeVarint(buf, pos, lenStrSize(strSize(key)) + lenStrSize(strSize(value)));
      str(0x0a, key);
      str(0x12, value);
    }
    if (s.maxAttempts) {
      buf[pos++] = 0x28;
      pos = writeVarint(buf, pos, s.maxAttempts);
    }
    if (s.timeoutMs) {
      buf[pos++] = 0x30;
      pos = writeVarint(buf, pos, s.timeoutMs);
    }
    if (s.idempotencyKey) str(0x3a, s.idempotencyKey);
    if (s.expectedDurationMs) {
      buf[pos++] = 0x40;
      pos = writeVarint(buf, pos, s.expectedDurationMs);
    }
    if (s.delayMs) {
      buf[pos++] = 0x48; // delay_ms = 9
      pos = writeInt64(buf, pos, s.delayMs);
    }
    if (s.runAtMs) {
      buf[pos++] = 0x50; // run_at_ms = 10
      pos = writeInt64(buf, pos, s.runAtMs);
    }
    if (s.metadata) pos = writeMap(buf, pos, 0x5a, s.metadata); // metadata = 11
    if (s.deadlineMs) {
      buf[pos++] = 0x60; // deadline_ms = 12
      pos = writeInt64(buf, pos, s.deadlineMs);
    }
    if (s.concurrencyKey) str(0x6a, s.concurrencyKey); // concurrency_key = 13
    if (s.rateLimitKey) str(0x72, s.rateLimitKey); // rate_limit_key = 14
    if (s.dependsOn) for (const id of s.dependsOn) str(0x7a, id); // depends_on = 15
    if (s.onDependencyFailure) {
      buf[pos++] = 0x80; // on_dependency_failure = 16, a two-byte tag
      buf[pos++] = 0x01;
      pos = writeVarint(buf, pos, s.onDependencyFailure);
    }
  }
  if (clientBytes) str(clientTag, clientId);
  if (requestBytes) str(requestTag, requestId);
  return buf;
}


// ---- decoders ------------------------------------------------------------------------------

export class RequestRefused extends Error {
  constructor(
    /** The gRPC status code to end the call with, such as 3 (INVALID_ARGUMENT). */
    readonly code: number,
    message: string,
    /** A `TASKFLOW_ERR_*` reason for the status details, if any. */
    readonly reason?: string,
    /** Facts sent with the reason (`ErrorInfo.metadata`). */
    readonly metadata?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = "RequestRefused";
  }
}

/** What a submit decoder lets one request allocate. */
export interface SubmitLimits {
  /** Most specs in one request; the decoder stops at the next one. */
  maxSpecs: number;
  /** Largest payload of one spec in bytes; the decoder stops at a larger one without copying it. */
  maxPayloadBytes: number;
}

const NO_LIMITS: SubmitLimits = { maxSpecs: Infinity, maxPayloadBytes: Infinity };
const INVALID_ARGUMENT = 3;
const RESOURCE_EXHAUSTED = 8;

/** A decoded `SubmitTasksRequest`, shaped like the generated message. */
export interface DecodedSubmitTasks {
  specs: FastSpec[];
  clientId: string;
  requestId: string;
}

/** A decoded `SubmitTaskStreamRequest`, shaped like the generated message. */
export interface DecodedSubmitBatch extends DecodedSubmitTasks {
  batchId: bigint;
  /**
   * Set when the batch broke a limit: decoding stopped there (`specs` is empty) and the batch is
   * to be refused with this code and message; the stream itself goes on.
   */
  refused?: RequestRefused;
}

function readSpec(reader: HotReader, index: number, limits: SubmitLimits): FastSpec {
  const end = reader.uint32() + reader.pos;
  const spec: FastSpec = {
    type: "",
    payload: EMPTY,
    priority: 0,
    requiredLabels: {},
    maxAttempts: 0,
    timeoutMs: 0,
    idempotencyKey: "",
    expectedDurationMs: 0,
    delayMs: 0n,
    runAtMs: 0n,
    dependsOn: NO_DEPENDENCIES,
    onDependencyFailure: 0,
    concurrencyKey: "",
    rateLimitKey: "",
    deadlineMs: 0n,
  };
  while (reader.pos < end) {
    const f = reader.field();
    switch (f) {
      case 1:
        spec.type = reader.string();
        break;
      case 2: {
        const start = reader.pos;
        const size = reader.uint32();
        if (size > limits.maxPayloadBytes) {
          throw new RequestRefused(
            RESOURCE_EXHAUSTED,
            `specs[${index}].payload is ${size} bytes, over the limit of ${limits.maxPayloadBytes} (control.maxPayloadBytes)`,
            "TASKFLOW_ERR_PAYLOAD_TOO_LARGE",
            { index: String(index), sizeBytes: String(size), limitBytes: String(limits.maxPayloadBytes) },
          );
        }
        reader.pos = start;
        spec.payload = reader.bytes();
        break;
      }
      case 3:
        spec.priority = reader.int32();
        break;
      case 4: {
        const stop = reader.uint32() + reader.pos;
        let key = "";
        let value = "";
        while (reader.pos < stop) {
          const g = reader.field();
          if (g === 1) key = reader.string();
          else if (g === 2) value = reader.string();
          else reader.skip(reader.wireType, g);
        }
        (spec.requiredLabels as Record<string, string>)[key] = value;
        break;
      }
      case 5:
        spec.maxAttempts = reader.uint32();
        break;
      case 6:
        spec.timeoutMs = reader.uint32();
        break;
      case 7:
        spec.idempotencyKey = reader.string();
        break;
      case 8:
        spec.expectedDurationMs = reader.uint32();
        break;
      case 9:
        spec.delayMs = reader.i64();
        break;
      case 10:
        spec.runAtMs = reader.i64();
        break;
      case 11:
        reader.mapEntry((spec.metadata ??= {}));
        break;
      case 12:
        spec.deadlineMs = reader.i64();
        break;
      case 15:
        if (spec.dependsOn === NO_DEPENDENCIES) spec.dependsOn = [];
        spec.dependsOn!.push(reader.string());
        break;
      case 16:
        spec.onDependencyFailure = reader.int32();
        break;
      case 13:
        spec.concurrencyKey = reader.string();
        break;
      case 14:
        spec.rateLimitKey = reader.string();
        break;
      default:
        reader.skip(reader.wireType, f);
    }
  }
  return spec;
}

function tooManySpecs(limits: SubmitLimits): RequestRefused {
  return new RequestRefused(
    INVALID_ARGUMENT,
    `specs holds more than ${limits.maxSpecs} tasks; at most ${limits.maxSpecs} per call (split it into batches)`,
    "TASKFLOW_ERR_INVALID_REQUEST",
    { maxSpecs: String(limits.maxSpecs) },
  );
}

/**
 * Decodes `SubmitTasksRequest` into plain objects. With `limits`, it stops at the first spec
 * past `maxSpecs` or payload past `maxPayloadBytes` and throws {@link RequestRefused}: a request
 * allocates no more than its limits allow, however many specs its bytes hold.
 */
export function decodeSubmitTasks(bytes: Uint8Array, limits: SubmitLimits = NO_LIMITS): DecodedSubmitTasks {
  const reader = new HotReader(bytes);
  const out: DecodedSubmitTasks = { specs: [], clientId: "", requestId: "" };
  while (reader.pos < reader.len) {
    const f = reader.field();
    if (f === 1 && reader.wireType === WireType.LengthDelimited) {
      if (out.specs.length >= limits.maxSpecs) throw tooManySpecs(limits);
      out.specs.push(readSpec(reader, out.specs.length, limits));
    } else if (f === 2) out.clientId = reader.string();
    else if (f === 3) out.requestId = reader.string();
    else reader.skip(reader.wireType, f);
  }
  return out;
}

/**
 * Decodes `SubmitTaskStreamRequest` (the bulk submit path) into plain objects. A batch past
 * `limits` comes back with `refused` set and no specs: the rest of its specs are skipped, not
 * decoded, and the stream can acknowledge that one batch as refused.
 */
export function decodeSubmitTaskStream(bytes: Uint8Array, limits: SubmitLimits = NO_LIMITS): DecodedSubmitBatch {
  const reader = new HotReader(bytes);
  const out: DecodedSubmitBatch = { batchId: 0n, specs: [], clientId: "", requestId: "" };
  while (reader.pos < reader.len) {
    const f = reader.field();
    if (f === 1) out.batchId = reader.u64();
    else if (f === 2 && reader.wireType === WireType.LengthDelimited) {
      if (out.refused) reader.skip(reader.wireType, f);
      else if (out.specs.length >= limits.maxSpecs) {
        out.refused = tooManySpecs(limits);
        out.specs = [];
        reader.skip(reader.wireType, f);
      } else {
        const start = reader.pos;
        try {
          out.specs.push(readSpec(reader, out.specs.length, limits));
        } catch (err) {
          if (!(err instanceof RequestRefused)) throw err;
          out.refused = err;
          out.specs = [];
          reader.pos = start;
          reader.skip(reader.wireType, f);
        }
      }
    } else if (f === 3) out.clientId = reader.string();
    else if (f === 4) out.requestId = reader.string();
    else reader.skip(reader.wireType, f);
  }
  return out;
}

/**
 * Decodes a `SessionResponse` on the worker: assignments by hand (one per task), every other
 * case (welcome, cancel, drain) with protobuf-es. The result has the generated shape.
 */
// ---- SubmitTaskStreamResponse (the acknowledgement of a submitted batch) ---------------------

/**
 * Encodes `SubmitTaskStreamResponse{ batch_id, task_ids, deduplicated }` for an accepted batch.
 * The batch ID is the client's and may use all 64 bits, hence a bigint (one per batch, not per
 * task). `deduplicated` goes on the wire only when one of them is true, as the proto says.
 */
export function encodeSubmitAck(batchId: bigint, taskIds: readonly string[], deduplicated?: readonly boolean[]): Buffer {
  const id = batchId ? varint64(batchId) : [];
  const lens = new Array<number>(taskIds.length);
  let total = id.length ? 1 + id.length : 0;
  for (let i = 0; i < taskIds.length; i++) total += lenStrSize((lens[i] = strSize(taskIds[i]!)));
  const flags = deduplicated?.includes(true) ? deduplicated : undefined;
  if (flags) total += lenStrSize(flags.length);
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  if (id.length) {
    buf[pos++] = 0x08;
    for (const b of id) buf[pos++] = b;
  }
  for (let i = 0; i < taskIds.length; i++) {
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, lens[i]!);
    pos = writeStr(buf, pos, taskIds[i]!, lens[i]!);
  }
  if (flags) {
    buf[pos++] = 0x2a; // deduplicated = 5, packed
    pos = writeVarint(buf, pos, flags.length);
    for (const f of flags) buf[pos++] = f ? 1 : 0;
  }
  return buf;
}

/** Decodes `SubmitTaskStreamResponse` into the generated shape without reflection. */
export function decodeSubmitAck(bytes: Uint8Array): SubmitTaskStreamResponse {
  const reader = new HotReader(bytes);
  const out: SubmitTaskStreamResponse = {
    $typeName: "taskflow.v1.SubmitTaskStreamResponse",
    batchId: 0n,
    taskIds: [],
    errorCode: 0,
    errorMessage: "",
    deduplicated: [],
  };
  while (reader.pos < reader.len) {
    const f = reader.field();
    if (f === 1) out.batchId = reader.u64();
    else if (f === 2) out.taskIds.push(reader.string());
    else if (f === 3) out.errorCode = reader.int32();
    else if (f === 4) out.errorMessage = reader.string();
    else if (f === 6) out.errorStatus = fromBinary(StatusSchema, reader.bytes());
    else if (f === 5 && reader.wireType === WireType.LengthDelimited) {
      const end = reader.uint32() + reader.pos;
      while (reader.pos < end) out.deduplicated.push(reader.bool());
    } else if (f === 5) out.deduplicated.push(reader.bool());
    else reader.skip(reader.wireType, f);
  }
  return out;
}
