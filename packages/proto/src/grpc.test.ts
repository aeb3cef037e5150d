import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { GetTaskRequestSchema, TaskService, WorkerService, type GetTaskRequest, type SessionRequest, type WatchTaskRequest } from "./index.js";
import { addService, createClient, grpcServiceDefinition } from "./grpc.js";

describe("grpcServiceDefinition", () => {
  it("maps every method to its path and stream flags", () => {
    const def = grpcServiceDefinition(TaskService);
    assert.equal(def["getTask"]!.path, "/taskflow.v1.TaskService/GetTask");
    assert.equal(def["getTask"]!.requestStream, false);
    assert.equal(def["watchTask"]!.responseStream, true);
    assert.equal(def["submitTaskStream"]!.requestStream, true);
    assert.equal(def["submitTaskStream"]!.responseStream, true);
    assert.equal(Object.keys(def).length, TaskService.methods.length);
  });

  it("serialises messages and plain init objects alike, as Buffers", () => {
    const def = grpcServiceDefinition(TaskService);
    const fromMessage = def["getTask"]!.requestSerialize(create(GetTaskRequestSchema, { taskId: "a" }));
    const fromInit = def["getTask"]!.requestSerialize({ taskId: "a" });
    assert.ok(Buffer.isBuffer(fromInit));
    assert.deepEqual(fromInit, fromMessage);
    assert.equal((def["getTask"]!.requestDeserialize(fromInit) as { taskId: string }).taskId, "a");
  });
});

describe("addService and createClient over a real socket", () => {
  const server = new grpc.Server();
  let address = "";
  before(async () => {
    addService(server, TaskService, {
      getTask: (call: grpc.ServerUnaryCall<GetTaskRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => (call.request.taskId === "missing" ? cb({ code: grpc.status.NOT_FOUND, details: "nope" }) : cb(null, { task: { id: call.request.taskId } })),
      watchTask: (call: grpc.ServerWritableStream<WatchTaskRequest, unknown>) => {
        for (const id of ["1", "2", "3"]) call.write({ task: { id } });
        call.end();
      },
    } as never);
    addService(server, WorkerService, {
      session: (call) => {
        call.on("data", (msg: SessionRequest) => {
          if (msg.kind.case === "hello") call.write({ kind: { case: "welcome", value: { workerId: msg.kind.value.workerId, heartbeatIntervalMs: 7 } } });
        });
        call.on("end", () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  it("lets go of a call's signal when the call ends: a shared signal keeps no listener per finished call", async () => {
    const client = createClient(TaskService, address);
    const shared = new AbortController().signal;
    try {
      for (let i = 0; i < 20; i++) await client.getTask({ taskId: `t${i}` }, { signal: shared });
      await assert.rejects(client.getTask({ taskId: "missing" }, { signal: shared }));
      const watch = client.watchTask({ taskId: "w" }, { signal: shared });
      for await (const _ of watch as AsyncIterable<unknown>) void _;
      await new Promise((r) => setImmediate(r));
      assert.equal(getEventListeners(shared, "abort").length, 0);
    } finally {
      (client.raw as grpc.Client).close();
    }
  });

  it("makes unary calls that resolve, and reject with the status", async () => {
    const client = createClient(TaskService, address);
    try {
      assert.equal((await client.getTask({ taskId: "x" })).task?.id, "x");
      await assert.rejects(client.getTask({ taskId: "missing" }), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND && err.details === "nope");
    } finally {
      client.raw.close();
    }
  });

  it("reads server streams and runs bidirectional sessions", async () => {
    const client = createClient(TaskService, address);
    const workers = createClient(WorkerService, address);
    try {
      const ids: string[] = [];
      for await (const msg of client.watchTask({ taskId: "x" })) ids.push((msg as { task: { id: string } }).task.id);
      assert.deepEqual(ids, ["1", "2", "3"]);
      const session = workers.session();
      session.on("error", () => {});
      const welcome = new Promise<unknown>((resolve) => session.once("data", resolve));
      session.write({ kind: { case: "hello", value: { workerId: "w1" } } });
      const msg = (await welcome) as { kind: { case: string; value: { workerId: string; heartbeatIntervalMs: number } } };
      assert.equal(msg.kind.case, "welcome");
      assert.equal(msg.kind.value.workerId, "w1");
      assert.equal(msg.kind.value.heartbeatIntervalMs, 7);
      const closed = new Promise((resolve) => session.on("close", resolve));
      session.end();
      await closed;
    } finally {
      client.raw.close();
      workers.raw.close();
    }
  });
});
