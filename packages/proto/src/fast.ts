/**
 * Hand-written encoders for the four messages on the per-task hot path (assignments, worker
 * heartbeats, client submits and result batches). protobuf-es encodes by reflection, which cost
 * about a fifth of the control node's CPU per task; these write the same bytes (unit tests
 * compare them with `toBinary`) into one buffer sized up front. Pass the returned Buffer to a
 * stream's `write` or a unary call in place of the message: the grpc adapter sends bytes as they
 * are. Every other message keeps using protobuf-es.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType, configureTextEncoding } from "@bufbuild/protobuf/wire";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import type { SubmitTaskStreamResponse } from "./gen/taskflow/v1/task_service_pb.js";
import { SessionRequestSchema, SessionResponseSchema, type SessionRequest, type SessionResponse } from "./gen/taskflow/v1/worker_service_pb.js";

// ---- primitives ---------------------------------------------------------------------------

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Size of a signed 32-bit value as protobuf writes it (negatives take 10 bytes). */
function int32Size(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function writeInt32(buf: Buffer, pos: number, n: number): number {
  if (n >= 0) return writeVarint(buf, pos, n);
  // Two's complement over 64 bits, as protobuf encodes negative int32 values.
  let v = BigInt.asUintN(64, BigInt(n));
  for (let i = 0; i < 9; i++) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

function strSize(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Writes a string's bytes (length known); ASCII by hand, anything else through Buffer. */
function writeStr(buf: Buffer, pos: number, s: string, bytes: number): number {
  if (bytes === s.length) {
    for (let i = 0; i < bytes; i++) buf[pos + i] = s.charCodeAt(i);
  } else {
    buf.write(s, pos, bytes, "utf8");
  }
  return pos + bytes;
}

/** tag + length + string, for a non-empty string field. */
function lenStrSize(bytes: number): number {
  return 1 + varintSize(bytes) + bytes;
}

// ---- SessionResponse{assign} ---------------------------------------------------------------

/** What one assignment carries (taskflow.v1.Assignment). */
export interface FastAssignment {
  taskId: string;
  epoch: number;
  type: string;
  payload: Uint8Array;
  attempt: number;
  timeoutMs: number;
}

/** Encodes `SessionResponse{ assign: AssignTasks{ assignments } }`. */
export function encodeAssign(assignments: readonly FastAssignment[]): Buffer {
  const sizes = new Array<number>(assignments.length);
  const idBytes = new Array<number>(assignments.length);
  const typeBytes = new Array<number>(assignments.length);
  let inner = 0;
  for (let i = 0; i < assignments.length; i++) {
    const a = assignments[i]!;
    const id = (idBytes[i] = strSize(a.taskId));
    const ty = (typeBytes[i] = strSize(a.type));
    let size = 0;
    if (id) size += lenStrSize(id);
    if (a.epoch) size += 1 + varintSize(a.epoch);
    if (ty) size += lenStrSize(ty);
    if (a.payload.byteLength) size += lenStrSize(a.payload.byteLength);
    if (a.attempt) size += 1 + varintSize(a.attempt);
    if (a.timeoutMs) size += 1 + varintSize(a.timeoutMs);
    sizes[i] = size;
    inner += 1 + varintSize(size) + size;
  }
  const buf = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
  let pos = 0;
  buf[pos++] = 0x12; // SessionResponse.assign = 2, LEN
  pos = writeVarint(buf, pos, inner);
  for (let i = 0; i < assignments.length; i++) {
    const a = assignments[i]!;
    buf[pos++] = 0x0a; // AssignTasks.assignments = 1, LEN
    pos = writeVarint(buf, pos, sizes[i]!);
    if (idBytes[i]) {
      buf[pos++] = 0x0a;
      pos = writeVarint(buf, pos, idBytes[i]!);
      pos = writeStr(buf, pos, a.taskId, idBytes[i]!);
    }
    if (a.epoch) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, a.epoch);
    }
    if (typeBytes[i]) {
      buf[pos++] = 0x1a;
      pos = writeVarint(buf, pos, typeBytes[i]!);
      pos = writeStr(buf, pos, a.type, typeBytes[i]!);
    }
    if (a.payload.byteLength) {
      buf[pos++] = 0x22;
      pos = writeVarint(buf, pos, a.payload.byteLength);
      buf.set(a.payload, pos);
      pos += a.payload.byteLength;
    }
    if (a.attempt) {
      buf[pos++] = 0x28;
      pos = writeVarint(buf, pos, a.attempt);
    }
    if (a.timeoutMs) {
      buf[pos++] = 0x30;
      pos = writeVarint(buf, pos, a.timeoutMs);
    }
  }
  return buf;
}

// ---- SubscribeResultsResponse --------------------------------------------------------------

/** One finished task (taskflow.v1.TaskResult); `state` is the TaskState number. */
export interface FastResult {
  taskId: string;
  state: number;
  result: Uint8Array;
  error: string;
  attempt: number;
  workerId: string;
}

/** Encodes `SubscribeResultsResponse{ results }`. */
export function encodeResults(results: readonly FastResult[]): Buffer {
  const n = results.length;
  const sizes = new Array<number>(n);
  const lens = new Array<number>(n * 3);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const r = results[i]!;
    const id = (lens[i * 3] = strSize(r.taskId));
    const err = (lens[i * 3 + 1] = r.error ? strSize(r.error) : 0);
    const worker = (lens[i * 3 + 2] = r.workerId ? strSize(r.workerId) : 0);
    let size = 0;
    if (id) size += lenStrSize(id);
    if (r.state) size += 1 + varintSize(r.state);
    if (r.result.byteLength) size += lenStrSize(r.result.byteLength);
    if (err) size += lenStrSize(err);
    if (r.attempt) size += 1 + varintSize(r.attempt);
    if (worker) size += lenStrSize(worker);
    sizes[i] = size;
    total += 1 + varintSize(size) + size;
  }
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const r = results[i]!;
    buf[pos++] = 0x0a; // results = 1
    pos = writeVarint(buf, pos, sizes[i]!);
    if (lens[i * 3]) {
      buf[pos++] = 0x0a;
      pos = writeVarint(buf, pos, lens[i * 3]!);
      pos = writeStr(buf, pos, r.taskId, lens[i * 3]!);
    }
    if (r.state) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, r.state);
    }
    if (r.result.byteLength) {
      buf[pos++] = 0x1a;
      pos = writeVarint(buf, pos, r.result.byteLength);
      buf.set(r.result, pos);
      pos += r.result.byteLength;
    }
    if (lens[i * 3 + 1]) {
      buf[pos++] = 0x22;
      pos = writeVarint(buf, pos, lens[i * 3 + 1]!);
      pos = writeStr(buf, pos, r.error, lens[i * 3 + 1]!);
    }
    if (r.attempt) {
      buf[pos++] = 0x28;
      pos = writeVarint(buf, pos, r.attempt);
    }
    if (lens[i * 3 + 2]) {
      buf[pos++] = 0x32;
      pos = writeVarint(buf, pos, lens[i * 3 + 2]!);
      pos = writeStr(buf, pos, r.workerId, lens[i * 3 + 2]!);
    }
  }
  return buf;
}

// ---- SessionRequest{heartbeat} ------------------------------------------------------------

export interface FastTaskRef {
  taskId: string;
  epoch: bigint | number;
}

export interface FastWorkerResult extends FastTaskRef {
  ok: boolean;
  result: Uint8Array;
  error: string;
  /** The failure must not be retried (`WorkerTaskResult.unrecoverable`). */
  unrecoverable?: boolean;
}

export interface FastHeartbeat {
  running: number;
  results: readonly FastWorkerResult[];
  started: readonly FastTaskRef[];
  assignmentsReceived: bigint | number;
  draining: boolean;
  released: readonly FastTaskRef[];
  /** Numbers a heartbeat that carries results, for `ResultsStored`; 0 when it carries none. */
  seq?: bigint | number;
}

function refSize(r: FastTaskRef, idBytes: number): number {
  const epoch = Number(r.epoch);
  return (idBytes ? lenStrSize(idBytes) : 0) + (epoch ? 1 + varintSize(epoch) : 0);
}

/** Encodes `SessionRequest{ heartbeat }`. */
export function encodeHeartbeat(hb: FastHeartbeat): Buffer {
  const received = Number(hb.assignmentsReceived);
  const resultIds = hb.results.map((r) => strSize(r.taskId));
  const resultErrs = hb.results.map((r) => (r.error ? strSize(r.error) : 0));
  const resultSizes = hb.results.map((r, i) => {
    const epoch = Number(r.epoch);
    return (
      (resultIds[i] ? lenStrSize(resultIds[i]!) : 0) +
      (epoch ? 1 + varintSize(epoch) : 0) +
      (r.ok ? 2 : 0) +
      (r.result.byteLength ? lenStrSize(r.result.byteLength) : 0) +
      (resultErrs[i] ? lenStrSize(resultErrs[i]!) : 0) +
      (r.unrecoverable ? 2 : 0)
    );
  });
  const startedIds = hb.started.map((r) => strSize(r.taskId));
  const startedSizes = hb.started.map((r, i) => refSize(r, startedIds[i]!));
  const releasedIds = hb.released.map((r) => strSize(r.taskId));
  const releasedSizes = hb.released.map((r, i) => refSize(r, releasedIds[i]!));
  const seq = Number(hb.seq ?? 0);
  let inner = 0;
  if (hb.running) inner += 1 + varintSize(hb.running);
  for (const s of resultSizes) inner += 1 + varintSize(s) + s;
  for (const s of startedSizes) inner += 1 + varintSize(s) + s;
  if (received) inner += 1 + varintSize(received);
  if (hb.draining) inner += 2;
  for (const s of releasedSizes) inner += 1 + varintSize(s) + s;
  if (seq) inner += 1 + varintSize(seq);
  const buf = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
  let pos = 0;
  buf[pos++] = 0x12; // SessionRequest.heartbeat = 2
  pos = writeVarint(buf, pos, inner);
  if (hb.running) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, hb.running);
  }
  hb.results.forEach((r, i) => {
    buf[pos++] = 0x12; // results = 2
    pos = writeVarint(buf, pos, resultSizes[i]!);
    if (resultIds[i]) {
      buf[pos++] = 0x0a;
      pos = writeVarint(buf, pos, resultIds[i]!);
      pos = writeStr(buf, pos, r.taskId, resultIds[i]!);
    }
    const epoch = Number(r.epoch);
    if (epoch) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, epoch);
    }
    if (r.ok) {
      buf[pos++] = 0x18;
      buf[pos++] = 1;
    }
    if (r.result.byteLength) {
      buf[pos++] = 0x22;
      pos = writeVarint(buf, pos, r.result.byteLength);
      buf.set(r.result, pos);
      pos += r.result.byteLength;
    }
    if (resultErrs[i]) {
      buf[pos++] = 0x2a;
      pos = writeVarint(buf, pos, resultErrs[i]!);
      pos = writeStr(buf, pos, r.error, resultErrs[i]!);
    }
    if (r.unrecoverable) {
      buf[pos++] = 0x30; // unrecoverable = 6
      buf[pos++] = 1;
    }
  });
  const writeRef = (tag: number, r: FastTaskRef, size: number, idBytes: number) => {
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, size);
    if (idBytes) {
      buf[pos++] = 0x0a;
      pos = writeVarint(buf, pos, idBytes);
      pos = writeStr(buf, pos, r.taskId, idBytes);
    }
    const epoch = Number(r.epoch);
    if (epoch) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, epoch);
    }
  };
  hb.started.forEach((r, i) => writeRef(0x1a, r, startedSizes[i]!, startedIds[i]!)); // started = 3
  if (received) {
    buf[pos++] = 0x20; // assignments_received = 4
    pos = writeVarint(buf, pos, received);
  }
  if (hb.draining) {
    buf[pos++] = 0x28; // draining = 5
    buf[pos++] = 1;
  }
  hb.released.forEach((r, i) => writeRef(0x32, r, releasedSizes[i]!, releasedIds[i]!)); // released = 6
  if (seq) {
    buf[pos++] = 0x38; // seq = 7
    pos = writeVarint(buf, pos, seq);
  }
  return buf;
}

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
}

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
  }
  if (clientBytes) str(clientTag, clientId);
  if (requestBytes) str(requestTag, requestId);
  return buf;
}

// ---- text encoding for protobuf-es ----------------------------------------------------------

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();
let strictDecoder: InstanceType<typeof TextDecoder> | undefined;

/**
 * Makes protobuf-es encode and decode short ASCII strings (task IDs, types, worker IDs) without
 * a TextEncoder/TextDecoder call each, which cost ~0.5 µs apiece; other strings go through them.
 */
export function installFastTextEncoding(): void {
  configureTextEncoding({
    encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
      const n = text.length;
      if (n > 64) return utf8Encoder.encode(text);
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c > 0x7f) return utf8Encoder.encode(text);
        out[i] = c;
      }
      return out;
    },
    decodeUtf8(bytes: Uint8Array, strict?: boolean): string {
      const n = bytes.length;
      if (n <= 64) {
        let ascii = true;
        for (let i = 0; i < n; i++) {
          if (bytes[i]! > 0x7f) {
            ascii = false;
            break;
          }
        }
        if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
      }
      if (strict) return (strictDecoder ??= new TextDecoder("utf-8", { fatal: true })).decode(bytes);
      return utf8Decoder.decode(bytes);
    },
    checkUtf8(text: string): boolean {
      try {
        encodeURIComponent(text);
        return true;
      } catch {
        return false;
      }
    },
  });
}

// ---- decoders ------------------------------------------------------------------------------

/**
 * protobuf-es's reader plus the two reads the hot decoders do per field without allocating:
 * `BinaryReader.tag()` returns a fresh array and `uint64()` goes through a DataView and an array
 * spread; at a dozen fields per task that showed up as GC time.
 */
class HotReader extends BinaryReader {
  /** Wire type of the tag `field()` read last. */
  wireType = 0;

  /** Reads a tag: returns its field number and leaves its wire type in `wireType`. */
  field(): number {
    const tag = this.uint32();
    this.wireType = tag & 7;
    const field = tag >>> 3;
    // protobuf-es refuses field 0 the same way; skipping it would accept bytes that are no message.
    if (field === 0) throw new Error(`illegal tag: field no 0 wire type ${this.wireType}`);
    return field;
  }

  /** Reads a uint64 as a bigint, exactly; values up to 2^49 skip the 64-bit path. */
  u64(): bigint {
    const buf = this.buf;
    let pos = this.pos;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7 && pos < this.len; i++) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = pos;
        return BigInt(n);
      }
      mul *= 128;
    }
    return BigInt(this.uint64());
  }
}

/**
 * Decodes `SubscribeResultsResponse` into plain objects shaped like the generated messages
 * (without `$typeName`). Unknown fields are skipped, as protobuf-es does.
 */
export function decodeResults(bytes: Uint8Array): { results: FastResult[] } {
  const reader = new HotReader(bytes);
  const results: FastResult[] = [];
  while (reader.pos < reader.len) {
    const field = reader.field();
    if (field !== 1 || reader.wireType !== WireType.LengthDelimited) {
      reader.skip(reader.wireType, field);
      continue;
    }
    const end = reader.uint32() + reader.pos;
    const r: FastResult = { taskId: "", state: 0, result: EMPTY, error: "", attempt: 0, workerId: "" };
    while (reader.pos < end) {
      const f = reader.field();
      switch (f) {
        case 1:
          r.taskId = reader.string();
          break;
        case 2:
          r.state = reader.int32();
          break;
        case 3:
          r.result = reader.bytes();
          break;
        case 4:
          r.error = reader.string();
          break;
        case 5:
          r.attempt = reader.uint32();
          break;
        case 6:
          r.workerId = reader.string();
          break;
        default:
          reader.skip(reader.wireType, f);
      }
    }
    results.push(r);
  }
  return { results };
}

const EMPTY = new Uint8Array(0);

/** A decoded heartbeat, shaped like the generated `Heartbeat`. */
export interface DecodedHeartbeat {
  running: number;
  results: { taskId: string; epoch: bigint; ok: boolean; result: Uint8Array<ArrayBufferLike>; error: string; unrecoverable: boolean }[];
  started: { taskId: string; epoch: bigint }[];
  assignmentsReceived: bigint;
  draining: boolean;
  released: { taskId: string; epoch: bigint }[];
  seq: bigint;
}

function readRef(reader: HotReader): { taskId: string; epoch: bigint } {
  const end = reader.uint32() + reader.pos;
  const ref = { taskId: "", epoch: 0n };
  while (reader.pos < end) {
    const f = reader.field();
    if (f === 1) ref.taskId = reader.string();
    else if (f === 2) ref.epoch = reader.u64();
    else reader.skip(reader.wireType, f);
  }
  return ref;
}

/**
 * Decodes a `SessionRequest` whose case is heartbeat; returns undefined for anything else
 * (hello), which the caller decodes with protobuf-es.
 */
export function decodeHeartbeat(bytes: Uint8Array): DecodedHeartbeat | undefined {
  const reader = new HotReader(bytes);
  if (reader.len === 0) return undefined;
  const field = reader.field();
  if (field !== 2 || reader.wireType !== WireType.LengthDelimited) return undefined;
  const end = reader.uint32() + reader.pos;
  if (end !== reader.len) return undefined;
  const hb: DecodedHeartbeat = { running: 0, results: [], started: [], assignmentsReceived: 0n, draining: false, released: [], seq: 0n };
  while (reader.pos < end) {
    const f = reader.field();
    switch (f) {
      case 1:
        hb.running = reader.uint32();
        break;
      case 2: {
        const stop = reader.uint32() + reader.pos;
        const r: DecodedHeartbeat["results"][number] = { taskId: "", epoch: 0n, ok: false, result: EMPTY, error: "", unrecoverable: false };
        while (reader.pos < stop) {
          const g = reader.field();
          if (g === 1) r.taskId = reader.string();
          else if (g === 2) r.epoch = reader.u64();
          else if (g === 3) r.ok = reader.bool();
          else if (g === 4) r.result = reader.bytes();
          else if (g === 5) r.error = reader.string();
          else if (g === 6) r.unrecoverable = reader.bool();
          else reader.skip(reader.wireType, g);
        }
        hb.results.push(r);
        break;
      }
      case 3:
        hb.started.push(readRef(reader));
        break;
      case 4:
        hb.assignmentsReceived = reader.u64();
        break;
      case 5:
        hb.draining = reader.bool();
        break;
      case 6:
        hb.released.push(readRef(reader));
        break;
      case 7:
        hb.seq = reader.u64();
        break;
      default:
        reader.skip(reader.wireType, f);
    }
  }
  return hb;
}

/** Decodes a `SessionRequest`: heartbeats by hand, anything else (hello) with protobuf-es. */
export function decodeSessionRequest(bytes: Uint8Array): SessionRequest {
  const hb = decodeHeartbeat(bytes);
  if (hb) return { $typeName: "taskflow.v1.SessionRequest", kind: { case: "heartbeat", value: { $typeName: "taskflow.v1.Heartbeat", ...hb } } } as unknown as SessionRequest;
  return fromBinary(SessionRequestSchema, bytes);
}

/**
 * Thrown by a server's request decoder that stops at a limit rather than read on: the call ends
 * with `code` and this message as they are (see `rejectMalformedRequests` in ./grpc.js).
 */
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
export function decodeSessionResponse(bytes: Uint8Array): SessionResponse {
  const reader = new HotReader(bytes);
  if (reader.len > 0 && reader.field() === 2 && reader.wireType === WireType.LengthDelimited) {
    const end = reader.uint32() + reader.pos;
    if (end === reader.len) return { $typeName: "taskflow.v1.SessionResponse", kind: { case: "assign", value: readAssignTasks(reader, end) } };
  }
  return fromBinary(SessionResponseSchema, bytes);
}

type DecodedAssignTasks = Extract<SessionResponse["kind"], { case: "assign" }>["value"];

function readAssignTasks(reader: HotReader, end: number): DecodedAssignTasks {
  const assignments: DecodedAssignTasks["assignments"] = [];
  while (reader.pos < end) {
    const f = reader.field();
    if (f !== 1 || reader.wireType !== WireType.LengthDelimited) {
      reader.skip(reader.wireType, f);
      continue;
    }
    const stop = reader.uint32() + reader.pos;
    const a: DecodedAssignTasks["assignments"][number] = { $typeName: "taskflow.v1.Assignment", taskId: "", epoch: 0n, type: "", payload: EMPTY, attempt: 0, timeoutMs: 0 };
    while (reader.pos < stop) {
      const g = reader.field();
      if (g === 1) a.taskId = reader.string();
      else if (g === 2) a.epoch = reader.u64();
      else if (g === 3) a.type = reader.string();
      else if (g === 4) a.payload = reader.bytes();
      else if (g === 5) a.attempt = reader.uint32();
      else if (g === 6) a.timeoutMs = reader.uint32();
      else reader.skip(reader.wireType, g);
    }
    assignments.push(a);
  }
  return { $typeName: "taskflow.v1.AssignTasks", assignments };
}

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

/** The varint bytes of a uint64. */
function varint64(v: bigint): number[] {
  const out: number[] = [];
  for (; v >= 0x80n; v >>= 7n) out.push(Number(v & 0x7fn) | 0x80);
  out.push(Number(v));
  return out;
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
