/** The writer thread: owns the writing connection and applies what the main thread sends, in order. */
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import { openConnection } from "./connection.js";
import type { FromWriter, ToWriter, WriterThreadData } from "./writer.js";
import { decodeGroup, failure, prepareWrites, type Writes } from "./writes.js";

const port = parentPort!;
const { path, synchronous } = workerData as WriterThreadData;
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

port.on("message", (msg: ToWriter) => {
  if (msg.kind === "close") {
    db?.close();
    port.close();
    return;
  }
  try {
    const result =
      msg.kind === "commit" ? writes.commitGroup(decodeGroup(msg.group)) : msg.kind === "schedule" ? writes.schedule(msg.write) : writes.purge(msg.beforeMs);
    send({ kind: "done", id: msg.id, result });
  } catch (err) {
    send({ kind: "error", id: msg.id, failure: failure(err) });
  }
});
