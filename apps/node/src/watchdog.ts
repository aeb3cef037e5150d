/**
 * The watchdog of one worker process: a thread that watches the main thread's event loop and,
 * when a handler blocks it for longer than `worker.stallTimeoutMs`, saves what the process must not
 * lose in a rescue file and kills the process so that the worker role replaces it. See
 * docs/adr/0010-worker-watchdog.md.
 */
import { Worker } from "node:worker_threads";
import type { WorkerHooks } from "@taskflow/client";
import type { LogFormat } from "./logger.js";
import { StallMirror, createSharedState } from "./stall-mirror.js";

/** How often the main thread says it is alive. */
const TICK_MS = 50;

export interface WatchdogOptions {
  workerId: string;
  stallTimeoutMs: number;
  /** Where the watchdog leaves the results it rescues. */
  rescueFile: string;
  logLevel: string;
  logFormat: LogFormat;
}

/** What the watchdog thread gets. */
export interface WatchdogData extends WatchdogOptions {
  shared: SharedArrayBuffer;
}

export interface Watchdog {
  /** For the TaskflowWorker: they keep the watchdog's copy of the running task and held results. */
  hooks: WorkerHooks;
  stop(): Promise<void>;
}

export function startWatchdog(options: WatchdogOptions): Watchdog {
  const shared = createSharedState();
  const mirror = new StallMirror(shared);
  const ticker = setInterval(() => mirror.tick(), TICK_MS);
  ticker.unref();
  const thread = new Worker(new URL("./watchdog-thread.js", import.meta.url), { workerData: { ...options, shared } satisfies WatchdogData });
  thread.unref();
  thread.on("error", (err) => process.stderr.write(`taskflow worker ${options.workerId}: the watchdog thread failed: ${err.message}\n`));
  return {
    hooks: mirror.hooks,
    async stop() {
      clearInterval(ticker);
      await thread.terminate();
    },
  };
}
