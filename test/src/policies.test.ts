/**
 * Scheduling policies in a real cluster: priority (order and the aging bound), least-loaded
 * (shares proportional to slots), fifo, label filtering with `get`'s waiting reason, a third-party
 * policy package installed from an `npm pack` tarball, and the config errors of the loader.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { cli, eventually, startNode, tempDir, type StartedNode } from "./harness.js";
import { RECORDING_HANDLERS, installThirdPartyPolicy, ms, sleep, writePackage, type Step } from "./policies-helpers.js";

/**
 * The app folder with the third-party policy installed (npm pack + npm install, a few seconds):
 * started while the least-loaded tests run, whose sleeping tasks do not mind the extra load.
 */
let thirdPartyApp: Promise<{ dir: string; packageName: string }> | undefined;
function prepareThirdPartyApp(): Promise<{ dir: string; packageName: string }> {
  if (!thirdPartyApp) {
    const dir = tempDir("taskflow-policy-app-");
    thirdPartyApp = installThirdPartyPolicy(dir).then(
      (packageName) => ({ dir, packageName }),
      (error: unknown) => {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      },
    );
    thirdPartyApp.catch(() => {}); // awaited (and reported) by the third-party tests
  }
  return thirdPartyApp;
}

after(async () => {
  const app = await thirdPartyApp?.catch(() => undefined);
  if (app) rmSync(app.dir, { recursive: true, force: true });
});

/** One worker process with one slot and no prefetch: the scheduler's order is the start order. */
const ONE_SLOT = { processes: 1, slots: 1, prefetch: 0, handlers: "./handlers.mjs" } as const;

async function waitRunning(client: TaskflowClient, id: string): Promise<void> {
  await eventually(async () => ((await client.get(id)).state === TaskState.RUNNING ? true : undefined), 15_000, `task ${id} running`);
}

describe("priority policy", { timeout: 60_000 }, () => {
  const agingRate = 10; // levels per second: a task 10 levels lower waits at most 1 s behind newer ones
  let node: StartedNode;
  let client: TaskflowClient;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], scheduler: { policy: "priority", policyOptions: { agingRate } }, worker: ONE_SLOT }, { files: { "handlers.mjs": RECORDING_HANDLERS } });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client?.close();
    assert.equal(await node?.stop(), 0);
  });

  it("runs higher priorities first under contention, FIFO within a priority", async () => {
    const blocker = await client.submit("step", { ms: 1000, label: "blocker" });
    await waitRunning(client, blocker);
    const priorities = [0, 5, 1, 9, 3, 7, 5, -2];
    const ids = await client.submitMany(priorities.map((priority, i) => ({ type: "step", payload: { label: `p${priority}#${i}` }, priority })));
    // Why is the lowest one waiting? Its only worker is busy, and the policy puts the rest first.
    const lowest = await client.get(ids[7]!);
    assert.equal(lowest.state, TaskState.QUEUED);
    assert.match(lowest.waitingReason, /^all 1 worker\(s\) that can take it are busy or unavailable; 7 task\(s\) ahead of it in priority order$/);
    const steps = await Promise.all(ids.map((id) => client.result<Step>(id)));
    const started = steps.slice().sort((a, b) => a.n - b.n).map((s) => s.label);
    assert.deepEqual(started, ["p9#3", "p7#5", "p5#1", "p5#6", "p3#4", "p1#2", "p0#0", "p-2#7"]);
    // One slot: each finished before the next started, so they also finished in that order.
    const tasks = await Promise.all(ids.map((id) => client.get(id)));
    const finishedInStartOrder = steps
      .map((s, i) => ({ n: s.n, at: ms(tasks[i]!.finishedAt) }))
      .sort((a, b) => a.n - b.n)
      .map((t) => t.at);
    assert.ok(finishedInStartOrder.every((at) => at > 0));
    assert.deepEqual(finishedInStartOrder, finishedInStartOrder.slice().sort((a, b) => a - b));
  });

  it("does not starve a low-priority task under a stream of higher ones past its aging bound", async () => {
    const gap = 10;
    const boundMs = (gap / agingRate) * 1000;
    const serviceMs = 80;
    const everyMs = 50; // faster than one slot serves them: without aging the queue never clears
    const streamMs = 2500;
    const high: Promise<string>[] = [];
    let low: Promise<string> | undefined;
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < streamMs; i++) {
      high.push(client.submit("step", { ms: serviceMs, label: `high#${i}` }, { priority: gap }));
      if (!low && Date.now() - t0 >= 300) low = client.submit("step", { ms: 0, label: "low" }, { priority: 0 });
      await sleep(everyMs);
    }
    const lowId = await low!;
    const highIds = await Promise.all(high);
    const [lowTask, lowStep] = await Promise.all([client.get(lowId), client.result<Step>(lowId)]);
    const highTasks = await Promise.all(highIds.map((id) => client.get(id)));
    const highSteps = await Promise.all(highIds.map((id) => client.result<Step>(id)));
    const lowCreated = ms(lowTask.createdAt);
    // The handler's own start time: a task that starts and finishes within one worker flush
    // gets no start notice, so the control node's startedAt for it is when its result came.
    const waitedMs = lowStep.at - lowCreated;
    const passedBy = highTasks.filter((t, i) => ms(t.createdAt) > lowCreated && highSteps[i]!.n < lowStep.n).length;
    const ranAfter = highSteps.filter((s) => s.n > lowStep.n).length;
    // Priority applied: newer high tasks went ahead of it; and the stream outlived it.
    assert.ok(passedBy > 0, "no newer high-priority task went ahead of the low one");
    assert.ok(ranAfter >= 5, `only ${ranAfter} high-priority tasks ran after the low one: the stream did not outlast it`);
    // The aging bound: no high task that arrived more than boundMs after it went ahead of it.
    for (const [i, t] of highTasks.entries()) {
      if (ms(t.createdAt) > lowCreated + boundMs + 20) assert.ok(highSteps[i]!.n > lowStep.n, `${highSteps[i]!.label}, ${ms(t.createdAt) - lowCreated} ms after the low task, ran before it`);
    }
    // In time: the bound, plus serving what arrived within it (arrival × service per ms), plus slack.
    const expectedMs = boundMs + (boundMs / everyMs) * serviceMs;
    assert.ok(waitedMs <= expectedMs + 2000, `the low task waited ${waitedMs} ms; bound ${boundMs} ms, expected about ${expectedMs} ms`);
    console.log(`# priority aging: low task waited ${waitedMs} ms (bound ${boundMs} ms, ${passedBy} newer tasks went ahead, ${ranAfter} ran after it)`);
  });
});

describe("fifo policy", { timeout: 60_000 }, () => {
  let node: StartedNode;
  let client: TaskflowClient;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], scheduler: { policy: "fifo" }, worker: ONE_SLOT }, { files: { "handlers.mjs": RECORDING_HANDLERS } });
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client?.close();
    assert.equal(await node?.stop(), 0);
  });

  it("starts tasks in submission order with one slot, whatever their priority", async () => {
    const blocker = await client.submit("step", { ms: 300, label: "blocker" });
    await waitRunning(client, blocker);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await client.submit("step", { label: `t${i}` }, { priority: (i * 7) % 5, expectedDurationMs: 1000 - i }));
    const steps = await Promise.all(ids.map((id) => client.result<Step>(id)));
    assert.deepEqual(
      steps.slice().sort((a, b) => a.n - b.n).map((s) => s.label),
      ids.map((_, i) => `t${i}`),
    );
    const starts = steps.map((s) => s.at);
    assert.deepEqual(starts, starts.slice().sort((a, b) => a - b), "start times rise in submission order");
  });
});

/** Handlers of the prefetching pool: a task type of their own, so other tasks never go there. */
const HOLD_HANDLERS = `export default { hold: (payload) => new Promise((resolve) => setTimeout(() => resolve(null), Number(payload?.ms ?? 0))) };\n`;

describe("least-loaded policy with worker nodes of 2 and 6 slots", { timeout: 60_000 }, () => {
  let control: StartedNode;
  let workers: StartedNode[] = [];
  let client: TaskflowClient;
  before(async () => {
    void prepareThirdPartyApp();
    control = await startNode({ roles: ["control"], scheduler: { policy: "least-loaded" } });
    const worker = (idPrefix: string, slots: number, labels: Record<string, string>, prefetch = 0) =>
      startNode(
        { roles: ["worker"], worker: { controlAddress: control.address, processes: 1, slots, prefetch, idPrefix, labels, ...(prefetch ? { handlers: "./handlers.mjs" } : {}) } },
        { files: prefetch ? { "handlers.mjs": HOLD_HANDLERS } : {} },
      );
    // small and big run the example handlers, without prefetch; pf2 and pf6 hold up to 16 tasks
    // beyond their slots and serve only `hold`.
    const started = await Promise.allSettled([
      worker("small", 2, { size: "small" }),
      worker("big", 6, { size: "big", gpu: "yes" }),
      worker("pf2", 2, {}, 16),
      worker("pf6", 6, {}, 16),
    ]);
    workers = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    for (const r of started) if (r.status === "rejected") throw r.reason;
    client = new TaskflowClient({ address: control.address });
    await eventually(async () => ((await client.clusterState()).workers.length === 4 ? true : undefined), 10_000, "4 workers");
  });
  after(async () => {
    client?.close();
    // Stop every node that started before asserting anything, so none is left running.
    const codes = await Promise.all(workers.map((w) => w.stop()));
    const controlCode = await control?.stop();
    assert.deepEqual([...codes, controlCode], [...workers.map(() => 0), 0]);
  });

  it("fills workers by load (running / slots), not in turn: 4 tasks go 1 : 3", async () => {
    const ids = await client.submitMany(Array.from({ length: 4 }, () => ({ type: "sleep", payload: { ms: 300 } })));
    const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
    const onSmall = outcomes.filter((o) => o.workerId.startsWith("small-")).length;
    assert.deepEqual([onSmall, outcomes.length - onSmall], [1, 3], "fifo's round robin would give 2 : 2");
  });

  it("counts prefetched tasks in the load: 24 tasks on 2 + 6 slots with prefetch 16 go 6 : 18", async () => {
    const ids = await client.submitMany(Array.from({ length: 24 }, () => ({ type: "hold", payload: { ms: 300 } })));
    const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
    const onSmall = outcomes.filter((o) => o.workerId.startsWith("pf2-")).length;
    assert.equal(outcomes.filter((o) => o.workerId.startsWith("pf")).length, 24);
    // Equal loads, 6 / 2 = 18 / 6; with load capped at 1 (full) the rest went round robin, 10 : 14.
    assert.deepEqual([onSmall, outcomes.length - onSmall], [6, 18]);
  });

  it("gives each worker a share of the tasks proportional to its slots", async () => {
    const total = 96;
    const started = Date.now();
    const ids = await client.submitMany(Array.from({ length: total }, () => ({ type: "sleep", payload: { ms: 150 } })));
    // Sample the loads while the queue is full: both workers should be kept full.
    const loads: number[][] = [];
    const sampler = (async () => {
      for (let i = 0; i < 10; i++) {
        await sleep(150);
        const state = await client.clusterState();
        if (Number(state.queued) === 0) break;
        loads.push(["small", "big"].map((p) => state.workers.find((w) => w.workerId.startsWith(`${p}-`))!).map((w) => w.running / w.slots));
      }
    })();
    const outcomes = await Promise.all(ids.map((id) => client.outcome(id)));
    await sampler;
    const elapsed = Date.now() - started;
    assert.ok(outcomes.every((o) => o.state === "succeeded"));
    const onSmall = outcomes.filter((o) => o.workerId.startsWith("small-")).length;
    const share = onSmall / total;
    const imbalance = Math.abs(share - 2 / 8);
    console.log(
      `# least-loaded: small (2 slots) ran ${onSmall}/${total} = ${(share * 100).toFixed(1)}% (ideal 25%), big (6 slots) ${total - onSmall}; ` +
        `imbalance ${(imbalance * 100).toFixed(1)} points; ${elapsed} ms; sampled loads ${JSON.stringify(loads.map((l) => l.map((x) => +x.toFixed(2))))}`,
    );
    assert.ok(imbalance <= 0.15, `small worker's share ${(share * 100).toFixed(1)}% is more than 15 points from 25%`);
  });

  it("runs a task requiring a label only one worker has on that worker", async () => {
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => client.submit("echo", { x: 1 }, { requiredLabels: { gpu: "yes" } }).then((id) => client.outcome(id))));
    assert.ok(outcomes.every((o) => o.state === "succeeded" && o.workerId.startsWith("big-")), JSON.stringify(outcomes.map((o) => o.workerId)));
    const onSmall = await client.outcome(await client.submit("echo", {}, { requiredLabels: { size: "small" } }));
    assert.match(onSmall.workerId, /^small-/);
  });

  it("keeps a task no worker can take queued, and get says why", async () => {
    const mars = await client.submit("echo", { x: 1 }, { requiredLabels: { zone: "mars" } });
    const unknownType = await client.submit("transcode", {});
    const marsTask = await eventually(async () => {
      const t = await client.get(mars);
      return t.waitingReason ? t : undefined;
    }, 5000, "a waiting reason");
    assert.equal(marsTask.state, TaskState.QUEUED);
    assert.match(marsTask.waitingReason, /no worker serving "echo" has the required labels zone=mars/);
    const typeTask = await client.get(unknownType);
    assert.equal(typeTask.state, TaskState.QUEUED);
    assert.match(typeTask.waitingReason, /no worker serves task type "transcode"/);
    // Other work flows past them.
    assert.deepEqual(await client.run("echo", { after: "parked" }), { after: "parked" });
    assert.equal((await client.get(mars)).state, TaskState.QUEUED);
    await client.cancel(mars);
    await client.cancel(unknownType);
  });
});

describe("a third-party policy package installed from npm pack", { timeout: 90_000 }, () => {
  let appDir: string;
  let packageName: string;
  let node: StartedNode | undefined;
  let client: TaskflowClient;
  before(async () => {
    ({ dir: appDir, packageName } = await prepareThirdPartyApp());
    node = await startNode(
      {
        roles: ["control", "worker"],
        scheduler: { policy: packageName, policyOptions: { smallWorkerLimitMs: 1000 } },
        worker: { ...ONE_SLOT, labels: { size: "small" } },
      },
      { dir: appDir, files: { "handlers.mjs": RECORDING_HANDLERS } },
    );
    client = new TaskflowClient({ address: node.address });
  });
  after(async () => {
    client?.close();
    const code = await node?.stop();
    if (appDir) rmSync(appDir, { recursive: true, force: true });
    assert.equal(code, 0);
  });

  it("is the cluster's policy, by the name it defines", async () => {
    assert.equal(packageName, "@acme/taskflow-policy-shortest-job");
    assert.equal((await client.clusterState()).policy, "shortest-job");
    const r = await cli(["workers", "--json"], { TASKFLOW_ADDRESS: node!.address });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).policy, "shortest-job");
  });

  it("decides the order: shortest expected job first, not submission order", async () => {
    const blocker = await client.submit("step", { ms: 400, label: "blocker" }, { expectedDurationMs: 400 });
    await waitRunning(client, blocker);
    const expected = [500, 100, 300, 50, 200, 400];
    const ids: string[] = [];
    for (const d of expected) ids.push(await client.submit("step", { label: `${d}ms` }, { expectedDurationMs: d }));
    const steps = await Promise.all(ids.map((id) => client.result<Step>(id)));
    assert.deepEqual(
      steps.slice().sort((a, b) => a.n - b.n).map((s) => s.label),
      ["50ms", "100ms", "200ms", "300ms", "400ms", "500ms"],
    );
  });

  it("filters with its own rule, and get names the policy", async () => {
    const long = await client.submit("step", { label: "long" }, { expectedDurationMs: 5000 });
    const task = await eventually(async () => {
      const t = await client.get(long);
      return t.waitingReason ? t : undefined;
    }, 5000, "a waiting reason");
    assert.equal(task.state, TaskState.QUEUED);
    assert.match(task.waitingReason, /filtered out by policy shortest-job: expected 5000 ms, small workers take at most 1000 ms/);
    assert.equal((await client.result<Step>(await client.submit("step", { label: "short" }, { expectedDurationMs: 10 }))).label, "short");
    await client.cancel(long);
  });
});

// Each test runs its own `taskflow node`: independent, so concurrent.
describe("scheduler.policy in config: a local file, and the errors", { timeout: 60_000, concurrency: true }, () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `taskflow node` on a config in a fresh folder; it must exit, not start. */
  async function startWith(scheduler: Record<string, unknown>, setup?: (dir: string) => void) {
    const dir = tempDir("taskflow-policy-err-");
    dirs.push(dir);
    setup?.(dir);
    const file = path.join(dir, "taskflow.config.json");
    const config = { roles: ["control", "worker"], control: { host: "127.0.0.1", port: 0 }, metrics: { port: 0 }, dashboard: { port: 0 }, scheduler, log: { level: "warn" } };
    writeFileSync(file, JSON.stringify(config));
    const r = await cli(["node", "--config", file]);
    assert.notEqual(r.code, 0, `the node started: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /ready/);
    return { ...r, dir };
  }

  it("policy not installed: names the package, the folder and npm install", async () => {
    const r = await startWith({ policy: "@acme/taskflow-policy-missing" });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /policy "@acme\/taskflow-policy-missing": package @acme\/taskflow-policy-missing is not installed where the config is/);
    assert.ok(r.stderr.includes(`looked from ${r.dir}`), r.stderr);
    assert.match(r.stderr, /npm install @acme\/taskflow-policy-missing/);
  });

  it("a misspelt built-in name suggests the short name", async () => {
    const r = await startWith({ policy: "taskflow-policy-priority" });
    assert.match(r.stderr, /Did you mean the built-in "priority"\?/);
  });

  it("not a policy: says what the package exports instead", async () => {
    const r = await startWith({ policy: "taskflow-policy-bogus" }, (dir) =>
      writePackage(dir, "taskflow-policy-bogus", { "index.js": "export default function makePolicy() { return {}; }\nexport const version = 1;\n" }),
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /policy "taskflow-policy-bogus": taskflow-policy-bogus \(.*index\.js\) does not export a policy; it exports default \(function\), version \(number 1\)/);
    assert.match(r.stderr, /must be the result of definePolicy\(\) from @taskflow\/core, not a function that returns it/);
  });

  it("unsupported core version: names both versions and the fix", async () => {
    // A policy definition as definePolicy would make it, for a core that does not exist yet.
    const source = `export default {
  kind: "taskflow.policy", name: "future", coreVersions: ">=99",
  parseOptions: (options) => ({ ...options }),
  create: () => ({ name: "future", taskKey: (t) => t.seq, workerKey: (w) => w.running / w.slots }),
};\n`;
    const r = await startWith({ policy: "@acme/taskflow-policy-future" }, (dir) => writePackage(dir, "@acme/taskflow-policy-future", { "index.js": source }, { version: "3.0.0" }));
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /policy "@acme\/taskflow-policy-future": @acme\/taskflow-policy-future@3\.0\.0 supports @taskflow\/core >=99, but this is @taskflow\/core 0\.\d+\.\d+/,
    );
    assert.match(r.stderr, /npm install @acme\/taskflow-policy-future@latest/);
  });

  it("a policy in a file next to the config, named by a relative path, runs too", async () => {
    // The structural shape definePolicy returns; this file cannot import @taskflow/core.
    const source = `export default {
  kind: "taskflow.policy", name: "newest-first", coreVersions: "^0.1.0",
  parseOptions: (options) => ({ ...options }),
  create: () => ({ name: "newest-first", taskKey: (t) => -t.seq, workerKey: (w) => w.running / w.slots }),
};\n`;
    const local = await startNode({ roles: ["control", "worker"], scheduler: { policy: "./newest-first.mjs" }, worker: ONE_SLOT }, { files: { "newest-first.mjs": source, "handlers.mjs": RECORDING_HANDLERS } });
    const c = new TaskflowClient({ address: local.address });
    try {
      assert.equal((await c.clusterState()).policy, "newest-first");
      const blocker = await c.submit("step", { ms: 300, label: "blocker" });
      await waitRunning(c, blocker);
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await c.submit("step", { label: `t${i}` }));
      const steps = await Promise.all(ids.map((id) => c.result<Step>(id)));
      assert.deepEqual(steps.slice().sort((a, b) => a.n - b.n).map((s) => s.label), ["t3", "t2", "t1", "t0"]);
    } finally {
      c.close();
      assert.equal(await local.stop(), 0);
    }
  });

  it("a relative path that names no file: says so and where it looked", async () => {
    const r = await startWith({ policy: "./policies/mine.js" });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(`policy "./policies/mine.js": no file ${path.join(r.dir, "policies/mine.js")} (resolved from ${r.dir})`), r.stderr);
    assert.match(r.stderr, /relative paths start from the config file's folder/);
  });

  it("unknown option key: names it and the known ones", async () => {
    const r = await startWith({ policy: "priority", policyOptions: { nope: 1 } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /scheduler\.policyOptions for policy "priority": unknown option "nope" \(known options: agingRate, requeueBoost\)/);
  });
});
