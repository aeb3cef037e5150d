import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, TaskflowError, type ClusterEvent, type EventBus, type Logger, type Plm, type Register, type ScheduleRecord, type TaskRecord, type WorkerRecord } from "@taskflow/core";
import type { ClusterJson, ScheduleListJson, TaskDetailJson, TaskListJson } from "./api.js";
import { DashboardServer } from "./dashboard-server.js";

const silent: Logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

describe("DashboardServer", () => {
  const listeners = new Set<(e: ClusterEvent) => void>();
  const bus: EventBus = {
    publish: (e) => listeners.forEach((l) => l(e)),
    subscribe: (l) => (listeners.add(l), () => void listeners.delete(l)),
    get hasSubscribers() {
      return listeners.size > 0;
    },
  };
  const worker: WorkerRecord = { id: "w0", host: "h", pid: 1, state: "alive", slots: 4, running: 1, labels: { zone: "a" }, taskTypes: new Set(["echo"]), lastHeartbeat: 5, connectedAt: 1 };
  const rec = { id: "t1", type: "echo", state: "running", payload: new TextEncoder().encode('{"x":1}'), attempts: [], dependsOn: ["t0"] } as unknown as TaskRecord;
  const plm = {
    counts: async () => ({ queued: 2, assigned: 0, running: 1, succeeded: 3, failed: 0, cancelled: 0 }),
    list: async () => ({ tasks: [rec], nextPageToken: "", totalSize: 1 }),
    get: async (id: string) => {
      if (id === "t0") return { ...rec, id, state: "succeeded", dependsOn: undefined };
      if (id !== "t1") throw new TaskflowError(Code.NOT_FOUND, `task ${id} not found`);
      return rec;
    },
    cancel: async () => ({ ...rec, state: "cancelled" }),
    graphOf: (id: string) => (id === "t1" ? { waitingOn: [], dependents: ["t9"], dependentCount: 1 } : { waitingOn: [], dependents: [], dependentCount: 0 }),
  } as unknown as Plm;
  const register = { workers: () => [worker], drain: () => ({ ...worker, state: "draining" }) } as unknown as Register;
  const schedule: ScheduleRecord = {
    id: "nightly",
    tenant: "acme",
    template: { type: "report", payload: new Uint8Array(0), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0 },
    cron: "0 2 * * *",
    timezone: "Europe/Paris",
    intervalMs: 0,
    missed: "catch-up",
    catchUpMax: 10,
    paused: false,
    nextFireAt: 1_800_000_000_000,
    lastFireAt: 1_799_913_600_000,
    lastTaskId: "t1",
    createdAt: 1,
    lastError: "",
  };
  let server: DashboardServer;
  let url: string;

  before(async () => {
    server = new DashboardServer(
      { plm, register, policyName: "fifo", queue: () => ({ inHeap: 2, parked: 0, delayed: 0, capacity: 10 }), freeWorkers: () => 1, workerSummary: () => ({ total: 1, alive: 1, suspect: 0, draining: 0, disconnected: 0, slots: 2, running: 1, oldestHeartbeatAgeSeconds: 0 }), firstWorkers: (n: number) => [worker].slice(0, n), schedulerStats: () => ({ turns: 0, assigned: 0, busyNs: 0n }), grpcErrors: () => new Map(), authFailures: () => new Map(), submitRejections: () => [], workersRefused: () => 0, memory: () => ({ heapUsed: 0, heapBudget: 1, rss: 0, rssBudget: 1, refusing: false }), store: () => ({ kind: "memory", writable: true, error: "", failedWrites: 0 }), schedules: () => [schedule], scheduleFirings: () => 0 },
      bus,
      { host: "127.0.0.1", port: 0, historyMinutes: 1, staticDir: undefined, logger: silent },
    );
    await server.start();
    url = server.url;
  });
  after(() => server.close());

  it("serves the cluster state, the task list and a task as JSON", async () => {
    const state = (await (await fetch(`${url}/api/state`)).json()) as ClusterJson;
    assert.equal(state.policy, "fifo");
    assert.deepEqual(state.workers.map((w) => [w.id, w.taskTypes, w.labels]), [["w0", ["echo"], { zone: "a" }]]);
    assert.deepEqual(state.workerCounts, { total: 1, alive: 1, suspect: 0, draining: 0, disconnected: 0, slots: 2, running: 1, listed: 200 });
    const list = (await (await fetch(`${url}/api/tasks?state=running,queued&pageSize=10`)).json()) as TaskListJson;
    assert.equal(list.tasks[0]!.id, "t1");
    const detail = (await (await fetch(`${url}/api/tasks/t1`)).json()) as TaskDetailJson;
    assert.deepEqual([detail.payload, detail.payloadBytes], ['{"x":1}', 7]);
    // Its graph: dependencies and dependents with their states; one that cannot be read is "unknown".
    assert.deepEqual([detail.dependsOn, detail.dependsOnCount, detail.onDependencyFailure], [[{ id: "t0", state: "succeeded" }], 1, "cancel"]);
    assert.deepEqual([detail.dependents, detail.dependentCount], [[{ id: "t9", state: "unknown" }], 1]);
  });

  it("lists the schedules with their next firing time", async () => {
    const { schedules } = (await (await fetch(`${url}/api/schedules`)).json()) as ScheduleListJson;
    assert.deepEqual(schedules, [
      {
        id: "nightly",
        tenant: "acme",
        type: "report",
        cron: "0 2 * * *",
        timezone: "Europe/Paris",
        intervalMs: 0,
        missed: "catch-up",
        paused: false,
        nextFireAt: 1_800_000_000_000,
        lastFireAt: 1_799_913_600_000,
        lastTaskId: "t1",
        lastError: "",
      },
    ]);
  });

  it("answers errors with an HTTP status that matches the code", async () => {
    assert.equal((await fetch(`${url}/api/tasks/nope`)).status, 404);
    assert.equal((await fetch(`${url}/api/tasks?state=bogus`)).status, 400);
    assert.equal((await fetch(`${url}/api/nothing`)).status, 404);
  });

  it("takes actions only as same-origin JSON posts", async () => {
    assert.equal((await fetch(`${url}/api/tasks/t1/cancel`, { method: "POST", body: "reason=x" })).status, 400);
    const cross = await fetch(`${url}/api/workers/w0/drain`, { method: "POST", headers: { "content-type": "application/json", origin: "http://evil.example" }, body: "{}" });
    assert.equal(cross.status, 403);
    const ok = await fetch(`${url}/api/workers/w0/drain`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(((await ok.json()) as { state: string }).state, "draining");
  });

  it("streams worker and task changes to a connected client, and listens to the bus only meanwhile", async () => {
    const idle = listeners.size; // its own TaskTally for the charts
    const abort = new AbortController();
    const res = await fetch(`${url}/api/events`, { signal: abort.signal });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(listeners.size, idle + 1);
    bus.publish({ kind: "worker", time: 1, worker: { ...worker, state: "draining" } });
    bus.publish({ kind: "task", time: 1, task: rec });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("event: tasks")) text += new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /event: worker\ndata: \{"id":"w0".*"state":"draining"/);
    assert.match(text, /event: tasks\ndata: \{"tasks":\[\{"id":"t1".*\],"omitted":0\}/);
    abort.abort();
    for (let i = 0; i < 50 && listeners.size > idle; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(listeners.size, idle);
  });
});
