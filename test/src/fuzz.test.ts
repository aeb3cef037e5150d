/**
 * Random and mutated protobuf bytes to every RPC of TaskService, WorkerService, ClusterService and ScheduleService
 * (2,000 messages, seeded: set TASKFLOW_FUZZ_SEED to replay a run). The node must stay up and end
 * every call with a precise status: never INTERNAL or UNKNOWN.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { ClusterService, ScheduleService, TaskService, WorkerService } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { startNode, type StartedNode } from "./harness.js";
import { scrape, sum } from "./prometheus.js";
import { prng } from "@taskflow/core/testing";

const MESSAGES = 2000;


/** Valid requests of each method, by method name, as starting points for mutations. */
const seeds: Record<string, unknown[]> = {
  SubmitTask: [{ spec: { type: "echo", payload: new TextEncoder().encode('"x"'), priority: -3, requiredLabels: { zone: "a" }, maxAttempts: 2, timeoutMs: 1000, idempotencyKey: "k" }, clientId: "fuzz", requestId: "r1" }],
  SubmitTasks: [{ specs: [{ type: "echo" }, { type: "sleep", payload: new TextEncoder().encode('{"ms":1}') }], clientId: "fuzz", requestId: "r2" }],
  SubmitTaskStream: [{ batchId: 7n, specs: [{ type: "echo" }, { type: "echo", dependsOn: ["0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a"], onDependencyFailure: 2 }], clientId: "fuzz", requestId: "r3" }],
  SubmitFlow: [
    {
      nodes: [{ spec: { type: "echo" } }, { spec: { type: "echo", onDependencyFailure: 1 }, dependsOnNodes: [0] }, { spec: { type: "echo" }, dependsOnNodes: [0, 1] }],
      clientId: "fuzz",
      requestId: "r4",
    },
  ],
  GetTask: [{ taskId: "0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a" }],
  WatchTask: [{ taskId: "0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a" }],
  SubscribeResults: [{ clientId: "fuzz" }],
  CancelTask: [{ taskId: "0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a", reason: "fuzz" }],
  ListTasks: [{ states: [1, 4], type: "echo", clientId: "fuzz", pageSize: 10, pageToken: "" }],
  RetryTasks: [
    { taskIds: ["0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a"] },
    { filter: { type: "echo", states: [5, 6], createdAfterMs: 1n, finishedBeforeMs: 2n ** 40n }, maxTasks: 10, dryRun: true },
  ],
  CancelTasks: [{ filter: { type: "echo", states: [1], createdBeforeMs: 2n ** 40n }, reason: "fuzz", maxTasks: 10, dryRun: true }],
  Session: [
    { kind: { case: "hello", value: { workerId: "fuzz-worker", host: "h", pid: 1, slots: 2, prefetch: 1, labels: { zone: "a" }, taskTypes: ["echo"], running: [{ taskId: "t", epoch: 1n }] } } },
    { kind: { case: "heartbeat", value: { running: 1, results: [{ taskId: "t", epoch: 1n, ok: true, result: new Uint8Array([1]) }], seq: 1n } } },
  ],
  GetClusterState: [{}],
  WatchEvents: [{ includeTasks: true }],
  DrainWorker: [{ workerId: "fuzz-worker" }],
  CreateSchedule: [
    { schedule: { id: "fuzz", template: { type: "echo", payload: new TextEncoder().encode('"x"') }, cron: "*/5 * * * *", timezone: "Europe/Paris", missedFirings: 3, catchUpMax: 5 } },
    { schedule: { id: "fuzz-every", template: { type: "echo" }, intervalMs: 60_000n, paused: true } },
  ],
  GetSchedule: [{ scheduleId: "fuzz", tenant: "default" }],
  ListSchedules: [{ tenant: "" }],
  PauseSchedule: [{ scheduleId: "fuzz" }],
  ResumeSchedule: [{ scheduleId: "fuzz" }],
  DeleteSchedule: [{ scheduleId: "fuzz" }],
  UpdateSchedule: [{ schedule: { id: "fuzz", template: { type: "echo" }, cron: "0 9 * * MON", timezone: "America/New_York", missedFirings: 1 }, tenant: "" }],
};

function mutate(bytes: Uint8Array, random: () => number): Buffer {
  const b = Buffer.from(bytes);
  const at = (n: number) => Math.floor(random() * n);
  switch (at(6)) {
    case 0: {
      // Bit flips.
      for (let i = 0, n = 1 + at(4); i < n && b.length; i++) b[at(b.length)]! ^= 1 << at(8);
      return b;
    }
    case 1:
      return b.subarray(0, at(b.length + 1));
    case 2: {
      // A length (or varint) byte set to something large.
      if (b.length > 1) b[1 + at(b.length - 1)] = [0x7f, 0xff, 0x80, 0x00][at(4)]!;
      return b;
    }
    case 3: {
      // Repeat the message (every field again) or a slice of it.
      const slice = b.subarray(at(b.length), b.length);
      return Buffer.concat([b, ...Array.from({ length: 1 + at(50) }, () => slice)]);
    }
    case 4:
      return Buffer.concat([b, Buffer.from(Array.from({ length: at(16) }, () => at(256)))]);
    default:
      return Buffer.from(Array.from({ length: at(64) }, () => at(256)));
  }
}

describe("fuzzed requests to every RPC", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
  });
  after(async () => {
    assert.equal(await node.stop(), 0);
  });

  it("end with a precise status, never INTERNAL or UNKNOWN, and the node keeps serving", async () => {
    const seed = Number(process.env.TASKFLOW_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`# fuzz seed ${seed} (TASKFLOW_FUZZ_SEED=${seed} replays it)`);
    const random = prng(seed);
    const client = new grpc.Client(node.address, grpc.credentials.createInsecure());
    const identity = (b: Buffer) => b;
    const methods = [TaskService, WorkerService, ClusterService, ScheduleService].flatMap((service) => service.methods.map((method) => ({ service, method })));
    const seen = new Map<string, number>();
    try {
      for (let i = 0; i < MESSAGES; i++) {
        const { service, method } = methods[i % methods.length]!;
        const starts = seeds[method.name]!;
        const valid = toBinary(method.input as DescMessage, create(method.input as DescMessage, starts[Math.floor(random() * starts.length)] as never));
        const bytes = mutate(valid, random);
        const path = `/${service.typeName}/${method.name}`;
        const ended = await new Promise<grpc.StatusObject>((resolve) => {
          const options = { deadline: Date.now() + 2000 };
          if (method.methodKind === "unary") {
            client.makeUnaryRequest(path, identity, identity, bytes, new grpc.Metadata(), options, () => {}).on("status", resolve);
            return;
          }
          const duplex = method.methodKind === "server_streaming" ? undefined : client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), options);
          const call = duplex ?? client.makeServerStreamRequest(path, identity, identity, bytes, new grpc.Metadata(), options);
          // A stream the server accepted stays open: its first message or a short wait is an answer too.
          const timer = setTimeout(() => call.cancel(), 150);
          call.on("data", () => call.cancel());
          call.on("error", () => {});
          call.on("status", (s: grpc.StatusObject) => {
            clearTimeout(timer);
            resolve(s);
          });
          if (duplex) {
            duplex.write(bytes);
            duplex.end();
          }
        });
        const name = status[ended.code] ?? String(ended.code);
        seen.set(name, (seen.get(name) ?? 0) + 1);
        assert.ok(
          ended.code !== status.INTERNAL && ended.code !== status.UNKNOWN,
          `seed ${seed}, message ${i}, ${method.name} with ${bytes.subarray(0, 64).toString("hex")}: ${name} ${ended.details}`,
        );
      }
    } finally {
      client.close();
    }
    console.log(`# fuzz statuses: ${JSON.stringify(Object.fromEntries(seen))}`);
    assert.ok((seen.get("INVALID_ARGUMENT") ?? 0) > 0, "some mutations were refused as malformed");
    assert.equal(node.process.exitCode, null, "the node is still running");
    const samples = await scrape(node.metricsUrl!);
    assert.equal(sum(samples, "taskflow_grpc_server_errors_total", { code: "INTERNAL" }), 0);
    const tasks = createClient(TaskService, node.address);
    try {
      const { taskId } = await tasks.submitTask({ spec: { type: "echo" } });
      assert.ok(taskId);
    } finally {
      tasks.raw.close();
    }
  });
});
