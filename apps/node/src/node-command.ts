/** `taskflow node`: runs the roles the config names, until SIGTERM/SIGINT. */
// Before anything that loads tsyringe (the control plane, and the services monitoring uses).
import "reflect-metadata";
import { DEFAULT_CONTROL_ADDRESS } from "@taskflow/core";
import { loadConfigFile } from "./config-file.js";
import { startControl, type ControlNode } from "./control.js";
import { createLogger } from "./logger.js";
import { startWorkers, type WorkerNode } from "./worker-node.js";
import { startMonitoring, type NodeMonitoring } from "./monitoring.js";

export interface RunningNode {
  control: ControlNode | undefined;
  workers: WorkerNode | undefined;
  monitoring: NodeMonitoring;
  stop(): Promise<void>;
}

export async function runNode(configPath: string | undefined): Promise<RunningNode> {
  const { config, baseDir, file } = loadConfigFile(configPath);
  const logger = createLogger(config.log.level, {}, config.log.format);
  logger.info({ config: file ?? "(defaults)", roles: config.roles }, "starting taskflow node");
  let control: ControlNode | undefined;
  let workers: WorkerNode | undefined;
  if (config.roles.includes("control")) control = await startControl(config, baseDir, logger.child({ role: "control" }));
  if (config.roles.includes("worker")) {
    const address =
      config.worker.controlAddress ?? (control ? `${connectHost(config.control.host)}:${control.port}` : DEFAULT_CONTROL_ADDRESS);
    workers = await startWorkers(config, baseDir, address, logger.child({ role: "worker" }));
    await workers.ready;
    logger.info({ processes: config.worker.processes, slots: config.worker.slots, control: address }, "worker processes running");
  }
  let monitoring: NodeMonitoring | undefined;
  try {
    monitoring = await startMonitoring(config, baseDir, control, workers, logger);
  } catch (err) {
    await workers?.stop();
    await control?.stop();
    throw err;
  }
  // A line on stdout that scripts and tests can wait for; monitoring addresses follow the control address.
  const extras = `${monitoring.metricsUrl ? ` metrics ${monitoring.metricsUrl}` : ""}${monitoring.dashboardUrl ? ` dashboard ${monitoring.dashboardUrl}` : ""}`;
  process.stdout.write(`taskflow node ready${control ? ` on ${config.control.host}:${control.port}` : ""}${extras}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info("shutting down: draining workers, then the control node");
      await monitoring?.stop();
      await workers?.stop();
      await control?.stop();
      logger.info("stopped");
    })());
  return { control, workers, monitoring, stop };
}

/** Where a local worker reaches a control node bound to `host`. */
function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
