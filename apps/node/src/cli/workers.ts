/**
 * `taskflow workers`: the summary of every worker, then a page of them (ADR 0031). At 10,000
 * workers a full list is long to fetch and longer to read; the summary answers "how many, in
 * what state, how loaded", and `--all` or `--limit` list more, page by page from the node.
 */
import { type Command, InvalidArgumentError } from "commander";
import type { TaskflowClient } from "@taskflow/client";
import type { GetClusterStateResponse, WorkerInfo } from "@taskflow/proto";
import { table } from "./output.js";

/** Workers listed when neither --limit nor --all is given. */
export const DEFAULT_WORKERS_LISTED = 100;
/** Workers asked for per call: the control node's largest page (MAX_WORKER_PAGE). */
const PAGE = 5000;

/** What the workers command uses of bin.ts. */
export interface WorkersCommandDeps {
  /** A connected client; async because the client (gRPC, protobuf) is loaded when a command runs. */
  client(): Promise<TaskflowClient>;
  print(value: unknown, json: boolean, text: () => string): void;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("--limit is a whole number of workers, 0 or more (0: the summary alone).");
  return n;
}

/** Reads the summary and up to `limit` workers (Infinity: all), following the node's page tokens. */
export async function fetchWorkers(c: TaskflowClient, limit: number): Promise<{ state: GetClusterStateResponse; workers: WorkerInfo[]; more: boolean }> {
  const workers: WorkerInfo[] = [];
  let state = await c.clusterState(limit === 0 ? { summaryOnly: true } : { pageSize: Math.min(PAGE, limit) });
  workers.push(...state.workers);
  while (state.nextPageToken && workers.length < limit) {
    state = await c.clusterState({ pageSize: Math.min(PAGE, limit - workers.length), pageToken: state.nextPageToken });
    workers.push(...state.workers);
  }
  const total = state.workerSummary?.total ?? workers.length;
  // A node older than paging sends every worker and no summary: cut the list here.
  return { state, workers: workers.slice(0, limit), more: workers.length > limit || total > Math.min(workers.length, limit) };
}

export function addWorkersCommand(program: Command, deps: WorkersCommandDeps): void {
  program
    .command("workers")
    .description("summarise every worker (state, load), list the first ones with their task types, and the queue")
    .option("--json", "print JSON")
    .option("--limit <n>", `list at most this many workers, in the order they joined (0: the summary alone)`, parseLimit, DEFAULT_WORKERS_LISTED)
    .option("--all", "list every worker (the node sends them in pages of 5000)")
    .addHelpText(
      "after",
      `
The summary line counts every worker whatever is listed. The list is in the order workers
joined; a worker that joins while the command pages comes at the end, none twice.

Examples:
  $ taskflow workers                 # summary and the first ${DEFAULT_WORKERS_LISTED}
  $ taskflow workers --limit 0       # summary only
  $ taskflow workers --all --json    # every worker, as JSON`,
    )
    .action(async (opts: { json?: boolean; limit: number; all?: boolean }) => {
      const [c, { workerJson }] = await Promise.all([deps.client(), import("./task-view.js")]);
      try {
        const { state, workers: listed, more } = await fetchWorkers(c, opts.all ? Infinity : opts.limit);
        const workers = listed.map(workerJson);
        const s = state.workerSummary;
        const summary = {
          policy: state.policy,
          queued: Number(state.queued),
          running: Number(state.running),
          succeeded: Number(state.succeeded),
          failed: Number(state.failed),
          cancelled: Number(state.cancelled),
          store: { kind: state.store?.kind ?? "", writable: state.store?.writable ?? true, error: state.store?.error ?? "" },
          workerSummary: {
            total: s?.total ?? workers.length,
            alive: s?.alive ?? 0,
            suspect: s?.suspect ?? 0,
            draining: s?.draining ?? 0,
            disconnected: s?.disconnected ?? 0,
            slots: Number(s?.slots ?? 0),
            running: Number(s?.running ?? 0),
            free: s?.free ?? 0,
          },
        };
        deps.print({ ...summary, workers, listed: workers.length, more }, Boolean(opts.json), () => {
          const w = summary.workerSummary;
          const rows = [["WORKER", "STATE", "LOAD", "HOST", "TYPES"]];
          for (const x of workers) rows.push([String(x["workerId"]), String(x["state"]), `${x["running"]}/${x["slots"]}`, String(x["host"]), (x["taskTypes"] as string[]).join(",")]);
          const lines = workers.length ? [table(rows)] : [];
          const tail = more ? `; more: --limit <n> or --all` : "";
          lines.push(`${workers.length} of ${w.total} worker(s) listed${tail}`);
          lines.push(
            `workers ${w.total}: ${w.alive} alive, ${w.suspect} suspect, ${w.draining} draining, ${w.disconnected} reconnecting; ` +
              `load ${w.running}/${w.slots} slots, ${w.free} with a free slot`,
          );
          lines.push(`policy ${summary.policy}; queued ${summary.queued}, running ${summary.running}, succeeded ${summary.succeeded}, failed ${summary.failed}, cancelled ${summary.cancelled}`);
          if (!summary.store.writable) {
            lines.push(`STORE CANNOT WRITE (${summary.store.kind}): ${summary.store.error}; results are held back and nothing new is assigned until it can`);
          }
          return lines.join("\n");
        });
      } finally {
        c.close();
      }
    });
}
