/**
 * The benchmark's baseline: a bare grpc-js relay with Taskflow's message pattern and batching
 * (client → relay → worker → relay → client) and nothing else — no task table, no heaps, no
 * policy, no validation. Run as a process; prints "relay ready on <port>" when its 2 raw worker
 * processes are connected.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { TaskService, WorkerService, type SessionRequest, type SessionResponse, type TaskResult } from "@taskflow/proto";
import { addService } from "@taskflow/proto/grpc";

interface Pending {
  id: string;
  clientId: string;
  payload: Uint8Array;
  type: string;
}

const workers: grpc.ServerDuplexStream<SessionRequest, SessionResponse>[] = [];
const outboxes = new Map<grpc.ServerDuplexStream<SessionRequest, SessionResponse>, Pending[]>();
const clientOf = new Map<string, string>();
const subscribers = new Map<string, grpc.ServerWritableStream<unknown, unknown>>();
let resultBatches = new Map<string, Omit<TaskResult, "$typeName">[]>();
let next = 0;
let seq = 0;
let flushScheduled = false;

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(() => {
    flushScheduled = false;
    for (const [w, list] of outboxes) {
      if (list.length) w.write({ kind: { case: "assign", value: { assignments: list.map((p) => ({ taskId: p.id, epoch: 1n, type: p.type, payload: p.payload, attempt: 1 })) } } } as never);
      outboxes.set(w, []);
    }
    const batches = resultBatches;
    resultBatches = new Map();
    for (const [clientId, results] of batches) subscribers.get(clientId)?.write({ results });
  });
}

const server = new grpc.Server();
addService(server, TaskService, {
  submitTaskStream: (call) => {
    call.on("data", (req: { batchId: bigint; clientId: string; specs: { payload: Uint8Array; type: string }[] }) => {
      const ids = req.specs.map((spec) => {
        const id = `r${++seq}`;
        clientOf.set(id, req.clientId);
        const w = workers[next++ % workers.length]!;
        outboxes.get(w)!.push({ id, clientId: req.clientId, payload: spec.payload, type: spec.type });
        return id;
      });
      scheduleFlush();
      call.write({ batchId: req.batchId, taskIds: ids });
    });
    call.on("end", () => call.end());
    call.on("error", () => {});
  },
  subscribeResults: (call) => {
    subscribers.set(call.request.clientId, call as never);
    call.write({ results: [] });
  },
  submitTask: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  submitTasks: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  getTask: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  watchTask: (call) => call.end(),
  cancelTask: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  retryTasks: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  cancelTasks: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  listTasks: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
  submitFlow: (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
});
addService(server, WorkerService, {
  session: (call) => {
    call.on("data", (msg: SessionRequest) => {
      if (msg.kind.case === "hello") {
        workers.push(call);
        outboxes.set(call, []);
        call.write({ kind: { case: "welcome", value: { workerId: msg.kind.value.workerId, heartbeatIntervalMs: 500 } } } as never);
        if (workers.length === 2) process.stdout.write(`relay ready on ${port}\n`);
      } else if (msg.kind.case === "heartbeat") {
        for (const r of msg.kind.value.results) {
          const clientId = clientOf.get(r.taskId) ?? "";
          clientOf.delete(r.taskId);
          let list = resultBatches.get(clientId);
          if (!list) resultBatches.set(clientId, (list = []));
          list.push({ taskId: r.taskId, state: 4, result: r.result, error: r.error, attempt: 1, workerId: "" });
        }
        scheduleFlush();
      }
    });
    call.on("error", () => {});
  },
});

const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
const workerFile = fileURLToPath(new URL("./raw-worker.js", import.meta.url));
const children = [0, 1].map((i) => fork(workerFile, [`127.0.0.1:${port}`, `raw-${i}`], { stdio: "inherit" }));
process.on("SIGTERM", () => {
  for (const c of children) c.kill("SIGTERM");
  server.forceShutdown();
  process.exit(0);
});
