/**
 * Hand-written codecs of the worker session (`WorkerService.Session`): assignments down,
 * heartbeats with results up.
 */
import { WireType } from "@bufbuild/protobuf/wire";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AssignmentSchema,
  DependencyResultSchema,
  SessionRequestSchema,
  SessionResponseSchema,
  type DependencyResult,
  type SessionRequest,
  type SessionResponse,
} from "./gen/taskflow/v1/worker_service_pb.js";
import { EMPTY, HotReader, lenStrSize, mapSize, strSize, varintSize, writeMap, writeStr, writeVarint } from "./fast-wire.js";

// ---- SessionResponse{assign} ---------------------------------------------------------------

/** What one assignment carries (taskflow.v1.Assignment). */
export interface FastAssignment {
  taskId: string;
  epoch: number;
  type: string;
  payload: Uint8Array;
  attempt: number;
  timeoutMs: number;
  /** Assignment.metadata = 8; absent or empty sends nothing. */
  metadata?: Readonly<Record<string, string>> | undefined;
  /**
   * `Assignment.dependency_results` (field 7) already encoded, tags included (see
   * {@link encodeDependencyResults}): a task graph's dependent is encoded once when it becomes
   * ready, not on every assignment. Absent for a task without dependencies.
   */
  dependencyResults?: Uint8Array | undefined;
}

/** `Assignment.dependency_results` as the bytes {@link FastAssignment.dependencyResults} holds. */
export function encodeDependencyResults(results: readonly Omit<DependencyResult, "$typeName">[]): Uint8Array {
  return toBinary(AssignmentSchema, create(AssignmentSchema, { dependencyResults: results.map((r) => create(DependencyResultSchema, r)) }));
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
    if (a.dependencyResults) size += a.dependencyResults.byteLength;
    if (a.metadata) size += mapSize(a.metadata);
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
    if (a.dependencyResults) {
      buf.set(a.dependencyResults, pos);
      pos += a.dependencyResults.byteLength;
    }
    if (a.metadata) pos = writeMap(buf, pos, 0x42, a.metadata); // metadata = 8
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


// ---- decoders ------------------------------------------------------------------------------

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
    const a: DecodedAssignTasks["assignments"][number] = { $typeName: "taskflow.v1.Assignment", taskId: "", epoch: 0n, type: "", payload: EMPTY, attempt: 0, timeoutMs: 0, dependencyResults: [], metadata: {} };
    while (reader.pos < stop) {
      const g = reader.field();
      if (g === 1) a.taskId = reader.string();
      else if (g === 2) a.epoch = reader.u64();
      else if (g === 3) a.type = reader.string();
      else if (g === 4) a.payload = reader.bytes();
      else if (g === 5) a.attempt = reader.uint32();
      else if (g === 6) a.timeoutMs = reader.uint32();
      else if (g === 7) a.dependencyResults.push(fromBinary(DependencyResultSchema, reader.bytes()));
      else if (g === 8) reader.mapEntry(a.metadata);
      else reader.skip(reader.wireType, g);
    }
    assignments.push(a);
  }
  return { $typeName: "taskflow.v1.AssignTasks", assignments };
}
