/** The writer thread: owns the writing connection and applies what the main thread sends, in order. */
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import { openConnection } from "./connection.js";
import { wallNow } from "./trace.js";
import type { FromWriter, ToWriter, WriterThreadData } from "./writer.js";
import { decodeGroup, failure, prepareWrites, type GroupResult, type Writes } from "./writes.js";

const port = parentPort!;
const { path, synchronous, trace } = workerData as WriterThreadData;
const send = (msg: FromWriter) => port.postMessage(msg);

let db: Database.Database | undefined;
let writes: Writes;
try {
  db = openConnection(path, synchronous);
  writes = prepareWrites(db);
  send({ kind: "ready" });
} catch (err) {
  db?.close();
  send({ kind: "failed", failure: failure(err) });
  port.close();
}

/** The WAL header's first salt, which SQLite changes each time it starts the WAL over. */
const walHeader = Buffer.alloc(32);
let walSalt = -1;
function walStartedOver(): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(`${path}-wal`, "r");
    if (readSync(fd, walHeader, 0, 32, 0) < 32) return false;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const salt = walHeader.readUInt32BE(16);
  const changed = walSalt !== -1 && salt !== walSalt;
  walSalt = salt;
  return changed;
}

function commitTraced(msg: Extract<ToWriter, { kind: "commit" }>): GroupResult {
  const receivedAt = wallNow();
  const result = writes.commitGroup(decodeGroup(msg.group));
  result.timing = { receivedAt, commitMs: wallNow() - receivedAt, walReset: walStartedOver() };
  return result;
}

function checkpoint(): number {
  db!.pragma("wal_checkpoint(PASSIVE)");
  return 0;
}

port.on("message", (msg: ToWriter) => {
  if (msg.kind === "close") {
    db?.close();
    port.close();
    return;
  }
  try {
    const result =
      msg.kind === "commit"
        ? trace
          ? commitTraced(msg)
          : writes.commitGroup(decodeGroup(msg.group))
        : msg.kind === "schedule"
          ? writes.schedule(msg.write)
          : msg.kind === "checkpoint"
            ? checkpoint()
            : writes.purge(msg.beforeMs);
    send({ kind: "done", id: msg.id, result });
  } catch (err) {
    send({ kind: "error", id: msg.id, failure: failure(err) });
  }
});
