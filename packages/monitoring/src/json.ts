import type { ScheduleRecord, TaskGraphView, TaskRecord, WorkerRecord } from "@taskflow/core";
import type { ScheduleJson, TaskDetailJson, TaskSummaryJson, WorkerJson } from "./api.js";

/** Payloads and results are shown as text up to this many bytes. */
export const TEXT_LIMIT = 64 * 1024;

const decoder = new TextDecoder("utf-8", { fatal: false });

function text(bytes: Uint8Array | undefined): string {
  if (!bytes || bytes.byteLength === 0) return "";
  const cut = bytes.byteLength > TEXT_LIMIT ? bytes.subarray(0, TEXT_LIMIT) : bytes;
  return decoder.decode(cut) + (cut === bytes ? "" : " …");
}

export function workerJson(w: WorkerRecord): WorkerJson {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    state: w.state,
    slots: w.slots,
    running: w.running,
    labels: { ...w.labels },
    taskTypes: [...w.taskTypes].sort(),
    lastHeartbeat: w.lastHeartbeat,
    connectedAt: w.connectedAt,
  };
}

export function taskSummaryJson(t: TaskRecord): TaskSummaryJson {
  return {
    id: t.id,
    type: t.type,
    state: t.state,
    priority: t.priority,
    attempt: t.attempt,
    workerId: t.workerId,
    createdAt: t.createdAt,
    finishedAt: t.finishedAt,
  };
}

/** The task page lists this many dependencies and dependents each, with their states. */
export const GRAPH_LISTED = 50;

/** `graph` and `states`: the task's place in its graph and its neighbours' states, when the caller looked them up. */
export function taskDetailJson(t: TaskRecord, graph?: TaskGraphView, states: ReadonlyMap<string, string> = new Map()): TaskDetailJson {
  const link = (id: string) => ({ id, state: states.get(id) ?? "unknown" });
  return {
    ...taskSummaryJson(t),
    seq: t.seq,
    tenant: t.tenant,
    clientId: t.clientId,
    epoch: t.epoch,
    maxAttempts: t.maxAttempts,
    timeoutMs: t.timeoutMs,
    requiredLabels: { ...t.requiredLabels },
    idempotencyKey: t.idempotencyKey,
    assignedAt: t.assignedAt,
    startedAt: t.startedAt,
    notBefore: t.notBefore,
    payloadBytes: t.payload.byteLength,
    payload: text(t.payload),
    resultBytes: t.result?.byteLength ?? 0,
    result: text(t.result),
    error: t.error,
    waitingReason: t.waitingReason,
    attempts: t.attempts.map((a) => ({ ...a })),
    dependsOn: (t.dependsOn ?? []).slice(0, GRAPH_LISTED).map(link),
    dependsOnCount: t.dependsOn?.length ?? 0,
    onDependencyFailure: t.dependsOn?.length ? (t.onDependencyFailure ?? "cancel") : "",
    dependents: (graph?.dependents ?? []).slice(0, GRAPH_LISTED).map(link),
    dependentCount: graph?.dependentCount ?? 0,
  };
}

export function scheduleJson(s: ScheduleRecord): ScheduleJson {
  return {
    id: s.id,
    tenant: s.tenant,
    type: s.template.type,
    cron: s.cron,
    timezone: s.cron ? s.timezone || "UTC" : "",
    intervalMs: s.intervalMs,
    missed: s.missed,
    paused: s.paused,
    nextFireAt: s.nextFireAt,
    lastFireAt: s.lastFireAt,
    lastTaskId: s.lastTaskId,
    lastError: s.lastError,
  };
}
