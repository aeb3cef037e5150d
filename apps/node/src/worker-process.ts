/**
 * One worker process: loads the handlers module named in config and runs a TaskflowWorker.
 * Started by the worker role (worker-node.ts) with its options in TASKFLOW_WORKER, or as a standby
 * (TASKFLOW_WORKER_STANDBY) that loads everything and then waits for its options over IPC; SIGTERM
 * drains it (running tasks finish, no new ones start), then it exits 0.
 */
import { readFileSync } from "node:fs";
import { TaskflowWorker, type HeldResult, type WorkerHooks } from "@taskflow/client";
import { loadHandlers } from "./handlers.js";
import { createLogger, type LogFormat } from "./logger.js";
import { answerStats } from "./worker-stats.js";
import { readRescueFile, removeRescueFile } from "./stall-mirror.js";
import { startWatchdog } from "./watchdog.js";

export interface WorkerProcessOptions {
  address: string;
  workerId: string;
  slots: number;
  prefetch: number;
  drainTimeoutMs: number;
  labels: Record<string, string>;
  /** Absolute path of the handlers module, or undefined for the built-in examples. */
  handlers: string | undefined;
  logLevel: string;
  logFormat: LogFormat;
  /** `worker.stallTimeoutMs`: the watchdog replaces a process whose event loop is stuck this long. */
  stallTimeoutMs: number;
  /** `worker.abortGraceMs`: a handler still running this long after its abort costs the process. */
  abortGraceMs: number;
  /** Where this worker ID's watchdog leaves rescued results for the process that replaces it. */
  rescueFile: string;
  /** The worker token (`worker.token`, `worker.tokenFile` or TASKFLOW_WORKER_TOKEN). */
  token?: string;
  /** TLS to the control node: absolute PEM paths of the CA and, for mTLS, this node's certificate and key. */
  tls?: { ca: string | undefined; cert: string | undefined; key: string | undefined };
}

/** Exit code of a process that asks to be replaced (EX_TEMPFAIL): the worker role starts a new one. */
const EXIT_REPLACE = 75;

/** What a standby process gets in TASKFLOW_WORKER_STANDBY: enough to load everything ahead. */
export interface StandbyOptions {
  handlers: string | undefined;
}

/** This process's options: from the environment, or, for a standby, from the start message. */
async function identity(): Promise<WorkerProcessOptions> {
  const given = process.env["TASKFLOW_WORKER"];
  if (given) return JSON.parse(given) as WorkerProcessOptions;
  const standby = JSON.parse(process.env["TASKFLOW_WORKER_STANDBY"] ?? "{}") as StandbyOptions;
  await loadHandlers(standby.handlers);
  return new Promise((resolve) => {
    const orphaned = () => process.exit(0);
    const onMessage = (msg: { kind?: string; options?: WorkerProcessOptions }) => {
      if (msg?.kind !== "start" || !msg.options) return;
      process.off("message", onMessage);
      process.off("disconnect", orphaned);
      resolve(msg.options);
    };
    process.on("message", onMessage);
    process.on("disconnect", orphaned);
    process.send?.({ kind: "standby" });
  });
}

async function main(): Promise<void> {
  const options = await identity();
  const logger = createLogger(options.logLevel, { role: "worker", workerId: options.workerId }, options.logFormat);
  const handlers = await loadHandlers(options.handlers);
  const rescued = rescuedResults(options, logger);
  const watchdog = startWatchdog(options);
  let replace: (taskId: string, type: string, graceMs: number) => void = () => {};
  const hooks: WorkerHooks = {
    ...(rescued.length ? forgetRescueWhenStored(watchdog.hooks, rescued, options.rescueFile) : watchdog.hooks),
    handlerIgnoredAbort: (taskId, type, graceMs) => replace(taskId, type, graceMs),
  };
  const worker = new TaskflowWorker({
    heldResults: rescued,
    abortGraceMs: options.abortGraceMs,
    hooks,
    address: options.address,
    ...(options.token !== undefined && { token: options.token }),
    ...(options.tls && { tls: readTls(options.tls) }),
    workerId: options.workerId,
    slots: options.slots,
    prefetch: options.prefetch,
    labels: options.labels,
    handlers,
    onLog: (level, message, fields) => logger[level](fields ?? {}, message),
  });
  answerStats(worker, options.workerId, options.slots);
  let exiting = false;
  let exitCode = 0;
  const shutdown = async (signal: string, code = 0) => {
    if (exiting) return;
    exiting = true;
    exitCode = code;
    logger.info({ signal, running: worker.runningCount, timeoutMs: options.drainTimeoutMs }, "draining: finishing running tasks");
    const timer = setTimeout(() => {
      logger.warn({ running: worker.runningCount }, "drain timed out; stopping the tasks still running (they run again elsewhere)");
      void worker.stop().then(() => process.exit(exitCode));
    }, options.drainTimeoutMs);
    await worker.drain();
    clearTimeout(timer);
    process.exit(exitCode);
  };
  // A handler that ignores its abort keeps whatever it holds (timers, sockets, CPU) for ever: the
  // process takes no new work, lets its other tasks finish, and exits to be replaced.
  replace = (taskId, type, graceMs) => {
    logger.error({ taskId, type, graceMs }, "a handler ignored its abort signal; replacing this worker process once its other tasks finish");
    void shutdown("handler ignored its abort", EXIT_REPLACE);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // If the node process that started this one is gone, there is no one left to supervise it.
  process.on("disconnect", () => void shutdown("parent exited"));
  await worker.start();
  logger.info({ address: options.address, slots: options.slots, types: Object.keys(handlers) }, "worker connected");
  process.send?.({ kind: "ready", workerId: options.workerId });
  await worker.drained;
  process.exit(exitCode);
}

function readTls(paths: NonNullable<WorkerProcessOptions["tls"]>): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (p: string | undefined) => (p === undefined ? undefined : readFileSync(p));
  const ca = read(paths.ca);
  const cert = read(paths.cert);
  const key = read(paths.key);
  return { ...(ca && { ca }), ...(cert && key && { cert, key }) };
}

/** Results the watchdog of the process this one replaces saved; the file is left until they are stored. */
function rescuedResults(options: WorkerProcessOptions, logger: ReturnType<typeof createLogger>): HeldResult[] {
  let rescued: HeldResult[];
  try {
    rescued = readRescueFile(options.rescueFile, options.workerId);
  } catch (err) {
    logger.warn({ rescueFile: options.rescueFile, error: (err as Error).message }, "unreadable rescue file ignored; its tasks run again");
    removeRescueFile(options.rescueFile);
    return [];
  }
  if (rescued.length) {
    logger.warn({ results: rescued.length, rescueFile: options.rescueFile }, "handing over results rescued from the worker process this one replaces");
  } else {
    removeRescueFile(options.rescueFile);
  }
  return rescued;
}

/** The watchdog's hooks, plus: delete the rescue file once everything in it is stored. */
function forgetRescueWhenStored(hooks: WorkerHooks, rescued: readonly HeldResult[], file: string): WorkerHooks {
  const open = new Set(rescued);
  return {
    ...hooks,
    resultsStored(results) {
      hooks.resultsStored?.(results);
      if (open.size === 0) return;
      for (const r of results) open.delete(r);
      if (open.size === 0) removeRescueFile(file);
    },
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`taskflow worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(78);
});
