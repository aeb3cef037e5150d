/**
 * `npm run bench:rtt -w @taskflow/e2e`: the latency floor under Taskflow's p50. A bare grpc-js
 * bidi stream between two processes echoes one small message at a time, with an idle gap before
 * each, over TCP loopback and over a Unix socket. A task crosses two such round trips (client ↔
 * control, control ↔ worker). The gap matters: a process idle for a while sits on a halted vCPU
 * that takes time to wake, so a round trip every 2 ms (the pacing of `npm run bench`'s 500
 * tasks/s) costs more than one every 1 ms. Prints JSON.
 */
import { fork } from "node:child_process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";

const ROUND_TRIPS = Number(process.env["BENCH_RTT_ROUND_TRIPS"] ?? 2000);
/** Idle gaps before each message, in ms: 2 is the pacing of the 500 tasks/s latency run. */
const GAPS_MS = [1, 2, 10];

const same = (b: Buffer) => b;
const definition: grpc.ServiceDefinition = {
  echo: {
    path: "/bench.Echo/Echo",
    requestStream: true,
    responseStream: true,
    requestSerialize: same,
    requestDeserialize: same,
    responseSerialize: same,
    responseDeserialize: same,
  },
};

function serve(address: string): void {
  const server = new grpc.Server();
  server.addService(definition, {
    // Answer from setImmediate, as the control node and workers answer from their flush.
    echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => call.on("data", (b: Buffer) => setImmediate(() => call.write(b))),
  });
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send!(port);
  });
}

async function measure(kind: "tcp" | "unix", gapMs: number): Promise<{ gapMs: number; p50Ms: number; p90Ms: number; p99Ms: number }> {
  const socket = join(tmpdir(), `taskflow-rtt-${process.pid}.sock`);
  const bind = kind === "unix" ? `unix:${socket}` : "127.0.0.1:0";
  const child = fork(fileURLToPath(import.meta.url), ["--serve", bind], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (p) => resolve(p as number));
      child.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
    });
    const Client = grpc.makeGenericClientConstructor(definition, "Echo");
    const client = new Client(kind === "unix" ? bind : `127.0.0.1:${port}`, grpc.credentials.createInsecure(), { "grpc.per_rpc_retry_buffer_size": 0 });
    const call = (client as unknown as { echo(): grpc.ClientDuplexStream<Buffer, Buffer> }).echo();
    call.on("error", () => {});
    const samples: number[] = [];
    // Fewer round trips at long gaps: the percentiles settle long before. The first ones warm up.
    const wanted = Math.min(ROUND_TRIPS, Math.ceil(10_000 / gapMs));
    const warmUp = Math.min(200, wanted);
    const message = Buffer.from("ping");
    await new Promise<void>((resolve) => {
      let sentAt = 0;
      const send = () => {
        sentAt = performance.now();
        call.write(message);
      };
      call.on("data", () => {
        samples.push(performance.now() - sentAt);
        if (samples.length === wanted + warmUp) resolve();
        else setTimeout(send, gapMs);
      });
      send();
    });
    call.end();
    client.close();
    const warm = samples.slice(warmUp).sort((a, b) => a - b);
    const at = (q: number) => Math.round(warm[Math.floor(q * warm.length)]! * 1000) / 1000;
    return { gapMs, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99) };
  } finally {
    child.kill();
    rmSync(socket, { force: true });
  }
}

const serveAt = process.argv.indexOf("--serve");
if (serveAt >= 0) {
  serve(process.argv[serveAt + 1]!);
} else {
  const tcp = [];
  const unix = [];
  for (const gap of GAPS_MS) {
    process.stderr.write(`[bench:rtt] round trips after ${gap} ms idle: TCP, then a Unix socket\n`);
    tcp.push(await measure("tcp", gap));
    unix.push(await measure("unix", gap));
  }
  const at2 = (rows: { gapMs: number; p50Ms: number }[]) => Math.round(rows.find((r) => r.gapMs === 2)!.p50Ms * 2 * 1000) / 1000;
  const out = {
    what: "bare grpc-js bidi round trip between two processes, one message at a time, idle gap before each",
    maxRoundTrips: ROUND_TRIPS,
    tcpLoopback: tcp,
    unixSocket: unix,
    twoRoundTripsP50MsAt2msGap: { tcp: at2(tcp), unix: at2(unix) },
    note: "a task crosses two round trips (client-control, control-worker); npm run bench paces its latency run at 2 ms",
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
