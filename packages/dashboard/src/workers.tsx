import { useState } from "preact/hooks";
import type { WorkerCountsJson, WorkerJson } from "@taskflow/monitoring/api";
import { postJson } from "./api.js";
import { ago, labelsText } from "./format.js";

/** Workers with state, load, slots, labels and last heartbeat; drain takes a second click to confirm. */
export function WorkersTable({ workers, counts, now }: { workers: WorkerJson[]; counts: WorkerCountsJson; now: number }) {
  const sorted = [...workers].sort((a, b) => a.id.localeCompare(b.id));
  // Past dashboard.maxWorkersListed the table lists the first to join; the line counts them all.
  const partial = counts.total > workers.length;
  return (
    <section class="card">
      <h2>
        Workers <small>{partial ? `${workers.length} of ${counts.total}` : workers.length}</small>
      </h2>
      {partial && (
        <p class="muted" data-testid="worker-counts">
          {counts.alive} alive, {counts.suspect} suspect, {counts.draining} draining, {counts.disconnected} reconnecting; load {counts.running}/{counts.slots}. The
          table lists the first {workers.length} to join (dashboard.maxWorkersListed); <code>taskflow workers --all</code> lists every one.
        </p>
      )}
      <table data-testid="workers">
        <thead>
          <tr>
            <th>Worker</th>
            <th>State</th>
            <th>Load</th>
            <th>Labels</th>
            <th>Task types</th>
            <th>Host / PID</th>
            <th>Last heartbeat</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sorted.length === 0 && (
            <tr>
              <td colSpan={8} class="empty">
                No workers connected.
              </td>
            </tr>
          )}
          {sorted.map((w) => (
            <WorkerRow key={w.id} worker={w} now={now} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function WorkerRow({ worker: w, now }: { worker: WorkerJson; now: number }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState("");
  const load = w.slots ? Math.min(1, w.running / w.slots) : 0;
  const drain = async () => {
    if (!confirming) {
      setConfirming(true);
      return;
    }
    setConfirming(false);
    try {
      await postJson(`/api/workers/${encodeURIComponent(w.id)}/drain`);
      setError("");
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <tr data-worker-id={w.id}>
      <td class="mono">{w.id}</td>
      <td>
        <span class={`badge ${w.state}`} data-testid="worker-state">
          {w.state}
        </span>
      </td>
      <td>
        <div class="load" title={`${w.running} running or held of ${w.slots} slots`}>
          <div class="bar" style={{ width: `${Math.round(load * 100)}%` }} />
          <span>
            {w.running}/{w.slots}
          </span>
        </div>
      </td>
      <td>{labelsText(w.labels)}</td>
      <td class="types">{w.taskTypes.join(", ")}</td>
      <td class="mono">
        {w.host} / {w.pid}
      </td>
      <td>{ago(w.lastHeartbeat, now)}</td>
      <td>
        {w.state !== "draining" && (
          <button class={confirming ? "danger" : ""} onClick={() => void drain()} onBlur={() => setConfirming(false)}>
            {confirming ? "Confirm drain" : "Drain"}
          </button>
        )}
        {error && <span class="error">{error}</span>}
      </td>
    </tr>
  );
}
