/**
 * The filters of the bulk calls (RetryTasks, CancelTasks; ADR 0020): their checks, each naming
 * the request field it refuses, and the match of one task.
 */
import {
  BULK_DEFAULT_MAX,
  BULK_LIMIT,
  Code,
  TaskflowError,
  type BulkOptions,
  type TaskFilter,
  type TaskRecord,
  type TaskState,
  type TenantScope,
} from "@taskflow/core";
import { invalid } from "./validation.js";

/** A checked filter: its states resolved to the call's defaults, its tenant to what the caller may see. */
export interface ResolvedFilter {
  type: string;
  /** undefined = every tenant (an all-tenants caller that named none). */
  tenant: string | undefined;
  states: readonly TaskState[];
  createdAfter: number;
  createdBefore: number;
  finishedAfter: number;
  finishedBefore: number;
}

const RETRYABLE: readonly TaskState[] = ["failed", "cancelled"];
const CANCELLABLE: readonly TaskState[] = ["queued", "assigned", "running"];

/**
 * Checks `filter` for `call`: retry takes finished (failed, cancelled) tasks, cancel unfinished
 * ones. A tenant-scoped caller naming another tenant gets PERMISSION_DENIED: the filter field is
 * for admins, and naming one's own tenant is harmless.
 */
export function resolveFilter(filter: TaskFilter, call: "retry" | "cancel", scope: TenantScope): ResolvedFilter {
  const allowed = call === "retry" ? RETRYABLE : CANCELLABLE;
  const states = filter.states?.length ? filter.states : call === "retry" ? (["failed"] as const) : CANCELLABLE;
  for (const s of states) {
    if (!allowed.includes(s)) {
      throw invalid(`filter.states may hold only ${allowed.join(", ")} for ${call === "retry" ? "RetryTasks" : "CancelTasks"}, got ${s}`);
    }
  }
  if (call === "cancel" && (filter.finishedAfter || filter.finishedBefore)) {
    throw invalid("filter.finished_after_ms and filter.finished_before_ms do not apply to CancelTasks (it acts on unfinished tasks); use created_after_ms/created_before_ms");
  }
  if (call === "cancel" && !filter.type && !filter.tenant && !filter.states?.length && !filter.createdAfter && !filter.createdBefore) {
    throw invalid("filter must set at least one field (type, tenant, states, created_after_ms, created_before_ms): CancelTasks does not cancel every task by default");
  }
  if (scope !== null && filter.tenant && filter.tenant !== scope) {
    throw new TaskflowError(Code.PERMISSION_DENIED, `filter.tenant ${filter.tenant} is for admin tokens; a client token acts on its own tenant's tasks only`);
  }
  for (const [name, after, before] of [
    ["created", filter.createdAfter, filter.createdBefore],
    ["finished", filter.finishedAfter, filter.finishedBefore],
  ] as const) {
    if (after && before && after >= before) throw invalid(`filter.${name}_after_ms (${after}) must be before filter.${name}_before_ms (${before})`);
  }
  return {
    type: filter.type ?? "",
    tenant: scope ?? (filter.tenant || undefined),
    states,
    createdAfter: filter.createdAfter ?? 0,
    createdBefore: filter.createdBefore ?? 0,
    finishedAfter: filter.finishedAfter ?? 0,
    finishedBefore: filter.finishedBefore ?? 0,
  };
}

/** True when `rec` matches every field `f` sets. */
export function matches(rec: TaskRecord, f: ResolvedFilter): boolean {
  return (
    f.states.includes(rec.state) &&
    (!f.type || rec.type === f.type) &&
    (f.tenant === undefined || rec.tenant === f.tenant) &&
    (!f.createdAfter || rec.createdAt >= f.createdAfter) &&
    (!f.createdBefore || rec.createdAt < f.createdBefore) &&
    (!f.finishedAfter || rec.finishedAt >= f.finishedAfter) &&
    (!f.finishedBefore || rec.finishedAt < f.finishedBefore)
  );
}

/** `options.maxTasks` with its default; INVALID_ARGUMENT past {@link BULK_LIMIT}. */
export function maxTasksOf(options: BulkOptions): number {
  const max = options.maxTasks || BULK_DEFAULT_MAX;
  if (!Number.isInteger(max) || max < 0 || max > BULK_LIMIT) throw invalid(`max_tasks must be at most ${BULK_LIMIT}, got ${options.maxTasks}`);
  return max;
}

/** The IDs of a retry by ID, each once; INVALID_ARGUMENT for none, too many or an empty one. */
export function checkIds(ids: readonly string[]): string[] {
  if (ids.length === 0) throw invalid("task_ids or filter is required");
  if (ids.length > BULK_LIMIT) throw invalid(`task_ids may hold at most ${BULK_LIMIT} IDs, got ${ids.length}`);
  const unique = [...new Set(ids)];
  const empty = unique.indexOf("");
  if (empty >= 0) throw invalid(`task_ids[${ids.indexOf("")}] is empty`);
  for (const id of unique) if (id.length > 128) throw invalid(`task_ids holds an ID longer than 128 characters`);
  return unique;
}
