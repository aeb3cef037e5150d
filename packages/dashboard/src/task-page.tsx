import { useCallback, useEffect, useState } from "preact/hooks";
import type { GraphLinkJson, TaskDetailJson } from "@taskflow/monitoring/api";
import { getJson, postJson } from "./api.js";
import { between, bytes, clock, FINAL_STATES, labelsText } from "./format.js";
import { useTaskChanges } from "./live.js";

/** One task: state, attempts, epochs, worker, timings, payload, result or error, why it waits. */
export function TaskPage({ id }: { id: string }) {
  const [task, setTask] = useState<TaskDetailJson | undefined>();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setTask(await getJson<TaskDetailJson>(`/api/tasks/${encodeURIComponent(id)}`));
      setError("");
    } catch (err) {
      setError((err as Error).message);
    }
  }, [id]);

  useEffect(() => {
    void load();
  }, [load]);
  useTaskChanges(
    (batch) => {
      if (batch.tasks.some((t) => t.id === id)) void load();
    },
    [id, load],
  );
  // The waiting reason changes with the queue, not with this task's events: refresh while it waits.
  const final = task ? FINAL_STATES.has(task.state) : false;
  useEffect(() => {
    if (final) return;
    const timer = setInterval(() => void load(), 2000);
    return () => clearInterval(timer);
  }, [final, load]);

  const cancel = async () => {
    setBusy(true);
    try {
      setTask(await postJson<TaskDetailJson>(`/api/tasks/${encodeURIComponent(id)}/cancel`, { reason: "cancelled from the dashboard" }));
      setError("");
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card task-page">
      <p>
        <a href="#/">← Overview</a>
      </p>
      <h2 class="mono">Task {id}</h2>
      {error && <p class="error">{error}</p>}
      {task && (
        <>
          <div class="task-head">
            <span class={`badge big ${task.state}`} data-testid="task-page-state">
              {task.state}
            </span>
            {!final && (
              <button class="danger" data-testid="cancel-task" disabled={busy} onClick={() => void cancel()}>
                Cancel task
              </button>
            )}
          </div>
          {task.waitingReason && (
            <p class="waiting" data-testid="waiting-reason">
              <strong>Why it waits:</strong> {task.waitingReason}
            </p>
          )}
          <dl class="facts">
            <dt>Type</dt>
            <dd>{task.type}</dd>
            <dt>Attempt</dt>
            <dd>
              {task.attempt} of {task.maxAttempts || "default"}
            </dd>
            <dt>Epoch</dt>
            <dd>{task.epoch}</dd>
            <dt>Worker</dt>
            <dd class="mono">{task.workerId || "–"}</dd>
            <dt>Priority</dt>
            <dd>{task.priority}</dd>
            <dt>Required labels</dt>
            <dd>{labelsText(task.requiredLabels)}</dd>
            <dt>Timeout</dt>
            <dd>{task.timeoutMs ? `${task.timeoutMs} ms` : "default"}</dd>
            <dt>Client</dt>
            <dd class="mono">{task.clientId || "–"}</dd>
            <dt>Submitted</dt>
            <dd>{clock(task.createdAt)}</dd>
            <dt>Assigned</dt>
            <dd>
              {clock(task.assignedAt)} <small>(waited {between(task.createdAt, task.assignedAt)})</small>
            </dd>
            <dt>Started</dt>
            <dd>{clock(task.startedAt)}</dd>
            <dt>Finished</dt>
            <dd>
              {clock(task.finishedAt)} <small>(total {between(task.createdAt, task.finishedAt)})</small>
            </dd>
            {task.notBefore > 0 && (
              <>
                <dt>{task.attempt === 0 ? "Delayed until" : "Retry not before"}</dt>
                <dd>{clock(task.notBefore)}</dd>
              </>
            )}
            <dt>Payload</dt>
            <dd>{bytes(task.payloadBytes)}</dd>
          </dl>
          {task.payload && (
            <>
              <h3>Payload</h3>
              <pre>{task.payload}</pre>
            </>
          )}
          {task.state === "succeeded" && (
            <>
              <h3>Result <small>{bytes(task.resultBytes)}</small></h3>
              <pre data-testid="task-result">{task.result || "(empty)"}</pre>
            </>
          )}
          {task.error && (
            <>
              <h3>{final ? "Error" : "Last error"}</h3>
              <pre class="error" data-testid="task-error">
                {task.error}
              </pre>
            </>
          )}
          <h3>Attempts</h3>
          <table data-testid="attempts">
            <thead>
              <tr>
                <th>#</th>
                <th>Epoch</th>
                <th>Worker</th>
                <th>Started</th>
                <th>Finished</th>
                <th>Ran</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {task.attempts.length === 0 && (
                <tr>
                  <td colSpan={7} class="empty">
                    Not assigned yet.
                  </td>
                </tr>
              )}
              {task.attempts.map((a) => (
                <tr key={a.epoch}>
                  <td>{a.attempt}</td>
                  <td>{a.epoch}</td>
                  <td class="mono">{a.workerId}</td>
                  <td>{clock(a.startedAt)}</td>
                  <td>{clock(a.finishedAt)}</td>
                  <td>{between(a.startedAt, a.finishedAt)}</td>
                  <td class="error">{a.error}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {task.dependsOnCount > 0 && (
            <GraphLinks
              title={`Depends on (${task.dependsOnCount}; on a failure: ${task.onDependencyFailure === "run" ? "runs anyway" : "cancelled"})`}
              links={task.dependsOn}
              total={task.dependsOnCount}
              testId="depends-on"
            />
          )}
          {task.dependentCount > 0 && <GraphLinks title={`Dependents waiting (${task.dependentCount})`} links={task.dependents} total={task.dependentCount} testId="dependents" />}
        </>
      )}
    </section>
  );
}

/** A task graph's neighbours of the task: each links to its own page, with its state. */
function GraphLinks({ title, links, total, testId }: { title: string; links: GraphLinkJson[]; total: number; testId: string }) {
  return (
    <>
      <h3>{title}</h3>
      <ul class="graph-links" data-testid={testId}>
        {links.map((l) => (
          <li key={l.id}>
            <a class="mono" href={`#/tasks/${l.id}`}>
              {l.id}
            </a>{" "}
            <span class={`badge ${l.state}`}>{l.state}</span>
          </li>
        ))}
        {total > links.length && <li>… and {total - links.length} more</li>}
      </ul>
    </>
  );
}
