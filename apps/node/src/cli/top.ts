/**
 * `taskflow top`: a live terminal view of workers, queue and rates. `renderTop` is a pure
 * function of two samples (rates come from their difference); `runTop` polls
 * `GetClusterState` and redraws until `q` or Ctrl-C.
 */
import type { GetClusterStateResponse } from "@taskflow/proto";
import { timestampMs, workerStateName } from "@taskflow/proto";

export interface TopWorker {
  id: string;
  state: string;
  running: number;
  slots: number;
  host: string;
  pid: number;
  /** Epoch ms; 0 = never. */
  lastHeartbeat: number;
  labels: Record<string, string>;
}

/** One poll of the cluster. */
export interface TopSample {
  /** Epoch ms when it was taken. */
  time: number;
  policy: string;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** The first page of workers (GetClusterState's default page). */
  workers: TopWorker[];
  /** Counts over every worker, from a node that pages its workers (ADR 0031); else the page is all. */
  summary?: { total: number; byState: [string, number][]; slots: number; running: number };
}

export interface TopView {
  address: string;
  /** Terminal columns and rows. */
  width: number;
  height: number;
}

export function sampleOf(state: GetClusterStateResponse, time: number): TopSample {
  return {
    time,
    policy: state.policy,
    queued: Number(state.queued),
    running: Number(state.running),
    succeeded: Number(state.succeeded),
    failed: Number(state.failed),
    cancelled: Number(state.cancelled),
    workers: state.workers.map((w) => ({
      id: w.workerId,
      state: workerStateName(w.state),
      running: w.running,
      slots: w.slots,
      host: w.host,
      pid: w.pid,
      lastHeartbeat: w.lastHeartbeat ? timestampMs(w.lastHeartbeat) : 0,
      labels: { ...w.labels },
    })),
    ...(state.workerSummary && {
      summary: {
        total: state.workerSummary.total,
        byState: (
          [
            ["alive", state.workerSummary.alive],
            ["suspect", state.workerSummary.suspect],
            ["draining", state.workerSummary.draining],
            ["reconnecting", state.workerSummary.disconnected],
          ] as [string, number][]
        ).filter(([, n]) => n > 0),
        slots: Number(state.workerSummary.slots),
        running: Number(state.workerSummary.running),
      },
    }),
  };
}

/** Per-second rate of a counter between two samples (0 without a previous one; never negative, as purges shrink totals). */
function rate(cur: number, prev: number | undefined, seconds: number): number {
  if (prev === undefined || seconds <= 0) return 0;
  return Math.max(0, (cur - prev) / seconds);
}

function bar(used: number, total: number, width: number): string {
  const filled = total > 0 ? Math.min(width, Math.round((used / total) * width)) : 0;
  return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
}

function num(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function clip(line: string, width: number): string {
  return line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line;
}

/** The screen as text: a header, queue and rates, then one row per worker (as many as fit). */
export function renderTop(cur: TopSample, prev: TopSample | undefined, view: TopView): string {
  const seconds = prev ? (cur.time - prev.time) / 1000 : 0;
  const done = rate(cur.succeeded, prev?.succeeded, seconds);
  const failed = rate(cur.failed, prev?.failed, seconds);
  const cancelled = rate(cur.cancelled, prev?.cancelled, seconds);
  const live = cur.workers.filter((w) => w.state !== "dead");
  const byState = new Map<string, number>(cur.summary?.byState);
  if (!cur.summary) for (const w of cur.workers) byState.set(w.state, (byState.get(w.state) ?? 0) + 1);
  const slots = cur.summary?.slots ?? live.reduce((n, w) => n + w.slots, 0);
  const held = cur.summary?.running ?? live.reduce((n, w) => n + w.running, 0);
  const total = cur.summary?.total ?? cur.workers.length;
  const clockText = new Date(cur.time).toISOString().slice(11, 19);
  const lines = [
    `taskflow top — ${view.address}   policy ${cur.policy}   ${clockText} UTC   (q to quit)`,
    "",
    `queue    queued ${num(cur.queued)}   running ${num(cur.running)}`,
    `rates    succeeded ${num(done)}/s   failed ${num(failed)}/s   cancelled ${num(cancelled)}/s${prev ? "" : "   (rates after the next refresh)"}`,
    `totals   succeeded ${num(cur.succeeded)}   failed ${num(cur.failed)}   cancelled ${num(cur.cancelled)}`,
    `workers  ${total} (${[...byState].map(([s, n]) => `${n} ${s}`).join(", ") || "none"})   load ${bar(held, slots, 20)} ${held}/${slots} slots`,
    "",
  ];
  const idWidth = Math.max(6, ...cur.workers.map((w) => w.id.length));
  lines.push(`${"WORKER".padEnd(idWidth)}  ${"STATE".padEnd(8)}  ${"LOAD".padEnd(22)}  ${"HEARTBEAT".padEnd(9)}  HOST/PID  LABELS`);
  const room = Math.max(1, view.height - lines.length - 1);
  const sorted = [...cur.workers].sort((a, b) => a.id.localeCompare(b.id));
  const shown = total > room ? sorted.slice(0, room - 1) : sorted;
  for (const w of shown) {
    const beat = w.lastHeartbeat ? `${Math.max(0, (cur.time - w.lastHeartbeat) / 1000).toFixed(1)}s` : "-";
    const load = `${bar(w.running, w.slots, 10)} ${w.running}/${w.slots}`;
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(",");
    lines.push(`${w.id.padEnd(idWidth)}  ${w.state.padEnd(8)}  ${load.padEnd(22)}  ${beat.padEnd(9)}  ${w.host}/${w.pid}  ${labels}`);
  }
  if (shown.length < total) lines.push(`… ${total - shown.length} more worker(s)`);
  if (sorted.length === 0) lines.push("(no workers connected)");
  return lines.map((l) => clip(l, view.width)).join("\n");
}

export interface TopIo {
  poll(): Promise<GetClusterStateResponse>;
  address: string;
  intervalMs: number;
  output: NodeJS.WriteStream;
  input: NodeJS.ReadStream;
}

/** Redraws every `intervalMs` until `q`, Ctrl-C or SIGINT; restores the terminal. */
export async function runTop(io: TopIo): Promise<void> {
  const { output, input } = io;
  let prev: TopSample | undefined;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onKey = (data: Buffer) => {
    const key = data.toString();
    if (key === "q" || key === "Q" || key === "\u0003") stop();
  };
  const tty = input.isTTY === true;
  if (tty) {
    input.setRawMode(true);
    input.resume();
    input.on("data", onKey);
  }
  process.once("SIGINT", stop);
  output.write("\x1b[?1049h\x1b[?25l");
  try {
    while (true) {
      let text: string;
      try {
        const cur = sampleOf(await io.poll(), Date.now());
        text = renderTop(cur, prev, { address: io.address, width: output.columns || 120, height: output.rows || 40 });
        prev = cur;
      } catch (err) {
        text = `taskflow top — ${io.address}\n\ncannot reach the control node: ${err instanceof Error ? err.message : String(err)}\nretrying…`;
      }
      output.write(`\x1b[H\x1b[2J${text}\n`);
      const tick = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), io.intervalMs).unref());
      if (await Promise.race([tick, stopped.then(() => true)])) break;
    }
  } finally {
    output.write("\x1b[?25h\x1b[?1049l");
    process.off("SIGINT", stop);
    if (tty) {
      input.off("data", onKey);
      input.setRawMode(false);
      input.pause();
    }
  }
}
