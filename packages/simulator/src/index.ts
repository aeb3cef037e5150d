/**
 * The policy simulator: replays a trace through the control plane's real scheduler on a virtual
 * clock (ADR 0023). Importing this entry loads reflect-metadata (the services are built with
 * tsyringe); `@taskflow/simulator/trace` has the trace format, recorder and generator without it.
 */
export { simulate, type SimCluster, type SimRun, type SimulateOptions } from "./engine.js";
export { VirtualClock } from "./virtual-clock.js";
export { ms, quantile, summarize, summaryTable, type RunSummary, type WaitFigures } from "./report.js";
export { reportHtml } from "./html.js";
export * from "./trace-index.js";
