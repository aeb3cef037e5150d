/**
 * How the CLI shows a task or a worker (`get`, `list`, `watch`, `workers`, bulk calls). Apart from
 * output.ts because it needs @taskflow/proto's enums and timestamps at load: commands import it
 * when they run, so `taskflow --help` does not load the protobuf runtime.
 */
import { DependencyFailure, TaskState, taskStateName, timestampDate, workerStateName, type Task, type Timestamp, type WorkerInfo } from "@taskflow/proto";
import { bytesAsJson } from "./output.js";

function time(ts: Timestamp | undefined): string | null {
  return ts ? timestampDate(ts).toISOString() : null;
}

/** A task as plain JSON for `get --json` and `list --json`. */
export function taskJson(task: Task): Record<string, unknown> {
  return {
    id: task.id,
    type: task.spec?.type,
    state: taskStateName(task.state),
    priority: task.spec?.priority ?? 0,
    attempt: task.attempt,
    epoch: Number(task.epoch),
    workerId: task.workerId || null,
    tenant: task.tenant,
    clientId: task.clientId || null,
    createdAt: time(task.createdAt),
    // A delayed task's due time (run_at_ms of the Task's spec), else null.
    runAt: task.spec?.runAtMs ? new Date(Number(task.spec.runAtMs)).toISOString() : null,
    deadline: task.spec?.deadlineMs ? new Date(Number(task.spec.deadlineMs)).toISOString() : null,
    expectedDurationMs: task.spec?.expectedDurationMs ?? 0,
    metadata: { ...task.spec?.metadata },
    assignedAt: time(task.assignedAt),
    startedAt: time(task.startedAt),
    finishedAt: time(task.finishedAt),
    payload: bytesAsJson(task.spec?.payload ?? new Uint8Array(0)),
    result: bytesAsJson(task.result),
    error: task.error || null,
    waitingReason: task.waitingReason || null,
    // Task graph: what it waits for (all, and those not finished yet) and who waits for it now.
    dependsOn: [...(task.spec?.dependsOn ?? [])],
    onDependencyFailure: task.spec?.dependsOn.length ? (task.spec.onDependencyFailure === DependencyFailure.RUN_ANYWAY ? "run" : "cancel") : null,
    waitingOn: [...task.waitingOn],
    dependents: [...task.dependents],
    dependentCount: task.dependentCount,
    concurrencyKey: task.spec?.concurrencyKey || null,
    rateLimitKey: task.spec?.rateLimitKey || null,
    // The schedule whose firing made it, and the firing time.
    schedule: task.scheduleId ? { id: task.scheduleId, firedAt: time(task.scheduledAt) } : null,
    attempts: task.attempts.map((a) => ({
      attempt: a.attempt,
      epoch: Number(a.epoch),
      workerId: a.workerId,
      startedAt: time(a.startedAt),
      finishedAt: time(a.finishedAt),
      error: a.error || null,
    })),
  };
}

/**
 * `get`'s text. `states` gives the state of the task's dependencies and dependents (`get` looks
 * them up); one missing shows as "?".
 */
export function taskText(task: Task, states: ReadonlyMap<string, string> = new Map()): string {
  const j = taskJson(task);
  const lines = [
    `id:        ${j["id"]}`,
    `type:      ${j["type"]}`,
    `state:     ${j["state"]}`,
    `tenant:    ${j["tenant"]}`,
    `priority:  ${j["priority"]}`,
    `attempt:   ${j["attempt"]} (epoch ${j["epoch"]})`,
  ];
  if (j["workerId"]) lines.push(`worker:    ${j["workerId"]}`);
  if (j["waitingReason"]) lines.push(`waiting:   ${j["waitingReason"]}`);
  if (j["concurrencyKey"]) lines.push(`conc. key: ${j["concurrencyKey"]}`);
  if (j["rateLimitKey"]) lines.push(`rate key:  ${j["rateLimitKey"]}`);
  lines.push(`created:   ${j["createdAt"]}`);
  if (j["runAt"]) lines.push(`due:       ${j["runAt"]}`);
  if (j["deadline"]) lines.push(`deadline:  ${j["deadline"]}`);
  if (j["expectedDurationMs"]) lines.push(`expected:  ${j["expectedDurationMs"]} ms`);
  for (const [key, value] of Object.entries(task.spec?.metadata ?? {})) lines.push(`metadata:  ${key}=${value}`);
  if (task.scheduleId) lines.push(`schedule:  ${task.scheduleId} (firing of ${time(task.scheduledAt)})`);
  if (j["startedAt"]) lines.push(`started:   ${j["startedAt"]}`);
  if (j["finishedAt"]) lines.push(`finished:  ${j["finishedAt"]}`);
  if (task.state === TaskState.SUCCEEDED) lines.push(`result:    ${JSON.stringify(j["result"])}`);
  if (j["error"]) lines.push(`error:     ${j["error"]}`);
  const deps = task.spec?.dependsOn ?? [];
  if (deps.length) {
    lines.push(`depends on (${deps.length}, on failure: ${j["onDependencyFailure"]}):`);
    listed(lines, deps, deps.length, states);
  }
  if (task.dependentCount) {
    lines.push(`dependents waiting (${task.dependentCount}):`);
    listed(lines, task.dependents, task.dependentCount, states);
  }
  return lines.join("\n");
}

/** `get` lists (and looks up the state of) this many dependencies and dependents each. */
export const GRAPH_LISTED = 50;

function listed(lines: string[], ids: readonly string[], total: number, states: ReadonlyMap<string, string>): void {
  for (const id of ids.slice(0, GRAPH_LISTED)) lines.push(`  ${id}  ${states.get(id) ?? "?"}`);
  if (total > GRAPH_LISTED) lines.push(`  … and ${total - GRAPH_LISTED} more (get --json lists them)`);
}

export function workerJson(w: WorkerInfo): Record<string, unknown> {
  return {
    workerId: w.workerId,
    host: w.host,
    pid: w.pid,
    state: workerStateName(w.state),
    slots: w.slots,
    running: w.running,
    labels: { ...w.labels },
    taskTypes: [...w.taskTypes],
    lastHeartbeat: time(w.lastHeartbeat),
  };
}
