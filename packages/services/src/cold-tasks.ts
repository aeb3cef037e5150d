/**
 * Queued tasks kept compactly (docs/adr/0030-off-heap-queued-tasks.md): a plain task that waits
 * in the task heap needs no JavaScript object of its own. Its fixed fields live here in typed
 * arrays indexed by its heap id (struct of arrays), its ID as 16 bytes behind a hash index, its
 * payload in a byte arena, its type, tenant, client ID and label set as refs into shared pools.
 * The task table turns it back into a record and a live task (thaws it) when it is popped, looked
 * up or listed; anything unusual about a task (a key, metadata, limits, a delay, an attempt
 * history) keeps it a full object from the start.
 */
import { SPEC_ATTRIBUTE_KEYS, type TaskRecord } from "@taskflow/core";
import { ByteArena, IdIndex, InternPool, packUuid, unpackUuid } from "./cold-store.js";

/** Payloads up to this size go into the arena; a larger one keeps its task a full object. */
export const COLD_PAYLOAD_MAX_BYTES = 1024;

/** What the task table keeps of a queued task beside its record, to put it back as it was. */
export interface HeapPlace<A> {
  /** Task heap handle. */
  readonly handle: number;
  /** Its task heap key. */
  readonly key: number;
  readonly enqueuedAt: number;
  /** Its tenant's account. */
  readonly account: A;
}

/** A thawed task: its record (a new object) and where it was. */
export interface Thawed<A> extends HeapPlace<A> {
  readonly rec: TaskRecord;
}

/** The cold tasks as a store that keeps record objects reads them while it holds only their refs. */
export interface ColdRecords {
  /** The record of cold task `ref` (its heap id): a snapshot, the task stays cold. */
  record(ref: number): TaskRecord;
  seqOf(ref: number): number;
  /** One of its shared string fields, read in place (a filter over millions builds no record). */
  field(ref: number, name: "type" | "tenant" | "clientId"): string;
  /** The ref of the cold task with this ID, or -1. */
  find(id: string): number;
  /** Cold tasks now. */
  readonly size: number;
}

/**
 * A store that keeps the table's record objects (the memory store) lets go of a task's record
 * while it is cold, holding only its ref, and takes the new record back when it is thawed.
 */
export interface RecordKeeper {
  attachCold(source: ColdRecords): void;
  released(rec: TaskRecord, ref: number): void;
  adopted(rec: TaskRecord, ref: number): void;
}

/** The store as a {@link RecordKeeper}, when it is one. */
export function recordKeeperOf(store: object): RecordKeeper | undefined {
  const keeper = store as Partial<RecordKeeper>;
  return keeper.attachCold && keeper.released && keeper.adopted ? (keeper as RecordKeeper) : undefined;
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});
const INT32_MAX = 2 ** 31 - 1;

/**
 * True for a task that may live compactly: queued for the first time with nothing but the
 * plain fields set. Everything else stays a full object (the target is the plain bulk of a deep
 * queue, not every feature).
 */
export function isPlain(rec: TaskRecord): boolean {
  if (
    rec.state !== "queued" ||
    rec.attempt !== 0 ||
    rec.epoch !== 0 ||
    rec.attempts.length !== 0 ||
    rec.idempotencyKey !== "" ||
    rec.notBefore !== 0 ||
    rec.waitingReason !== "" ||
    rec.workerId !== "" ||
    rec.payload.byteLength > COLD_PAYLOAD_MAX_BYTES ||
    !Number.isInteger(rec.expectedDurationMs) ||
    rec.expectedDurationMs < 0 ||
    rec.expectedDurationMs > INT32_MAX ||
    rec.timeoutMs < 0 ||
    rec.maxAttempts < 0
  ) {
    return false;
  }
  // The wire decoder sets the limit keys to "" (proto3 has no absent string): "" is none.
  for (const key of SPEC_ATTRIBUTE_KEYS) if (rec[key] !== undefined && rec[key] !== "") return false;
  return true;
}

/**
 * Cold queued tasks by heap id. Arrays are allocated for the whole heap capacity up front: the
 * pages of an array this large are touched (made resident) only as ids are used.
 */
export class ColdTasks<A> implements ColdRecords {
  private readonly seq: Float64Array;
  private readonly createdAt: Float64Array;
  private readonly enqueuedAt: Float64Array;
  private readonly key: Float64Array;
  private readonly priority: Int32Array;
  private readonly maxAttempts: Int32Array;
  private readonly timeoutMs: Int32Array;
  private readonly expectedDurationMs: Int32Array;
  private readonly handle: Int32Array;
  /** Payload offset in the arena (unsigned), and its length + 1: 0 marks an id with no cold task (zeroed pages stay untouched). */
  private readonly payloadAt: Uint32Array;
  private readonly payloadEnd: Int32Array;
  private readonly typeRef: Int32Array;
  private readonly tenantRef: Int32Array;
  private readonly clientRef: Int32Array;
  private readonly labelsRef: Int32Array;
  private readonly ids: Uint8Array;
  private readonly index: IdIndex;
  private readonly arena = new ByteArena();
  private readonly strings = new InternPool<string>();
  private readonly labels = new InternPool<Readonly<Record<string, string>>>();
  private readonly accounts = new InternPool<A>();
  private count = 0;
  /** A scratch buffer for packing a looked-up ID. */
  private readonly probe = new Uint8Array(16);

  constructor(readonly capacity: number) {
    this.seq = new Float64Array(capacity);
    this.createdAt = new Float64Array(capacity);
    this.enqueuedAt = new Float64Array(capacity);
    this.key = new Float64Array(capacity);
    this.priority = new Int32Array(capacity);
    this.maxAttempts = new Int32Array(capacity);
    this.timeoutMs = new Int32Array(capacity);
    this.expectedDurationMs = new Int32Array(capacity);
    this.handle = new Int32Array(capacity);
    this.payloadAt = new Uint32Array(capacity);
    this.payloadEnd = new Int32Array(capacity);
    this.typeRef = new Int32Array(capacity);
    this.tenantRef = new Int32Array(capacity);
    this.clientRef = new Int32Array(capacity);
    this.labelsRef = new Int32Array(capacity);
    this.ids = new Uint8Array(capacity * 16);
    this.index = new IdIndex(this.ids);
  }

  /** Cold tasks held. */
  get size(): number {
    return this.count;
  }

  has(idx: number): boolean {
    return idx < this.capacity && this.payloadEnd[idx]! > 0;
  }

  /** The heap id of the cold task with this ID, or -1. */
  find(id: string): number {
    if (this.count === 0 || !packUuid(id, this.probe, 0)) return -1;
    return this.index.find(this.probe, 0);
  }

  /**
   * Keeps `rec` (plain, see {@link isPlain}) compactly under heap id `idx`; false, keeping
   * nothing, when it cannot (an ID that is not a UUID, no arena room, an id past capacity).
   */
  freeze(idx: number, rec: TaskRecord, place: HeapPlace<A>): boolean {
    if (idx >= this.capacity || this.has(idx) || !packUuid(rec.id, this.ids, idx * 16)) return false;
    const len = rec.payload.byteLength;
    const at = this.arena.alloc(rec.payload);
    if (at < 0) return false;
    this.payloadAt[idx] = at;
    this.payloadEnd[idx] = len + 1;
    this.seq[idx] = rec.seq;
    this.createdAt[idx] = rec.createdAt;
    this.enqueuedAt[idx] = place.enqueuedAt;
    this.key[idx] = place.key;
    this.handle[idx] = place.handle;
    this.priority[idx] = rec.priority;
    this.maxAttempts[idx] = rec.maxAttempts;
    this.timeoutMs[idx] = rec.timeoutMs;
    this.expectedDurationMs[idx] = rec.expectedDurationMs;
    this.typeRef[idx] = this.strings.intern(rec.type, rec.type);
    this.clientRef[idx] = this.strings.intern(rec.clientId, rec.clientId);
    this.tenantRef[idx] = this.accounts.intern(rec.tenant, place.account);
    this.labelsRef[idx] = this.labels.intern(labelsKey(rec.requiredLabels), rec.requiredLabels);
    this.index.add(idx);
    this.count++;
    return true;
  }

  /** The cold task `idx` as a new record, left in place (a read, e.g. for a filter). */
  peek(idx: number): Thawed<A> {
    const labelsRef = this.labelsRef[idx]!;
    const tenantRef = this.tenantRef[idx]!;
    const rec: TaskRecord = {
      type: this.strings.value(this.typeRef[idx]!),
      payload: this.arena.read(this.payloadAt[idx]!, this.payloadEnd[idx]! - 1),
      priority: this.priority[idx]!,
      // The empty set interns under "": one shared frozen object, as most tasks have no labels.
      requiredLabels: this.labels.keyOf(labelsRef) === "" ? NO_LABELS : this.labels.value(labelsRef),
      maxAttempts: this.maxAttempts[idx]!,
      timeoutMs: this.timeoutMs[idx]!,
      idempotencyKey: "",
      expectedDurationMs: this.expectedDurationMs[idx]!,
      id: unpackUuid(this.ids, idx * 16),
      seq: this.seq[idx]!,
      tenant: this.accounts.keyOf(tenantRef),
      clientId: this.strings.value(this.clientRef[idx]!),
      state: "queued",
      attempt: 0,
      epoch: 0,
      workerId: "",
      createdAt: this.createdAt[idx]!,
      assignedAt: 0,
      startedAt: 0,
      finishedAt: 0,
      notBefore: 0,
      result: undefined,
      error: "",
      waitingReason: "",
      attempts: [],
    };
    return { rec, handle: this.handle[idx]!, key: this.key[idx]!, enqueuedAt: this.enqueuedAt[idx]!, account: this.accounts.value(tenantRef) };
  }

  record(idx: number): TaskRecord {
    return this.peek(idx).rec;
  }

  seqOf(idx: number): number {
    return this.seq[idx]!;
  }

  field(idx: number, name: "type" | "tenant" | "clientId"): string {
    if (name === "tenant") return this.accounts.keyOf(this.tenantRef[idx]!);
    return this.strings.value((name === "type" ? this.typeRef : this.clientRef)[idx]!);
  }

  /** Takes the cold task `idx` out (its id, payload slot and refs are freed) and returns it. */
  thaw(idx: number): Thawed<A> {
    const thawed = this.peek(idx);
    this.index.remove(idx);
    this.arena.release(this.payloadAt[idx]!, this.payloadEnd[idx]! - 1);
    this.payloadEnd[idx] = 0;
    this.strings.release(this.typeRef[idx]!);
    this.strings.release(this.clientRef[idx]!);
    this.accounts.release(this.tenantRef[idx]!);
    this.labels.release(this.labelsRef[idx]!);
    this.count--;
    return thawed;
  }

  /** Heap ids of the cold tasks, in id order; thawing the one just given while walking is safe. */
  *heapIds(): IterableIterator<number> {
    for (let idx = 0; idx < this.capacity && this.count > 0; idx++) if (this.payloadEnd[idx]! > 0) yield idx;
  }
}

/** One key per distinct label set, whatever the order its entries were given in. */
function labelsKey(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  keys.sort();
  return JSON.stringify(keys.map((k) => [k, labels[k]]));
}
