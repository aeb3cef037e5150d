/**
 * Assembles monitoring for a node: the Prometheus endpoint (control and/or worker metrics in one
 * registry), the control role's dashboard, and debug-level task transition logs.
 */
import type { ControlNode } from "./control.js";
import type { WorkerNode } from "./worker-node.js";
import type { Logger, TaskflowConfig } from "@taskflow/core";
import {
  DashboardServer,
  logTaskTransitions,
  registerControlMetrics,
  registerWorkerMetrics,
  serveMetrics,
  type ControlMetrics,
  type HttpListener,
} from "@taskflow/monitoring";
import { collectDefaultMetrics, Registry } from "prom-client";
import { Authenticator } from "@taskflow/services/auth";
import type { HttpSecurity } from "@taskflow/monitoring";
import { loadTls, loadTokens } from "./security.js";

export interface NodeMonitoring {
  /** `http://host:port/metrics`, when metrics are on. */
  readonly metricsUrl: string | undefined;
  /** `http://host:port/`, when the dashboard is on (control role only). */
  readonly dashboardUrl: string | undefined;
  stop(): Promise<void>;
}

/** HTTPS with the node's certificate, and its tokens for the ports bound beyond loopback. */
function httpSecurity(config: TaskflowConfig, baseDir: string, control: ControlNode | undefined): HttpSecurity {
  const tls = loadTls(config, baseDir);
  const auth = control ? control.auth : new Authenticator(loadTokens(config, baseDir));
  return {
    ...(tls && { tls: { cert: tls.cert, key: tls.key } }),
    ...(auth.enabled && { roleOf: (token: string) => auth.verify(token)?.role }),
  };
}

export async function startMonitoring(
  config: TaskflowConfig,
  baseDir: string,
  control: ControlNode | undefined,
  workers: WorkerNode | undefined,
  logger: Logger,
): Promise<NodeMonitoring> {
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s();
  };
  try {
    const view = control?.view;
    const security = httpSecurity(config, baseDir, control);
    const bus = control?.events;
    if (bus && (config.log.level === "debug" || config.log.level === "trace")) stops.push(logTaskTransitions(bus, logger.child({ role: "control" })));

    let metrics: HttpListener | undefined;
    let controlMetrics: ControlMetrics | undefined;
    if (config.metrics.enabled) {
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      if (view && bus) {
        controlMetrics = registerControlMetrics(registry, view, bus, { maxWorkerSeries: config.metrics.maxWorkerSeries });
        stops.push(() => controlMetrics!.close());
      }
      if (workers) registerWorkerMetrics(registry, () => workers.stats());
      metrics = await serveMetrics(registry, config.metrics.host, config.metrics.port, { ...security, allowedHosts: config.metrics.allowedHosts });
      stops.push(() => metrics!.close());
    }

    let dashboard: DashboardServer | undefined;
    if (view && bus && config.dashboard.enabled) {
      const { dashboardDir } = await import("@taskflow/dashboard");
      dashboard = new DashboardServer(view, bus, {
        host: config.dashboard.host,
        port: config.dashboard.port,
        historyMinutes: config.dashboard.historyMinutes,
        maxWorkersListed: config.dashboard.maxWorkersListed,
        allowedHosts: config.dashboard.allowedHosts,
        staticDir: dashboardDir,
        logger: logger.child({ role: "dashboard" }),
        ...(controlMetrics && { tally: controlMetrics.tally }),
        security,
      });
      await dashboard.start();
      stops.push(() => dashboard!.close());
    }
    if (metrics || dashboard) logger.info({ metrics: metrics && `${metrics.url}/metrics`, dashboard: dashboard && `${dashboard.url}/` }, "monitoring listening");
    return {
      metricsUrl: metrics && `${metrics.url}/metrics`,
      dashboardUrl: dashboard && `${dashboard.url}/`,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
