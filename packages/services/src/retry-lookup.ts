/**
 * What a dead-letter retry (ADR 0020) reads before it changes anything: the finished tasks it
 * names or a filter matches, and the outcomes of their dependencies. The PLM's retry decides
 * and acts on them (plm.ts).
 */
import { Code, TaskflowError, type TaskFilter, type TaskQuery, type TaskRecord, type TaskState, type TaskStore, type TenantScope } from "@taskflow/core";
import { matches, resolveFilter } from "./bulk-filter.js";
import { type Dependencies, type DependencyOutcome } from "./dependencies.js";

export function notRetryable(taskId: string, state: TaskState): TaskflowError {
  return new TaskflowError(Code.FAILED_PRECONDITION, `task ${taskId} is ${state}; only failed or cancelled tasks can be retried`);
}

/** The tasks to retry by ID (`get` reads one in the caller's scope): all must exist and be failed or cancelled. */
export async function finishedById(ids: readonly string[], get: (id: string) => Promise<TaskRecord>): Promise<TaskRecord[]> {
  const recs: TaskRecord[] = [];
  for (const id of ids) {
    const rec = await get(id);
    if (rec.state !== "failed" && rec.state !== "cancelled") throw notRetryable(id, rec.state);
    recs.push(rec);
  }
  return recs;
}

/** Up to `max` finished tasks matching `filter`, newest first, read from the store page by page. */
export async function finishedMatching(store: Pick<TaskStore, "list">, filter: TaskFilter, max: number, scope: TenantScope): Promise<TaskRecord[]> {
  const f = resolveFilter(filter, "retry", scope);
  const query: TaskQuery = { states: f.states, type: f.type, pageSize: 1000, ...(f.tenant !== undefined ? { tenant: f.tenant } : {}) };
  const found: TaskRecord[] = [];
  for (;;) {
    const page = await store.list(query);
    for (const rec of page.tasks) {
      // Newest first: past created_after_ms, every later page is older still.
      if (f.createdAfter && rec.createdAt < f.createdAfter) return found;
      if (matches(rec, f)) found.push(rec);
      if (found.length >= max) return found;
    }
    if (!page.nextPageToken) return found;
    query.pageToken = page.nextPageToken;
  }
}

/** The finished dependencies of retried dependents, per tenant; one purged since counts as cancelled. */
export async function retriedDependencies(
  graph: Pick<Dependencies, "lookUpForRetry">,
  graphed: readonly TaskRecord[],
  retried: ReadonlySet<string>,
): Promise<Map<string, DependencyOutcome>> {
  const known = new Map<string, DependencyOutcome>();
  const byTenant = new Map<string, TaskRecord[]>();
  for (const rec of graphed) {
    const list = byTenant.get(rec.tenant);
    if (list) list.push(rec);
    else byTenant.set(rec.tenant, [rec]);
  }
  for (const [tenant, recs] of byTenant) for (const [id, o] of await graph.lookUpForRetry(recs, tenant, retried)) known.set(id, o);
  return known;
}
