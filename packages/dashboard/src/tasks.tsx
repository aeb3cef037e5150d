import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { TaskListJson, TaskStateName, TaskSummaryJson } from "@taskflow/monitoring/api";
import { getJson } from "./api.js";
import { ago, shortId } from "./format.js";
import { useTaskChanges } from "./live.js";

const STATES: TaskStateName[] = ["queued", "assigned", "running", "succeeded", "failed", "cancelled"];
const PAGE_SIZES = [25, 50, 100];

interface Filters {
  state: string;
  type: string;
  pageSize: number;
}

/** Tasks newest first, filtered by state and type, paged; rows change state live. */
export function TaskList({ now }: { now: number }) {
  const [filters, setFilters] = useState<Filters>({ state: "", type: "", pageSize: 25 });
  // Tokens of the pages before the current one, and the current page's token.
  const [tokens, setTokens] = useState<string[]>([]);
  const [page, setPage] = useState<TaskListJson | undefined>();
  const [error, setError] = useState("");
  const refetchTimer = useRef<number | undefined>(undefined);
  const token = tokens[tokens.length - 1] ?? "";

  const load = useCallback(async () => {
    const q = new URLSearchParams({ pageSize: String(filters.pageSize) });
    if (filters.state) q.set("state", filters.state);
    if (filters.type) q.set("type", filters.type);
    if (token) q.set("pageToken", token);
    try {
      setPage(await getJson<TaskListJson>(`/api/tasks?${q}`));
      setError("");
    } catch (err) {
      setError((err as Error).message);
    }
  }, [filters, token]);

  useEffect(() => {
    void load();
  }, [load]);

  useTaskChanges(
    (batch) => {
      if (!page) return;
      const shown = new Map(page.tasks.map((t, i) => [t.id, i]));
      let tasks: TaskSummaryJson[] | undefined;
      let unseen = batch.omitted > 0;
      for (const t of batch.tasks) {
        const i = shown.get(t.id);
        if (i !== undefined) {
          tasks ??= page.tasks.slice();
          tasks[i] = t;
        } else {
          unseen = true;
        }
      }
      if (tasks) setPage({ ...page, tasks });
      // New tasks or ones that moved into the filter: fetch the first page again, at most twice a second.
      if (unseen && tokens.length === 0 && refetchTimer.current === undefined) {
        refetchTimer.current = window.setTimeout(() => {
          refetchTimer.current = undefined;
          void load();
        }, 500);
      }
    },
    [page, tokens, load],
  );
  useEffect(() => () => window.clearTimeout(refetchTimer.current), []);

  const setFilter = (patch: Partial<Filters>) => {
    setFilters((f) => ({ ...f, ...patch }));
    setTokens([]);
  };

  return (
    <section class="card">
      <h2>
        Tasks <small>{page ? `${page.total} matching` : ""}</small>
      </h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State{" "}
          <select data-testid="filter-state" value={filters.state} onChange={(e) => setFilter({ state: (e.target as HTMLSelectElement).value })}>
            <option value="">all</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type{" "}
          <input
            data-testid="filter-type"
            placeholder="any"
            value={filters.type}
            onChange={(e) => setFilter({ type: (e.target as HTMLInputElement).value.trim() })}
          />
        </label>
        <label>
          Per page{" "}
          <select value={String(filters.pageSize)} onChange={(e) => setFilter({ pageSize: Number((e.target as HTMLSelectElement).value) })}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="pager">
          <button type="button" disabled={tokens.length === 0} onClick={() => setTokens((t) => t.slice(0, -1))}>
            ← Newer
          </button>
          <span>page {tokens.length + 1}</span>
          <button type="button" data-testid="next-page" disabled={!page?.nextPageToken} onClick={() => page && setTokens((t) => [...t, page.nextPageToken])}>
            Older →
          </button>
        </span>
      </form>
      {error && <p class="error">{error}</p>}
      <table data-testid="tasks">
        <thead>
          <tr>
            <th>Task</th>
            <th>Type</th>
            <th>State</th>
            <th>Attempt</th>
            <th>Worker</th>
            <th>Priority</th>
            <th>Submitted</th>
          </tr>
        </thead>
        <tbody>
          {page && page.tasks.length === 0 && (
            <tr>
              <td colSpan={7} class="empty">
                No tasks match.
              </td>
            </tr>
          )}
          {page?.tasks.map((t) => (
            <tr key={t.id} data-task-id={t.id}>
              <td class="mono">
                <a href={`#/tasks/${t.id}`} title={t.id}>
                  {shortId(t.id)}
                </a>
              </td>
              <td>{t.type}</td>
              <td>
                <span class={`badge ${t.state}`} data-testid="task-state">
                  {t.state}
                </span>
              </td>
              <td>{t.attempt}</td>
              <td class="mono">{t.workerId || "–"}</td>
              <td>{t.priority}</td>
              <td>{ago(t.createdAt, now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
