/** The baseline's worker: answers every assignment at once with its payload, batched per tick. */
import { WorkerService, type SessionResponse } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";

const [address, workerId] = process.argv.slice(2) as [string, string];
const client = createClient(WorkerService, address);
const session = client.session();
let results: { taskId: string; epoch: bigint; ok: boolean; result: Uint8Array; error: string }[] = [];
let scheduled = false;
session.on("data", (msg: SessionResponse) => {
  if (msg.kind.case !== "assign") return;
  for (const a of msg.kind.value.assignments) results.push({ taskId: a.taskId, epoch: a.epoch, ok: true, result: a.payload, error: "" });
  if (!scheduled) {
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      session.write({ kind: { case: "heartbeat", value: { running: 0, results } } });
      results = [];
    });
  }
});
session.on("error", () => process.exit(0));
session.write({ kind: { case: "hello", value: { workerId, slots: 1000, taskTypes: ["noop"] } } });
process.on("SIGTERM", () => process.exit(0));
