/**
 * The watchdog thread of a worker process (started by watchdog.ts). It polls the main thread's
 * tick; when the tick has not moved for `stallTimeoutMs`, it writes the held results it finds in
 * shared memory, plus a failed result for the task whose handler is blocking, to the rescue file,
 * says so on stderr, and SIGKILLs its own process. The worker role starts a replacement with the
 * same worker ID, which hands the rescued results to the control node.
 */
import { writeSync } from "node:fs";
import { isatty } from "node:tty";
import { workerData } from "node:worker_threads";
import type { HeldResult } from "@taskflow/client";
import { prettyLine } from "./logger.js";
import { StallReader, writeRescueFile } from "./stall-mirror.js";
import type { WatchdogData } from "./watchdog.js";

const options = workerData as WatchdogData;
const reader = new StallReader(options.shared);
const pollMs = Math.max(10, Math.min(100, Math.floor(options.stallTimeoutMs / 4)));
let lastTick = reader.tick();
let lastMove = performance.now();
let lastPoll = lastMove;

setInterval(() => {
  const now = performance.now();
  // This thread was not scheduled for a while itself (the machine paused or starved it): who
  // stalled cannot be told, so the clock starts again.
  if (now - lastPoll > options.stallTimeoutMs / 2) lastMove = now;
  lastPoll = now;
  const tick = reader.tick();
  if (tick !== lastTick) {
    lastTick = tick;
    lastMove = now;
    return;
  }
  const stalledMs = Math.round(now - lastMove);
  if (stalledMs >= options.stallTimeoutMs) rescue(stalledMs);
}, pollMs);

function rescue(stalledMs: number): never {
  const results: HeldResult[] = reader.results();
  const blocking = reader.current();
  if (blocking) {
    results.push({
      taskId: blocking.taskId,
      epoch: blocking.epoch,
      ok: false,
      result: new Uint8Array(0),
      error: `blocked the event loop for ${stalledMs} ms (worker.stallTimeoutMs is ${options.stallTimeoutMs}); its worker process was replaced`,
    });
  }
  let saved = true;
  try {
    writeRescueFile(options.rescueFile, options.workerId, results);
  } catch (err) {
    saved = false;
    log(50, "could not write the rescue file; the results it held run again", { rescueFile: options.rescueFile, error: (err as Error).message });
  }
  log(50, "a handler blocked the event loop; killing this worker process so that it is replaced", {
    stalledMs,
    blockingTaskId: blocking?.taskId ?? "(unknown: it blocked after an await)",
    rescued: saved ? results.length : 0,
    rescueFile: options.rescueFile,
  });
  process.kill(process.pid, "SIGKILL");
  // SIGKILL is not delivered to a thread on its own: wait for it, never return to the loop.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
}

/** One line on stderr, written synchronously: the main thread, which would relay it, is stuck. */
function log(level: number, msg: string, fields: Record<string, unknown>): void {
  if (options.logLevel === "silent" || options.logLevel === "fatal") return;
  const line = `${JSON.stringify({ level, time: Date.now(), pid: process.pid, role: "worker", workerId: options.workerId, ...fields, msg })}\n`;
  const pretty = options.logFormat === "pretty" || (options.logFormat === "auto" && isatty(2));
  writeSync(2, pretty ? prettyLine(line) : line);
}
