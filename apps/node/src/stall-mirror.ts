/**
 * What a worker process's watchdog thread can read while the main thread is stuck: one
 * SharedArrayBuffer holding a progress tick, the task whose handler is running synchronously right
 * now, and a copy of the results the worker holds (finished, not yet stored by the control node).
 * The main thread writes it (cheaply, on the hot path); the watchdog reads it only once the main
 * thread has stopped moving, so the two never race in practice, and the words that publish new
 * data are written with Atomics.
 *
 * Also the rescue file: the watchdog writes what it read there before it kills the process, and the
 * process that replaces it reads it back.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import type { HeldResult, WorkerHooks } from "@taskflow/client";

// Int32 control words at the start of the buffer.
const TICK = 0;
/** Bytes of the running task's ID; 0 when no handler runs synchronously. */
const CURRENT_LEN = 1;
/** End of the used part of the result region. */
const HEAD = 2;
const CURRENT_EPOCH_OFFSET = 16;
const CURRENT_ID_OFFSET = 24;
/** Longest task ID recorded as the running one (a longer one is reported as unknown). */
const CURRENT_ID_MAX = 1024;
const REGION_OFFSET = CURRENT_ID_OFFSET + CURRENT_ID_MAX;
/** Room for held results. A result too big for it is not copied (its task reruns after a stall). */
export const DEFAULT_REGION_BYTES = 1 << 20;

// One record: u32 length, u8 live, u8 flags (1 ok, 2 unrecoverable), u16 ID bytes, u32 error bytes, u32 result bytes,
// u64 epoch, then the ID, the error and the result.
const RECORD_HEADER = 24;
const LIVE = 1;
const DROPPED = 0;

/** A result as the watchdog finds it. */
export type MirroredResult = HeldResult;

export function createSharedState(regionBytes = DEFAULT_REGION_BYTES): SharedArrayBuffer {
  return new SharedArrayBuffer(REGION_OFFSET + regionBytes);
}

/**
 * The main thread's side: `hooks` go to the TaskflowWorker, `tick()` runs on a timer. A result is
 * copied in when it is held and marked dropped when stored; once nothing is held the region starts
 * again from its beginning, and when it is full the live records move down to make room.
 */
export class StallMirror {
  private readonly ctl: Int32Array;
  private readonly bytes: Buffer;
  private readonly view: DataView;
  private readonly regionEnd: number;
  private head = REGION_OFFSET;
  /** Offset of each held result's record. */
  private readonly records = new Map<HeldResult, number>();
  readonly hooks: Required<Pick<WorkerHooks, "handlerEntered" | "handlerExited" | "resultHeld" | "resultsStored">>;

  constructor(readonly shared: SharedArrayBuffer) {
    this.ctl = new Int32Array(shared, 0, 4);
    this.bytes = Buffer.from(shared);
    this.view = new DataView(shared);
    this.regionEnd = shared.byteLength;
    Atomics.store(this.ctl, HEAD, this.head);
    this.hooks = {
      handlerEntered: (taskId, epoch) => this.entered(taskId, epoch),
      handlerExited: () => Atomics.store(this.ctl, CURRENT_LEN, 0),
      resultHeld: (result) => this.add(result),
      resultsStored: (results) => this.drop(results),
    };
  }

  /** The main thread is alive. */
  tick(): void {
    Atomics.add(this.ctl, TICK, 1);
  }

  /** Results copied in and not yet dropped. */
  get size(): number {
    return this.records.size;
  }

  private entered(taskId: string, epoch: bigint): void {
    let len = 0;
    if (taskId.length * 3 <= CURRENT_ID_MAX) {
      len = this.bytes.write(taskId, CURRENT_ID_OFFSET, "utf8");
      this.view.setBigUint64(CURRENT_EPOCH_OFFSET, epoch, true);
    }
    // Published last: the watchdog reads the ID only after it sees a length.
    Atomics.store(this.ctl, CURRENT_LEN, len);
  }

  private add(result: HeldResult): void {
    // An upper bound, so that nothing is measured twice on the hot path.
    const need = RECORD_HEADER + result.taskId.length * 3 + result.error.length * 3 + result.result.byteLength;
    if (this.head + need > this.regionEnd) {
      this.compact();
      if (this.head + need > this.regionEnd) return;
    }
    const at = this.head;
    const bytes = this.bytes;
    const idLen = bytes.write(result.taskId, at + RECORD_HEADER, "utf8");
    const errLen = result.error ? bytes.write(result.error, at + RECORD_HEADER + idLen, "utf8") : 0;
    const resLen = result.result.byteLength;
    if (resLen) bytes.set(result.result, at + RECORD_HEADER + idLen + errLen);
    const view = this.view;
    const length = RECORD_HEADER + idLen + errLen + resLen;
    view.setUint32(at, length, true);
    view.setUint8(at + 4, LIVE);
    view.setUint8(at + 5, (result.ok ? 1 : 0) | (result.unrecoverable ? 2 : 0));
    view.setUint16(at + 6, idLen, true);
    view.setUint32(at + 8, errLen, true);
    view.setUint32(at + 12, resLen, true);
    view.setBigUint64(at + 16, result.epoch, true);
    this.records.set(result, at);
    this.head = at + length;
    Atomics.store(this.ctl, HEAD, this.head);
  }

  private drop(results: readonly HeldResult[]): void {
    const records = this.records;
    for (const r of results) {
      const at = records.get(r);
      if (at === undefined) continue;
      this.bytes[at + 4] = DROPPED;
      records.delete(r);
    }
    if (records.size === 0 && this.head !== REGION_OFFSET) {
      this.head = REGION_OFFSET;
      Atomics.store(this.ctl, HEAD, this.head);
    }
  }

  /** Moves the live records to the start of the region (they only move down, in order). */
  private compact(): void {
    let to = REGION_OFFSET;
    for (const [result, at] of this.records) {
      const length = this.view.getUint32(at, true);
      if (at !== to) this.bytes.copyWithin(to, at, at + length);
      this.records.set(result, to);
      to += length;
    }
    this.head = to;
    Atomics.store(this.ctl, HEAD, this.head);
  }
}

/** The watchdog's side: reads without writing. */
export class StallReader {
  private readonly ctl: Int32Array;
  private readonly bytes: Buffer;
  private readonly view: DataView;

  constructor(shared: SharedArrayBuffer) {
    this.ctl = new Int32Array(shared, 0, 4);
    this.bytes = Buffer.from(shared);
    this.view = new DataView(shared);
  }

  tick(): number {
    return Atomics.load(this.ctl, TICK);
  }

  /** The task whose handler runs synchronously now, if any. */
  current(): { taskId: string; epoch: bigint } | undefined {
    const len = Atomics.load(this.ctl, CURRENT_LEN);
    if (len === 0) return undefined;
    return {
      taskId: this.bytes.toString("utf8", CURRENT_ID_OFFSET, CURRENT_ID_OFFSET + len),
      epoch: this.view.getBigUint64(CURRENT_EPOCH_OFFSET, true),
    };
  }

  /** The held results copied in and not dropped. */
  results(): MirroredResult[] {
    const head = Atomics.load(this.ctl, HEAD);
    const out: MirroredResult[] = [];
    for (let at = REGION_OFFSET; at + RECORD_HEADER <= head; ) {
      const length = this.view.getUint32(at, true);
      if (length < RECORD_HEADER) break;
      if (this.view.getUint8(at + 4) === LIVE) {
        const idLen = this.view.getUint16(at + 6, true);
        const errLen = this.view.getUint32(at + 8, true);
        const resLen = this.view.getUint32(at + 12, true);
        const body = at + RECORD_HEADER;
        out.push({
          taskId: this.bytes.toString("utf8", body, body + idLen),
          epoch: this.view.getBigUint64(at + 16, true),
          ok: (this.view.getUint8(at + 5) & 1) === 1,
          error: this.bytes.toString("utf8", body + idLen, body + idLen + errLen),
          ...((this.view.getUint8(at + 5) & 2) === 2 && { unrecoverable: true }),
          result: copy(this.bytes.subarray(body + idLen + errLen, body + idLen + errLen + resLen)),
        });
      }
      at += length;
    }
    return out;
  }
}

/** Out of shared memory into a buffer of its own. */
function copy(view: Uint8Array): Uint8Array {
  const out = new Uint8Array(view.byteLength);
  out.set(view);
  return out;
}

/** What a watchdog leaves for the process that replaces the one it killed. */
interface RescueFile {
  workerId: string;
  pid: number;
  writtenAt: string;
  results: { taskId: string; epoch: string; ok: boolean; result: string; error: string; unrecoverable?: boolean }[];
}

/** Writes the rescue file whole or not at all (a temporary file, then a rename). */
export function writeRescueFile(file: string, workerId: string, results: readonly HeldResult[]): void {
  const body: RescueFile = {
    workerId,
    pid: process.pid,
    writtenAt: new Date().toISOString(),
    results: results.map((r) => ({ taskId: r.taskId, epoch: r.epoch.toString(), ok: r.ok, result: Buffer.from(r.result).toString("base64"), error: r.error, ...(r.unrecoverable && { unrecoverable: true }) })),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(body));
  renameSync(tmp, file);
}

/** The results in a rescue file left for `workerId`; none when there is no such file. */
export function readRescueFile(file: string, workerId: string): HeldResult[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const body = JSON.parse(text) as RescueFile;
  if (body.workerId !== workerId) return [];
  return body.results.map((r) => ({ taskId: r.taskId, epoch: BigInt(r.epoch), ok: r.ok, result: new Uint8Array(Buffer.from(r.result, "base64")), error: r.error, ...(r.unrecoverable && { unrecoverable: true }) }));
}

export function removeRescueFile(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
