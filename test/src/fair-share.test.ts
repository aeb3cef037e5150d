/**
 * The fair-share policy on a real node with real worker processes and tenants from real tokens:
 * a tenant that submits behind another's backlog starts within the first (free slots + 2) starts
 * (late binding keeps the backlog out of the workers' prefetch buffers), and under sustained load
 * from three weighted tenants the shares of starts follow the weights.
 *
 * The handler appends each task's label to a file next to the config as it starts: with several
 * slots, that file's order is the start order across the node.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskflowClient } from "@taskflow/client";
import { TaskState } from "@taskflow/proto";
import { eventually, startNode, type StartedNode } from "./harness.js";

const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;
const T = { a: tok("a"), b: tok("b"), c: tok("c"), admin: tok("admin"), worker: tok("worker") };
const tokens = [
  { hash: sha(T.a), role: "client", tenant: "tenant-a", name: "app-a" },
  { hash: sha(T.b), role: "client", tenant: "tenant-b", name: "app-b" },
  { hash: sha(T.c), role: "client", tenant: "tenant-c", name: "app-c" },
  { hash: sha(T.admin), role: "admin", tenant: "ops", name: "root" },
  { hash: sha(T.worker), role: "worker", tenant: "ops", name: "workers" },
];

/** Logs `label` to starts.log as the task starts, then sleeps `ms` (abortable). */
const HANDLERS = `
import { appendFileSync } from "node:fs";
const log = new URL("./starts.log", import.meta.url);
export default {
  step: async (payload, { signal }) => {
    appendFileSync(log, payload.label + "\\n");
    const ms = Number(payload.ms ?? 0);
    if (ms > 0) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
      });
    }
    return null;
  },
};
`;

function startsOf(node: StartedNode): string[] {
  try {
    return readFileSync(path.join(node.dir, "starts.log"), "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

const SLOTS = 2;

describe("fair-share policy", { timeout: 120_000 }, () => {
  let node: StartedNode;
  const clients: TaskflowClient[] = [];
  const client = (token: string) => {
    const c = new TaskflowClient({ address: node.address, token });
    clients.push(c);
    return c;
  };

  before(async () => {
    node = await startNode(
      {
        roles: ["control", "worker"],
        // The default prefetch (16) stays on: the policy's late binding must keep tasks out of it.
        worker: { processes: 1, slots: SLOTS, token: T.worker, handlers: "./handlers.mjs" },
        auth: { tokens: tokens as never },
        scheduler: { policy: "fair-share", policyOptions: { weights: { "tenant-a": 1, "tenant-b": 2, "tenant-c": 3 } } },
      },
      { files: { "handlers.mjs": HANDLERS } },
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    assert.equal(await node?.stop(), 0);
  });

  /** Cancels what is left and waits until nothing runs, so the next test starts on idle workers. */
  async function drain(): Promise<void> {
    const admin = client(T.admin);
    await admin.cancelMany({ states: [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING], maxTasks: 10_000 }, "test over");
    await eventually(async () => ((await admin.cancelMany({ dryRun: true, states: [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING] })).length === 0 ? true : undefined), 20_000, "nothing unfinished");
  }

  it("starts a tenant's first task within the first (free slots + 2) starts behind another tenant's 200-task backlog", async () => {
    const [a, b] = [client(T.a), client(T.b)];
    // A's tasks outlast the submissions, so every start after the first SLOTS is the policy's choice.
    await a.submitMany(Array.from({ length: 200 }, (_, i) => ({ type: "step", payload: { label: `a#${i}`, ms: 400 } })));
    await b.submitMany(Array.from({ length: 10 }, (_, i) => ({ type: "step", payload: { label: `b#${i}`, ms: 0 } })));
    const starts = await eventually(() => {
      const s = startsOf(node);
      return s.includes("b#0") ? s : undefined;
    }, 30_000, "B's first task to start");
    const position = starts.indexOf("b#0") + 1;
    assert.ok(position <= SLOTS + 2, `B's first task started at position ${position}; starts: ${starts.slice(0, position).join(" ")}`);
    console.log(`# fair-share: B's first task started at position ${position} of the node's starts (${SLOTS} slots, prefetch 16)`);
    // Without late binding, A's tasks would have filled the prefetch buffer (16) before B submitted.
    assert.deepEqual(starts.slice(0, SLOTS), ["a#0", "a#1"]);
    await drain();
  });

  it("shares starts among three backlogged tenants by their weights 1:2:3, within ±10%", async () => {
    const before = startsOf(node).length;
    const tenants = [
      { label: "a", client: client(T.a), weight: 1 },
      { label: "b", client: client(T.b), weight: 2 },
      { label: "c", client: client(T.c), weight: 3 },
    ];
    // Each tenant submits a backlog larger than its share of the window measured below.
    await Promise.all(tenants.map((t) => t.client.submitMany(Array.from({ length: 150 }, (_, i) => ({ type: "step", payload: { label: `${t.label}#${i}`, ms: 15 } })))));
    const window = 120;
    const starts = await eventually(() => {
      const s = startsOf(node).slice(before);
      return s.length >= window + 10 ? s : undefined;
    }, 60_000, `${window + 10} starts`);
    // Measured from the first start of the last tenant to get one: from there on all three wait.
    const firstOfAll = Math.max(...tenants.map((t) => starts.findIndex((s) => s.startsWith(`${t.label}#`))));
    assert.ok(firstOfAll >= 0 && firstOfAll < 20, `every tenant started within the first 20 starts (the last at ${firstOfAll})`);
    const measured = starts.slice(firstOfAll, firstOfAll + window);
    const report: string[] = [];
    for (const t of tenants) {
      const share = measured.filter((s) => s.startsWith(`${t.label}#`)).length / measured.length;
      const want = t.weight / 6;
      report.push(`${t.label}: ${(share * 100).toFixed(1)}% (want ${(want * 100).toFixed(1)}%)`);
      assert.ok(Math.abs(share - want) <= want * 0.1, `shares of ${measured.length} starts: ${report.join(", ")}`);
    }
    console.log(`# fair-share shares over ${measured.length} starts: ${report.join(", ")}`);
    await drain();
  });
});
