/**
 * The checkpoint thread: copies the WAL back into the database file on its own connection, so
 * the fsyncs a checkpoint needs never sit inside a commit (ADR 0033).
 */
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { CheckpointerData, FromCheckpointer, ToCheckpointer } from "./checkpointer.js";
import { openConnection } from "./connection.js";
import { wallNow } from "./trace.js";
import { failure } from "./writes.js";

const port = parentPort!;
const { path, synchronous, intervalMs, catchUpFrames, catchUpDelayMs, restartFrames, retryDelayMs, trace } = workerData as CheckpointerData;
const send = (msg: FromCheckpointer) => port.postMessage(msg);

let db: Database.Database | undefined;
let timer: NodeJS.Timeout | undefined;
/** Set while passes fail; the first pass that succeeds again says so. */
let failing = false;

/**
 * One PASSIVE checkpoint: copies every frame no reader still needs and waits for nobody, so the
 * writer keeps committing meanwhile. The WAL starts over from its beginning only when a write
 * transaction begins with every frame copied, i.e. when no commit landed during the pass (its
 * two fsyncs take milliseconds). So while the WAL is long, passes follow each other closely:
 * each copies only what the last one missed, is shorter, and gives the restart another chance.
 */
function pass(): void {
  const started = trace ? wallNow() : 0;
  let frames = 0;
  try {
    const [row] = db!.pragma("wal_checkpoint(PASSIVE)") as { busy: number; log: number; checkpointed: number }[];
    frames = row?.log ?? 0;
    if ((trace && frames > 0) || frames >= restartFrames) send({ kind: "pass", at: started, ms: wallNow() - started, frames, copied: row!.checkpointed });
  } catch (err) {
    // Most failures pass (a full disk: the database file cannot grow to take the WAL's pages,
    // so the WAL cannot start over either). Say why once per spell and keep trying, more
    // slowly: a thread that stopped here would leave the store checkpointing inside its
    // commits, at the writer's bound, until restarted. Meanwhile that bound still applies.
    if (!failing) send({ kind: "failed", failure: failure(err) });
    failing = true;
    timer = setTimeout(pass, retryDelayMs);
    return;
  }
  if (failing) send({ kind: "recovered" });
  failing = false;
  timer = setTimeout(pass, frames >= catchUpFrames ? catchUpDelayMs : intervalMs);
}

try {
  db = openConnection(path, synchronous);
  timer = setTimeout(pass, intervalMs);
  send({ kind: "ready" });
} catch (err) {
  db?.close();
  send({ kind: "failed", failure: failure(err) });
  port.close();
}

port.on("message", (msg: ToCheckpointer) => {
  if (msg.kind !== "close") return;
  clearTimeout(timer);
  db?.close();
  port.close();
});
