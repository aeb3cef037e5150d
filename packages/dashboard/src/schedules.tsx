import { useEffect, useState } from "preact/hooks";
import type { ScheduleJson, ScheduleListJson } from "@taskflow/monitoring/api";
import { getJson } from "./api.js";
import { ago, shortId } from "./format.js";

/** How often the schedule list is fetched again: firings are seconds apart at the finest. */
const REFRESH_MS = 2000;

function timing(s: ScheduleJson): string {
  if (s.cron) return `${s.cron} (${s.timezone})`;
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["min", 60_000], ["s", 1000]] as const) {
    if (s.intervalMs % size === 0) return `every ${s.intervalMs / size} ${unit}`;
  }
  return `every ${s.intervalMs} ms`;
}

function untilText(time: number, now: number): string {
  if (!time) return "–";
  const s = Math.max(0, Math.round((time - now) / 1000));
  const rel = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86_400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86_400)} d`;
  return `${new Date(time).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")} (in ${rel})`;
}

/** Recurring schedules with their timing and next firing time; hidden while there are none. */
export function SchedulesTable({ now }: { now: number }) {
  const [schedules, setSchedules] = useState<ScheduleJson[] | undefined>(undefined);
  const [error, setError] = useState("");
  useEffect(() => {
    let stopped = false;
    const load = () =>
      getJson<ScheduleListJson>("/api/schedules").then(
        (body) => !stopped && (setSchedules(body.schedules), setError("")),
        (err: Error) => !stopped && setError(err.message),
      );
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  if (!schedules?.length && !error) return null;
  return (
    <section class="card">
      <h2>
        Schedules <small>{schedules?.length ?? 0}</small>
      </h2>
      {error && <p class="error">{error}</p>}
      <table data-testid="schedules">
        <thead>
          <tr>
            <th>Schedule</th>
            <th>Tenant</th>
            <th>Task type</th>
            <th>Timing</th>
            <th>Missed</th>
            <th>State</th>
            <th>Next firing</th>
            <th>Last firing</th>
          </tr>
        </thead>
        <tbody>
          {(schedules ?? []).map((s) => (
            <tr key={`${s.tenant}/${s.id}`} data-schedule-id={s.id}>
              <td class="mono">{s.id}</td>
              <td>{s.tenant}</td>
              <td>{s.type}</td>
              <td class="mono">{timing(s)}</td>
              <td>{s.missed}</td>
              <td>
                <span class={`badge ${s.paused ? "draining" : s.lastError ? "failed" : "alive"}`} title={s.lastError}>
                  {s.paused ? "paused" : s.lastError ? "refused" : "active"}
                </span>
              </td>
              <td data-testid="next-firing">{s.paused ? "paused" : untilText(s.nextFireAt, now)}</td>
              <td>
                {s.lastFireAt ? (
                  <>
                    {ago(s.lastFireAt, now)} → <a href={`#/tasks/${encodeURIComponent(s.lastTaskId)}`}>{shortId(s.lastTaskId)}</a>
                  </>
                ) : (
                  "–"
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
