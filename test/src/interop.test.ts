/**
 * A client built with a second, independent gRPC implementation (connect-es's gRPC transport)
 * from the proto contract alone submits tasks and awaits their results.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createRequire } from "node:module";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { TaskService, TaskState } from "@taskflow/proto";
import { startNode, type StartedNode } from "./harness.js";

describe("interop: a connect-node gRPC client", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1 } });
  });
  after(async () => {
    await node.stop();
  });

  it("submits tasks, streams their results and reads them by ID", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${node.address}` });
    const client = createClient(TaskService, transport);
    const clientId = "connect-client";
    const results = client.subscribeResults({ clientId });
    const iterator = results[Symbol.asyncIterator]();
    const first = await iterator.next(); // the subscription is live
    assert.equal(first.value?.results.length, 0);

    const encoder = new TextEncoder();
    const { taskIds } = await client.submitTasks({
      clientId,
      specs: [1, 2, 3].map((n) => ({ type: "echo", payload: encoder.encode(JSON.stringify({ n })) })),
    });
    assert.equal(taskIds.length, 3);
    const got = new Map<string, string>();
    while (got.size < 3) {
      const next = await iterator.next();
      assert.ok(!next.done);
      for (const r of next.value.results) got.set(r.taskId, new TextDecoder().decode(r.result));
    }
    assert.deepEqual(taskIds.map((id) => JSON.parse(got.get(id)!)), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await iterator.return?.();

    const { task } = await client.getTask({ taskId: taskIds[0]! });
    assert.equal(task?.state, TaskState.SUCCEEDED);
    const single = await client.submitTask({ spec: { type: "echo", payload: encoder.encode('"x"') } });
    const watched = [];
    for await (const msg of client.watchTask({ taskId: single.taskId })) watched.push(msg.task?.state);
    assert.equal(watched.at(-1), TaskState.SUCCEEDED);
  });
});

describe("standard gRPC services: health and reflection", () => {
  let node: StartedNode;
  before(async () => {
    node = await startNode({ roles: ["control"] });
  });
  after(async () => {
    await node.stop();
  });

  it("answers grpc.health.v1.Health Check with SERVING", async () => {
    const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, "Health");
    const health = new Health(node.address, grpc.credentials.createInsecure()) as unknown as {
      check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string | number }) => void): void;
      close(): void;
    };
    try {
      for (const service of ["", "taskflow.v1.TaskService", "taskflow.v1.WorkerService", "taskflow.v1.ClusterService", "taskflow.v1.ScheduleService"]) {
        const res = await new Promise<{ status: string | number }>((resolve, reject) => health.check({ service }, (err, r) => (err ? reject(err) : resolve(r))));
        assert.ok(res.status === "SERVING" || res.status === 1, `${service || "(server)"}: ${res.status}`);
      }
    } finally {
      health.close();
    }
  });

  it("lists Taskflow's services through server reflection", async () => {
    const require = createRequire(import.meta.url);
    const protoPath = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build/proto/grpc/reflection/v1/reflection.proto");
    const definition = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo(): grpc.ClientDuplexStream<object, { list_services_response?: { service: { name: string }[] } }> } } } };
    };
    const client = new definition.grpc.reflection.v1.ServerReflection(node.address, grpc.credentials.createInsecure());
    try {
      const call = client.serverReflectionInfo();
      const reply = new Promise<{ list_services_response?: { service: { name: string }[] } }>((resolve, reject) => {
        call.once("data", resolve);
        call.once("error", reject);
      });
      call.write({ list_services: "*" });
      const names = (await reply).list_services_response!.service.map((s) => s.name);
      call.end();
      for (const name of ["taskflow.v1.TaskService", "taskflow.v1.WorkerService", "taskflow.v1.ClusterService", "taskflow.v1.ScheduleService"]) assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    } finally {
      client.close();
    }
  });
});
