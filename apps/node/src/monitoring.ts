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
  /** `http://host:port/`, when the dashboard is on (control role only: a standby's is there once it leads). */
  readonly dashboardUrl: string | undefined;
  /**
   * A standby control node was elected (`ha.enabled`): its control metrics join the metrics
   * endpoint already serving, and its dashboard starts, as on a node that led from the start.
   * Once per node; later calls do nothing.
   */
  attachControl(control: ControlNode): Promise<void>;
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
  let metrics: HttpListener | undefined;
  let registry: Registry | undefined;
  let dashboard: DashboardServer | undefined;
  let attached = false;

  /** What only a control node that leads has: task transition logs, control metrics, the dashboard. */
  async function attach(leading: ControlNode): Promise<void> {
    if (attached) return;
    attached = true;
    const { view, events: bus } = leading;
    if (config.log.level === "debug" || config.log.level === "trace") stops.push(logTaskTransitions(bus, logger.child({ role: "control" })));
    let controlMetrics: ControlMetrics | undefined;
    if (registry) {
      controlMetrics = registerControlMetrics(registry, view, bus, { maxWorkerSeries: config.metrics.maxWorkerSeries });
      stops.push(() => controlMetrics!.close());
    }
    if (config.dashboard.enabled) {
      const { dashboardDir } = await import("@taskflow/dashboard");
      const server = new DashboardServer(view, bus, {
        host: config.dashboard.host,
        port: config.dashboard.port,
        historyMinutes: config.dashboard.historyMinutes,
        maxWorkersListed: config.dashboard.maxWorkersListed,
        allowedHosts: config.dashboard.allowedHosts,
        staticDir: dashboardDir,
        logger: logger.child({ role: "dashboard" }),
        ...(controlMetrics && { tally: controlMetrics.tally }),
        security: httpSecurity(config, baseDir, leading),
      });
      await server.start();
      dashboard = server;
      stops.push(() => server.close());
    }
  }

  try {
    if (config.metrics.enabled) {
      registry = new Registry();
      collectDefaultMetrics({ register: registry });
      if (workers) registerWorkerMetrics(registry, () => workers.stats());
      const security = httpSecurity(config, baseDir, control);
      metrics = await serveMetrics(registry, config.metrics.host, config.metrics.port, { ...security, allowedHosts: config.metrics.allowedHosts });
      stops.push(() => metrics!.close());
    }
    if (control) await attach(control);
    if (metrics || dashboard) logger.info({ metrics: metrics && `${metrics.url}/metrics`, dashboard: dashboard && `${dashboard.url}/` }, "monitoring listening");
    return {
      metricsUrl: metrics && `${metrics.url}/metrics`,
      get dashboardUrl() {
        return dashboard && `${dashboard.url}/`;
      },
      async attachControl(leading) {
        if (attached) return;
        await attach(leading);
        if (dashboard) logger.info({ dashboard: `${dashboard.url}/` }, "elected: dashboard listening");
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
