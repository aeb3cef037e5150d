/** Hand-written codecs of result batches (`SubscribeResultsResponse`), the client's side of every task. */
import { WireType } from "@bufbuild/protobuf/wire";
import { EMPTY, HotReader, lenStrSize, strSize, varintSize, writeStr, writeVarint } from "./fast-wire.js";

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
