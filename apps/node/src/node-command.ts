/** `taskflow node`: runs the roles the config names, until SIGTERM/SIGINT. */
// Before anything that loads tsyringe (the control plane, and the services monitoring uses).
import "reflect-metadata";
import { DEFAULT_CONTROL_ADDRESS } from "@taskflow/core";
import { loadConfigFile } from "./config-file.js";
import { startControl, type ControlNode } from "./control.js";
import { EXIT_LOST_LEADERSHIP, startHaControl, type HaControl } from "./ha.js";
import { createLogger } from "./logger.js";
import { startWorkers, type WorkerNode } from "./worker-node.js";
import { startMonitoring, type NodeMonitoring } from "./monitoring.js";

export interface RunningNode {
  /** The control plane; with `ha.enabled`, only once this node was elected at start-up (see `ha`). */
  control: ControlNode | undefined;
  /** With `ha.enabled`: the election, the standby port, and the control plane once elected. */
  ha: HaControl | undefined;
  workers: WorkerNode | undefined;
  monitoring: NodeMonitoring;
  stop(): Promise<void>;
}

export async function runNode(configPath: string | undefined): Promise<RunningNode> {
  const { config, baseDir, file } = loadConfigFile(configPath);
  const logger = createLogger(config.log.level, {}, config.log.format);
  logger.info({ config: file ?? "(defaults)", roles: config.roles }, "starting taskflow node");
  let control: ControlNode | undefined;
  let ha: HaControl | undefined;
  let workers: WorkerNode | undefined;
  let monitoring: NodeMonitoring | undefined;
  /** Elected before monitoring started: attached once it has. */
  let electedEarly: { control: ControlNode; epoch: number } | undefined;
  // An elected standby serves metrics and the dashboard as a node that led from the start does.
  const leading = async (elected: ControlNode, epoch: number, on: NodeMonitoring) => {
    await on.attachControl(elected).catch((err: unknown) => logger.error({ err }, "elected, but its control metrics or dashboard did not start"));
    const extras = on.dashboardUrl ? ` dashboard ${on.dashboardUrl}` : "";
    process.stdout.write(`taskflow node leading on ${config.control.host}:${ha?.port ?? config.control.port} epoch ${epoch}${extras}\n`);
  };
  if (config.roles.includes("control") && config.ha.enabled) {
    ha = await startHaControl(config, baseDir, logger.child({ role: "control" }), {
      elected: (elected, epoch) => {
        if (monitoring) void leading(elected, epoch, monitoring);
        else electedEarly = { control: elected, epoch };
      },
      // A deposed leader stops at once: its supervisor starts it again, as a standby (ADR 0028).
      lost: () => process.exit(EXIT_LOST_LEADERSHIP),
    });
  } else if (config.roles.includes("control")) {
    control = await startControl(config, baseDir, logger.child({ role: "control" }));
  }
  const controlPort = control?.port ?? ha?.port;
  if (config.roles.includes("worker")) {
    const address =
      config.worker.controlAddress ?? (controlPort !== undefined ? `${connectHost(config.control.host)}:${controlPort}` : DEFAULT_CONTROL_ADDRESS);
    workers = await startWorkers(config, baseDir, address, logger.child({ role: "worker" }));
    await workers.ready;
    logger.info({ processes: config.worker.processes, slots: config.worker.slots, control: address }, "worker processes running");
  }
  try {
    monitoring = await startMonitoring(config, baseDir, control, workers, logger);
    if (electedEarly) await leading(electedEarly.control, electedEarly.epoch, monitoring);
  } catch (err) {
    await workers?.stop();
    await control?.stop();
    await ha?.stop();
    throw err;
  }
  // A line on stdout that scripts and tests can wait for; monitoring addresses follow the control address.
  const extras = `${monitoring.metricsUrl ? ` metrics ${monitoring.metricsUrl}` : ""}${monitoring.dashboardUrl ? ` dashboard ${monitoring.dashboardUrl}` : ""}`;
  const role = ha ? ` (${ha.leadership().role})` : "";
  process.stdout.write(`taskflow node ready${controlPort !== undefined ? ` on ${config.control.host}:${controlPort}` : ""}${extras}${role}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info("shutting down: draining workers, then the control node");
      await monitoring?.stop();
      await workers?.stop();
      await control?.stop();
      await ha?.stop();
      logger.info("stopped");
    })());
  return { control, ha, workers, monitoring, stop };
}

/** Where a local worker reaches a control node bound to `host`. */
function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
