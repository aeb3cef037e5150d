/** The Taskflow dashboard: overview (workers, charts, tasks) and a page per task, live. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { LineChart } from "./chart.js";
import { useLiveCluster, useNow } from "./live.js";
import { TaskList } from "./tasks.js";
import { TaskPage } from "./task-page.js";
import { SchedulesTable } from "./schedules.js";
import { WorkersTable } from "./workers.js";

function useRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return hash.replace(/^#/, "") || "/";
}

function App() {
  const live = useLiveCluster();
  const now = useNow();
  const route = useRoute();
  const taskId = /^\/tasks\/(.+)$/.exec(route)?.[1];
  const c = live.cluster;
  const history = c?.history ?? [];
  const times = history.map((s) => s.time);
  return (
    <>
      <header>
        <h1>
          <a href="#/">Taskflow</a>
        </h1>
        {c && (
          <ul class="counts" data-testid="counts">
            <li>
              policy <b>{c.policy}</b>
            </li>
            <li>
              queued <b data-testid="count-queued">{c.counts.queued}</b>
              {c.queue.parked > 0 && <small> ({c.queue.parked} parked)</small>}
              {c.queue.delayed > 0 && <small data-testid="count-delayed"> ({c.queue.delayed} delayed)</small>}
            </li>
            <li>
              running <b>{c.counts.running + c.counts.assigned}</b>
            </li>
            <li>
              succeeded <b data-testid="count-succeeded">{c.counts.succeeded}</b>
            </li>
            <li>
              failed <b>{c.counts.failed}</b>
            </li>
            <li>
              cancelled <b>{c.counts.cancelled}</b>
            </li>
          </ul>
        )}
        <span class={`conn ${live.connected ? "on" : "off"}`} data-testid="connection">
          {live.connected ? "live" : "reconnecting…"}
        </span>
      </header>
      <main>
        {live.error && <p class="error">{live.error}</p>}
        {taskId ? (
          <TaskPage id={decodeURIComponent(taskId)} />
        ) : (
          <>
            {c && <WorkersTable workers={c.workers} counts={c.workerCounts} now={now} />}
            <SchedulesTable now={now} />
            <section class="charts">
              <LineChart
                title="Queue depth"
                times={times}
                series={[
                  { name: "queued", color: "#d97706", values: history.map((s) => s.queued) },
                  { name: "running", color: "#2563eb", values: history.map((s) => s.running) },
                ]}
              />
              <LineChart
                title="Throughput per second"
                times={times}
                series={[
                  { name: "submitted", color: "#6b7280", values: history.map((s) => s.submittedPerSec) },
                  { name: "succeeded", color: "#16a34a", values: history.map((s) => s.succeededPerSec) },
                  { name: "failed", color: "#dc2626", values: history.map((s) => s.failedPerSec) },
                ]}
              />
            </section>
            <TaskList now={now} />
          </>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
