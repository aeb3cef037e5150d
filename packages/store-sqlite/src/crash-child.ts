/**
 * The process the crash test kills: it writes tasks through SqliteTaskStore as fast as it can
 * and prints a line for every acknowledged write, so the test knows what must survive.
 *
 *   node crash-child.js <db path> <normal|full> <thread|inline>
 *
 * Prints `ready <maxSeq>` once open, then `ins <firstSeq> <count>` when an insert resolved and
 * `upd <firstSeq> <count>` when the update that marks those tasks running resolved. Writes to a
 * pipe are synchronous on Linux, so a line the parent reads was printed after its write resolved.
 */
import type { TaskRecord } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { SqliteTaskStore } from "./index.js";

const [path, synchronous, writer] = process.argv.slice(2);
if (!path || (synchronous !== "normal" && synchronous !== "full") || (writer !== "thread" && writer !== "inline")) {
  console.error("usage: crash-child.js <db path> <normal|full> <thread|inline>");
  process.exit(2);
}

/** Content derived from the seq, so the test can check the bytes that come back. */
function crashPayload(seq: number): Uint8Array {
  return new Uint8Array(32).map((_, i) => (seq * 31 + i) & 0xff);
}

function record(seq: number): TaskRecord {
  return makeTaskRecord({
    id: `crash-${seq}`,
    seq,
    clientId: "crash",
    type: "crash",
    payload: crashPayload(seq),
    idempotencyKey: `crash-key-${seq}`,
    createdAt: Date.now(),
  });
}

const store = new SqliteTaskStore({ path, synchronous, writer });
await store.open();
let next = (await store.maxSeq()) + 1;
process.stdout.write(`ready ${next - 1}\n`);

const CALLS_PER_TURN = 20;
const TASKS_PER_CALL = 25;

async function writeBatch(): Promise<void> {
  const first = next;
  next += TASKS_PER_CALL;
  const tasks = Array.from({ length: TASKS_PER_CALL }, (_, i) => record(first + i));
  await store.insert(tasks);
  process.stdout.write(`ins ${first} ${TASKS_PER_CALL}\n`);
  const now = Date.now();
  await store.update(tasks.map((t) => ({ ...t, state: "running" as const, attempt: 1, epoch: 1, workerId: "w", assignedAt: now, startedAt: now })));
  process.stdout.write(`upd ${first} ${TASKS_PER_CALL}\n`);
}

// Runs until killed: each turn starts a few calls, which group commit puts in one transaction.
for (;;) {
  await Promise.all(Array.from({ length: CALLS_PER_TURN }, writeBatch));
}
