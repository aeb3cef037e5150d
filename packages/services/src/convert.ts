/** Conversions between the wire messages (@taskflow/proto) and core's records. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { DependencyFailureMode, TaskFilter, TaskGraphView, TaskOutcome, TaskRecord, TaskSpec, TaskState, WorkerRecord, WorkerState } from "@taskflow/core";
import { invalid } from "./validation.js";
import type { StoreHealth } from "@taskflow/core";
import {
  StoreStatusSchema,
  TaskSchema,
  TaskStateSchema,
  type TaskSpecSchema,
  WorkerInfoSchema,
  WorkerStateSchema,
  enumNames,
  type TaskState as WireTaskState,
  type WorkerState as WireWorkerState,
  type StoreStatus,
  type Task,
  type TaskFilter as WireTaskFilter,
  type TaskResult,
  type TaskSpec as WireTaskSpec,
  type WorkerInfo,
} from "@taskflow/proto";

// Core's state names are the wire enums' value names in lower case: both maps come from the
// enum descriptors, so there is no table to keep in step with the proto.
const toWireState = Object.fromEntries([...enumNames(TaskStateSchema)].map(([n, name]) => [name, n])) as Record<TaskState, WireTaskState>;

const fromWire = new Map<WireTaskState, TaskState>(Object.entries(toWireState).map(([k, v]) => [v, k as TaskState]));

export function wireTaskState(state: TaskState): WireTaskState {
  return toWireState[state];
}

/** undefined for UNSPECIFIED or an unknown number. */
export function coreTaskState(state: WireTaskState): TaskState | undefined {
  return fromWire.get(state);
}

/** A bulk call's filter; INVALID_ARGUMENT for an unknown state or a time past JavaScript's safe integers. */
export function filterFromWire(f: WireTaskFilter): TaskFilter {
  const states = f.states.map((s) => {
    const state = coreTaskState(s);
    if (!state) throw invalid(`filter.states has an unknown task state ${s}`);
    return state;
  });
  const ms = (name: string, v: bigint) => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`filter.${name} must be epoch milliseconds, got ${v}`);
    return Number(v);
  };
  return {
    type: f.type,
    tenant: f.tenant,
    states,
    createdAfter: ms("created_after_ms", f.createdAfterMs),
    createdBefore: ms("created_before_ms", f.createdBeforeMs),
    finishedAfter: ms("finished_after_ms", f.finishedAfterMs),
    finishedBefore: ms("finished_before_ms", f.finishedBeforeMs),
  };
}

const workerStates = Object.fromEntries([...enumNames(WorkerStateSchema)].map(([n, name]) => [name, n])) as Record<WorkerState, WireWorkerState>;

/** A generated spec, or one of the hot path's decoded specs (whose delay, attribute, limit and graph fields a sender may omit). */
type AnyWireSpec = Omit<WireTaskSpec, "$typeName" | "delayMs" | "runAtMs" | "metadata" | "deadlineMs" | "concurrencyKey" | "rateLimitKey" | "dependsOn" | "onDependencyFailure"> & {
  delayMs?: bigint;
  runAtMs?: bigint;
  metadata?: Readonly<Record<string, string>>;
  deadlineMs?: bigint;
  concurrencyKey?: string;
  rateLimitKey?: string;
  dependsOn?: readonly string[];
  onDependencyFailure?: number;
};

/** `DependencyFailure` by wire number; an unknown number stays visible so validation refuses it. */
const dependencyModes: readonly (DependencyFailureMode | undefined)[] = [undefined, "cancel", "run"];

function dependencyModeFromWire(n: number): DependencyFailureMode | undefined {
  return n >= 0 && n < dependencyModes.length ? dependencyModes[n] : (`DependencyFailure ${n}` as DependencyFailureMode);
}

export function specFromWire(spec: AnyWireSpec | undefined): TaskSpec {
  const out: TaskSpec = {
    type: spec?.type ?? "",
    payload: spec?.payload ?? new Uint8Array(0),
    priority: spec?.priority ?? 0,
    requiredLabels: spec?.requiredLabels ?? {},
    maxAttempts: spec?.maxAttempts ?? 0,
    timeoutMs: spec?.timeoutMs ?? 0,
    idempotencyKey: spec?.idempotencyKey ?? "",
    expectedDurationMs: spec?.expectedDurationMs ?? 0,
    // int64 on the wire; a value past 2^53 stays past every limit as a number, and is refused.
    delayMs: spec?.delayMs ? Number(spec.delayMs) : 0,
    runAt: spec?.runAtMs ? Number(spec.runAtMs) : 0,
  };
  // "" = none (proto3 has no absent string), and none is absent: a record without attributes
  // stores '' and skips a JSON.stringify on insert and a JSON.parse on every read (see
  // SPEC_ATTRIBUTE_KEYS). Set to "", every task carried '{"concurrencyKey":"","rateLimitKey":""}'.
  if (spec?.concurrencyKey) out.concurrencyKey = spec.concurrencyKey;
  if (spec?.rateLimitKey) out.rateLimitKey = spec.rateLimitKey;
  // Set only when sent (no spread on the hot path): a record without a graph keeps no attribute for it.
  if (spec?.dependsOn?.length) out.dependsOn = spec.dependsOn;
  if (spec?.onDependencyFailure) out.onDependencyFailure = dependencyModeFromWire(spec.onDependencyFailure)!;
  // Absent unless set: a record without attributes stores none (see SPEC_ATTRIBUTE_KEYS).
  if (spec?.metadata && hasKeys(spec.metadata)) out.metadata = spec.metadata;
  // int64 as for the delay: past 2^53 stays past the limit and is refused.
  if (spec?.deadlineMs) out.deadline = Number(spec.deadlineMs);
  return out;
}

function hasKeys(record: Readonly<Record<string, string>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

function ts(ms: number): Timestamp | undefined {
  return ms ? timestampFromMs(ms) : undefined;
}

/** `graph`: the task's place in its graph now (GetTask and the dashboard ask for it). */
export function taskToWire(rec: TaskRecord, graph?: TaskGraphView): Task {
  return create(TaskSchema, {
    id: rec.id,
    spec: {
      type: rec.type,
      payload: rec.payload,
      priority: rec.priority,
      requiredLabels: { ...rec.requiredLabels },
      maxAttempts: rec.maxAttempts,
      timeoutMs: rec.timeoutMs,
      idempotencyKey: rec.idempotencyKey,
      expectedDurationMs: rec.expectedDurationMs,
      // The resolved due time of a delayed task (a retry's backoff is not part of the spec).
      runAtMs: rec.attempt === 0 ? BigInt(rec.notBefore) : 0n,
      dependsOn: rec.dependsOn ? [...rec.dependsOn] : [],
      onDependencyFailure: rec.onDependencyFailure ? dependencyModes.indexOf(rec.onDependencyFailure) : 0,
      concurrencyKey: rec.concurrencyKey ?? "",
      rateLimitKey: rec.rateLimitKey ?? "",
      metadata: { ...rec.metadata },
      deadlineMs: BigInt(rec.deadline ?? 0),
    },
    waitingOn: graph?.waitingOn ?? [],
    dependents: graph?.dependents ?? [],
    dependentCount: graph?.dependentCount ?? 0,
    state: toWireState[rec.state],
    clientId: rec.clientId,
    attempt: rec.attempt,
    epoch: BigInt(rec.epoch),
    workerId: rec.workerId,
    createdAt: ts(rec.createdAt),
    assignedAt: ts(rec.assignedAt),
    startedAt: ts(rec.startedAt),
    finishedAt: ts(rec.finishedAt),
    result: rec.result ?? new Uint8Array(0),
    error: rec.error,
    waitingReason: rec.waitingReason,
    tenant: rec.tenant,
    scheduleId: rec.schedule?.id ?? "",
    scheduledAt: rec.schedule ? ts(rec.schedule.at) : undefined,
    attempts: rec.attempts.map((a) => ({
      attempt: a.attempt,
      epoch: BigInt(a.epoch),
      workerId: a.workerId,
      startedAt: ts(a.startedAt),
      finishedAt: ts(a.finishedAt),
      error: a.error,
    })),
  });
}

/** A schedule's template (a submit's fields only) on the wire. */
export function specToWire(spec: TaskSpec): MessageInitShape<typeof TaskSpecSchema> {
  return {
    type: spec.type,
    payload: spec.payload,
    priority: spec.priority,
    requiredLabels: { ...spec.requiredLabels },
    maxAttempts: spec.maxAttempts,
    timeoutMs: spec.timeoutMs,
    idempotencyKey: spec.idempotencyKey,
    expectedDurationMs: spec.expectedDurationMs,
  };
}

export function outcomeToWire(o: TaskOutcome): Omit<TaskResult, "$typeName"> {
  return {
    taskId: o.taskId,
    state: toWireState[o.state],
    result: o.result ?? new Uint8Array(0),
    error: o.error,
    attempt: o.attempt,
    workerId: o.workerId,
  };
}

export function workerToWire(w: WorkerRecord): WorkerInfo {
  return create(WorkerInfoSchema, {
    workerId: w.id,
    host: w.host,
    state: workerStates[w.state],
    slots: w.slots,
    running: w.running,
    labels: { ...w.labels },
    taskTypes: [...w.taskTypes],
    lastHeartbeat: ts(w.lastHeartbeat),
    pid: w.pid,
  });
}

export function storeToWire(h: StoreHealth): StoreStatus {
  return create(StoreStatusSchema, { kind: h.kind, writable: h.writable, error: h.error, ...(h.since ? { since: ts(h.since) } : {}) });
}
