/**
 * The dashboard's HTTP server on the control node: the built static files, a JSON API over the
 * PLM and the Register, and a server-sent event stream fed by the EventBus.
 *
 * Task events are coalesced (latest state per task, flushed a few times a second, at most
 * `MAX_TASKS_PER_FLUSH` per flush) so an open dashboard costs little at high throughput; the
 * bus listener exists only while a browser is connected.
 */
import { readFileSync, existsSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { ALL_TENANTS, Code, TASK_STATES, TaskflowError, type ClusterEvent, type EventBus, type Logger, type TaskRecord, type TaskState } from "@taskflow/core";
import type { ClusterJson, ErrorJson, TaskDetailJson, SampleJson, ScheduleListJson, StatsEventJson, TaskCountsJson, TaskListJson, TasksEventJson, WorkerCountsJson, WorkerJson } from "./api.js";
import type { ControlView } from "./control-view.js";
import { listenHttp, type HttpListener, type HttpSecurity } from "./http.js";
import { GRAPH_LISTED, scheduleJson, taskDetailJson, taskSummaryJson, workerJson } from "./json.js";
import { TaskTally } from "./task-tally.js";

export interface DashboardOptions {
  host: string;
  /** 0 picks a free one. */
  port: number;
  /** Minutes of one-second samples the charts keep. */
  historyMinutes: number;
  /** Most workers listed (the first to join), `dashboard.maxWorkersListed`; all are counted. @defaultValue 200 */
  maxWorkersListed?: number;
  /** Folder of the built dashboard (index.html, app.js, style.css); undefined = API only. */
  staticDir: string | undefined;
  logger: Logger;
  /** Host names requests may name besides `host`, `localhost` and IP addresses; others get 421. @defaultValue [] */
  allowedHosts?: readonly string[];
  /** Counts shared with the metrics, when they are on; else the dashboard keeps its own. */
  tally?: TaskTally;
  /** HTTPS and tokens (beyond loopback: viewer to read, admin to act). @defaultValue plain HTTP, no tokens */
  security?: HttpSecurity;
}

const MAX_TASKS_PER_FLUSH = 200;
const FLUSH_MS = 250;
const SAMPLE_MS = 1000;

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml",
};

/** HTTP status for a TaskflowError code. */
function httpStatus(code: Code): number {
  switch (code) {
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return 400;
    case Code.NOT_FOUND:
      return 404;
    case Code.FAILED_PRECONDITION:
    case Code.ALREADY_EXISTS:
    case Code.ABORTED:
      return 409;
    case Code.PERMISSION_DENIED:
      return 403;
    case Code.RESOURCE_EXHAUSTED:
      return 429;
    case Code.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

export class DashboardServer {
  private http: HttpListener | undefined;
  private readonly files = new Map<string, { body: Buffer; type: string }>();
  private readonly clients = new Set<ServerResponse>();
  private readonly history: SampleJson[] = [];
  private readonly tally: TaskTally;
  private readonly ownTally: boolean;
  private last = { submitted: 0, succeeded: 0, failed: 0, time: Date.now() };
  private sampler: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private changed = new Map<string, TaskRecord>();
  private omitted = 0;

  constructor(
    private readonly view: ControlView,
    private readonly bus: EventBus,
    private readonly options: DashboardOptions,
  ) {
    this.ownTally = !options.tally;
    this.tally = options.tally ?? new TaskTally(bus);
    if (options.staticDir && existsSync(path.join(options.staticDir, "index.html"))) {
      for (const name of ["index.html", "app.js", "app.js.map", "style.css"]) {
        const file = path.join(options.staticDir, name);
        if (existsSync(file)) this.files.set(`/${name}`, { body: readFileSync(file), type: CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream" });
      }
    } else {
      options.logger.warn({ staticDir: options.staticDir }, "dashboard files not found (run npm run build); serving the API only");
    }
  }

  get port(): number {
    return this.http?.port ?? 0;
  }

  get url(): string {
    return this.http?.url ?? "";
  }

  async start(): Promise<void> {
    this.http = await listenHttp(this.options.host, this.options.port, "dashboard", (req, res) => void this.handle(req, res), {
      ...this.options.security,
      ...(this.options.allowedHosts && { allowedHosts: this.options.allowedHosts }),
    });
    this.last = { submitted: this.tally.submitted, succeeded: this.tally.succeeded, failed: this.tally.failed, time: Date.now() };
    this.sampler = setInterval(() => void this.sample(), SAMPLE_MS);
    this.sampler.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
    clearTimeout(this.flushTimer);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const res of this.clients) res.end();
    this.clients.clear();
    if (this.ownTally) this.tally.close();
    await this.http?.close();
  }

  // ---- requests ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = url.pathname;
    try {
      if (route.startsWith("/api/")) {
        await this.api(req, res, url);
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") return this.json(res, 405, { error: "method not allowed", code: "INVALID_ARGUMENT" } satisfies ErrorJson);
      const file = this.files.get(route) ?? this.files.get("/index.html");
      if (!file) {
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("the dashboard is not built: run npm run build\n");
        return;
      }
      res.writeHead(200, { "content-type": file.type, "cache-control": "no-cache", "x-content-type-options": "nosniff" });
      res.end(req.method === "HEAD" ? undefined : file.body);
    } catch (err) {
      const e = TaskflowError.from(err);
      if (httpStatus(e.code) >= 500) this.options.logger.error({ err: e }, "dashboard request failed");
      if (!res.headersSent) this.json(res, httpStatus(e.code), { error: e.message, code: Code[e.code] } satisfies ErrorJson);
      else res.end();
    }
  }

  private async api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent); // ["api", ...]
    const method = req.method ?? "GET";
    if (method === "POST") checkPost(req);
    const [, resource, id, action] = parts;
    if (method === "GET" && resource === "state" && !id) return this.json(res, 200, await this.clusterJson());
    if (method === "GET" && resource === "events" && !id) return this.openStream(req, res);
    if (method === "GET" && resource === "tasks" && !id) return this.json(res, 200, await this.listJson(url.searchParams));
    if (method === "GET" && resource === "tasks" && id && !action) return this.json(res, 200, await this.taskJson(id));
    if (method === "POST" && resource === "tasks" && id && action === "cancel") {
      const body = await readJson(req);
      const reason = typeof body["reason"] === "string" && body["reason"] ? body["reason"] : "cancelled from the dashboard";
      return this.json(res, 200, taskDetailJson(await this.view.plm.cancel(id, reason, ALL_TENANTS)));
    }
    if (method === "GET" && resource === "schedules" && !id) return this.json(res, 200, { schedules: this.view.schedules().map(scheduleJson) } satisfies ScheduleListJson);
    if (method === "POST" && resource === "workers" && id && action === "drain") return this.json(res, 200, workerJson(this.view.register.drain(id)));
    throw new TaskflowError(Code.NOT_FOUND, `no API route ${method} ${url.pathname}`);
  }

  /** A bounded list and the counts of all: at 10,000 workers a full list every second would be megabytes. */
  private workersJson(): { workers: WorkerJson[]; workerCounts: WorkerCountsJson } {
    const listed = this.options.maxWorkersListed ?? 200;
    const s = this.view.workerSummary();
    return {
      workers: this.view.firstWorkers(listed).map(workerJson),
      workerCounts: { total: s.total, alive: s.alive, suspect: s.suspect, draining: s.draining, disconnected: s.disconnected, slots: s.slots, running: s.running, listed },
    };
  }

  private async clusterJson(): Promise<ClusterJson> {
    const q = this.view.queue();
    return {
      policy: this.view.policyName,
      counts: (await this.view.plm.counts()) as TaskCountsJson,
      queue: { inHeap: q.inHeap, parked: q.parked, delayed: q.delayed },
      ...this.workersJson(),
      history: this.history,
      now: Date.now(),
    };
  }

  /** One task for its page, with the states of its first dependencies and dependents. */
  private async taskJson(id: string): Promise<TaskDetailJson> {
    const { plm } = this.view;
    const task = await plm.get(id, ALL_TENANTS);
    const graph = plm.graphOf(id);
    const ids = [...(task.dependsOn ?? []).slice(0, GRAPH_LISTED), ...graph.dependents.slice(0, GRAPH_LISTED)];
    const states = new Map<string, string>();
    await Promise.all(ids.map((dep) => plm.get(dep, ALL_TENANTS).then((t) => states.set(dep, t.state), () => states.set(dep, "unknown"))));
    return taskDetailJson(task, graph, states);
  }

  private async listJson(params: URLSearchParams): Promise<TaskListJson> {
    const states: TaskState[] = [];
    for (const s of (params.get("state") ?? "").split(",").filter(Boolean)) {
      if (!(TASK_STATES as readonly string[]).includes(s)) throw new TaskflowError(Code.INVALID_ARGUMENT, `state ${s} is not one of ${TASK_STATES.join(", ")}`);
      states.push(s as TaskState);
    }
    const pageSize = Number(params.get("pageSize") ?? 50);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw new TaskflowError(Code.INVALID_ARGUMENT, "pageSize must be a whole number from 1 to 1000");
    const page = await this.view.plm.list({
      states,
      type: params.get("type") ?? "",
      clientId: params.get("client") ?? "",
      tenant: params.get("tenant") ?? "",
      pageSize,
      pageToken: params.get("pageToken") ?? "",
      // Viewers and admins operate the whole cluster: the dashboard shows every tenant's tasks.
    }, ALL_TENANTS);
    return { tasks: page.tasks.map(taskSummaryJson), nextPageToken: page.nextPageToken, total: page.totalSize };
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  }

  // ---- live stream ---------------------------------------------------------------------------

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.write("retry: 1000\n\n");
    this.clients.add(res);
    if (!this.unsubscribe) this.unsubscribe = this.bus.subscribe((event) => this.onEvent(event));
    req.on("close", () => {
      this.clients.delete(res);
      if (this.clients.size === 0) {
        this.unsubscribe?.();
        this.unsubscribe = undefined;
        this.changed.clear();
        this.omitted = 0;
      }
    });
  }

  private onEvent(event: ClusterEvent): void {
    if (event.kind === "worker") {
      this.broadcast("worker", workerJson(event.worker));
      return;
    }
    // Past the cap a change is only counted: the page refetches its list when anything was omitted.
    if (this.changed.size < MAX_TASKS_PER_FLUSH) this.changed.set(event.task.id, event.task);
    else this.omitted++;
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const body: TasksEventJson = { tasks: [...this.changed.values()].map(taskSummaryJson), omitted: this.omitted };
    this.changed = new Map();
    this.omitted = 0;
    this.broadcast("tasks", body);
  }

  private broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.clients) res.write(frame);
  }

  private async sample(): Promise<void> {
    try {
      const counts = await this.view.plm.counts();
      const now = Date.now();
      const t = this.tally;
      const seconds = Math.max(0.001, (now - this.last.time) / 1000);
      const rate = (current: number, before: number) => Math.round(((current - before) / seconds) * 10) / 10;
      const sample: SampleJson = {
        time: now,
        queued: counts.queued,
        running: counts.running + counts.assigned,
        submittedPerSec: rate(t.submitted, this.last.submitted),
        succeededPerSec: rate(t.succeeded, this.last.succeeded),
        failedPerSec: rate(t.failed, this.last.failed),
      };
      this.last = { submitted: t.submitted, succeeded: t.succeeded, failed: t.failed, time: now };
      this.history.push(sample);
      const keep = this.options.historyMinutes * 60;
      if (this.history.length > keep) this.history.splice(0, this.history.length - keep);
      if (this.clients.size === 0) return;
      const q = this.view.queue();
      const stats: StatsEventJson = {
        counts: counts as TaskCountsJson,
        queue: { inHeap: q.inHeap, parked: q.parked, delayed: q.delayed },
        ...this.workersJson(),
        sample,
      };
      this.broadcast("stats", stats);
    } catch (err) {
      this.options.logger.warn({ err }, "dashboard sample failed");
    }
  }
}

/**
 * Actions change the cluster: accept them only as JSON from the dashboard's own origin, so a
 * page elsewhere cannot post a form or a simple request at this loopback address.
 */
function checkPost(req: IncomingMessage): void {
  const type = req.headers["content-type"] ?? "";
  if (!type.startsWith("application/json")) throw new TaskflowError(Code.INVALID_ARGUMENT, "actions take a JSON body (content-type: application/json)");
  const origin = req.headers.origin;
  if (origin && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) throw new TaskflowError(Code.PERMISSION_DENIED, `cross-origin action from ${origin} refused`);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > 64 * 1024) throw new TaskflowError(Code.INVALID_ARGUMENT, "request body too large");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (!text) return {};
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    throw new TaskflowError(Code.INVALID_ARGUMENT, "the request body is not valid JSON");
  }
}
