/**
 * The node's configuration: one schema, one place that applies defaults, and errors that name
 * the key and the fix. Every key is documented here and in the README's config reference.
 */
import { z } from "zod";
import { Code, Reason, TaskflowError } from "./errors.js";
import { describeIssue } from "./config/describe-issue.js";
import { hints } from "./config/hints.js";
import {
  MESSAGE_OVERHEAD_BYTES,
  controlSchema,
  dashboardSchema,
  livenessSchema,
  metricsSchema,
  schedulerSchema,
  storeSchema,
  tlsSchema,
  workerSchema,
} from "./config/sections.js";
import { authSchema, tenantQuota, tenantsSchema } from "./config/security.js";
import { concurrencyLimitsSchema, rateLimitsSchema } from "./config/limits.js";
import { schedulesSchema } from "./config/schedules.js";
import { haSchema } from "./config/ha.js";

export { AUTO_CAPACITY_BYTES_PER_TASK, DEFAULT_CONTROL_ADDRESS, DEFAULT_HOT_QUEUE_DEPTH, DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT, MAX_HEAP_CAPACITY, MESSAGE_OVERHEAD_BYTES, autoTaskHeapCapacity } from "./config/sections.js";
export { AUTH_ROLES, TENANT_NAME_PATTERN, tenantQuota, tokenEntrySchema, type AuthRole, type TenantQuota, type TokenEntry } from "./config/security.js";
export {
  MAX_LIMIT_KEY_LENGTH,
  globPattern,
  parseRate,
  rateBurst,
  type ConcurrencyLimitRule,
  type RateLimitRule,
} from "./config/limits.js";
export { describeSystemError, systemErrorCode, unusableConfig } from "./config/system-errors.js";

const logSchema = z.strictObject({
  /** `trace`, `debug`, `info`, `warn`, `error` or `silent`. @defaultValue "info" */
  level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** `json` (one object a line, for log shippers), `pretty` (readable lines), or `auto`: pretty on a terminal, else JSON. @defaultValue "auto" */
  format: z.enum(["auto", "json", "pretty"]).default("auto"),
});

export const configSchema = z.strictObject({
  /** Which roles this node runs. @defaultValue ["control", "worker"] */
  roles: z
    .array(z.enum(["control", "worker"]))
    .min(1)
    .default(["control", "worker"]),
  control: controlSchema.prefault({}),
  scheduler: schedulerSchema.prefault({}),
  store: storeSchema.prefault({}),
  liveness: livenessSchema.prefault({}),
  worker: workerSchema.prefault({}),
  log: logSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  dashboard: dashboardSchema.prefault({}),
  tls: tlsSchema.optional(),
  auth: authSchema.prefault({}),
  tenants: tenantsSchema.prefault({}),
  /** Rate limits (token buckets) the scheduler enforces for the whole cluster. @defaultValue [] */
  limits: rateLimitsSchema,
  /** Most tasks running at once per key, enforced for the whole cluster. @defaultValue [] */
  concurrency: concurrencyLimitsSchema,
  schedules: schedulesSchema.prefault({}),
  ha: haSchema.prefault({}),
  /**
   * Lets `control.host`, `metrics.host` or `dashboard.host` bind beyond loopback without TLS and
   * tokens: anyone who reaches the port can then do anything. Logs a warning. @defaultValue false
   */
  insecure: z.boolean().default(false),
});

/** A validated configuration with every default applied. */
export type TaskflowConfig = z.output<typeof configSchema>;
/** What a config file may contain (every key optional). */
export type TaskflowConfigInput = z.input<typeof configSchema>;

/** True for an address only this host reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Validates a raw config object (as read from a file) and applies defaults.
 * @param source where it came from, named in errors (a file path).
 * @throws TaskflowError INVALID_ARGUMENT with reason `TASKFLOW_ERR_CONFIG`, naming every bad key.
 */
export function parseConfig(raw: unknown, source = "config"): TaskflowConfig {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => describeIssue(issue, configSchema));
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${lines.join("\n  - ")}`, {
      reason: Reason.CONFIG,
    });
  }
  const config = parsed.data;
  if (config.liveness.heartbeatTimeoutMs <= config.liveness.heartbeatIntervalMs) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `invalid config in ${source}:\n  - liveness.heartbeatTimeoutMs (${config.liveness.heartbeatTimeoutMs}) must be larger than liveness.heartbeatIntervalMs (${config.liveness.heartbeatIntervalMs}); fix: ${hints["liveness.heartbeatTimeoutMs"]}`,
      { reason: Reason.CONFIG },
    );
  }
  const { maxReceiveMessageBytes, maxPayloadBytes } = config.control;
  if (maxReceiveMessageBytes < maxPayloadBytes + MESSAGE_OVERHEAD_BYTES) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `invalid config in ${source}:\n  - control.maxReceiveMessageBytes (${maxReceiveMessageBytes}) must be at least control.maxPayloadBytes (${maxPayloadBytes}) + ${MESSAGE_OVERHEAD_BYTES}, so that a task with the largest payload fits; fix: ${hints["control.maxReceiveMessageBytes"]}`,
      { reason: Reason.CONFIG },
    );
  }
  checkSecurity(config, source);
  checkTenants(config, source);
  checkStore(config, source);
  checkHa(config, source);
  return config;
}

/** A `burst` needs a rate: without one it would silently do nothing. */
function checkTenants(config: TaskflowConfig, source: string): void {
  const problems: string[] = [];
  const entries: [string, string | undefined][] = [["tenants.defaultQuota", undefined], ...Object.keys(config.tenants.quotas).map((name) => [`tenants.quotas.${name}`, name] as [string, string])];
  for (const [key, name] of entries) {
    const own = name === undefined ? config.tenants.defaultQuota : config.tenants.quotas[name]!;
    if (own.burst === undefined) continue;
    const quota = tenantQuota(config, name ?? "");
    if (name === undefined ? !own.submitsPerSecond : !quota.submitsPerSecond) {
      problems.push(`${key}.burst: has no effect without a submitsPerSecond; fix: set ${key}.submitsPerSecond${name === undefined ? "" : " (or tenants.defaultQuota.submitsPerSecond)"}, or remove the burst`);
    }
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** Cross-key rules of `store`: what `kind: "postgres"` needs. */
function checkStore(config: TaskflowConfig, source: string): void {
  const { kind, url, ssl } = config.store;
  const problems: string[] = [];
  if (kind === "postgres" && !url) problems.push(`store.url: required with store.kind "postgres"; fix: ${hints["store.url"]}`);
  // node-postgres lets the URL's TLS parameters override the ssl options: one place only.
  if (ssl && url && /[?&](sslmode|sslrootcert|sslcert|sslkey)=/.test(url)) {
    problems.push("store.url: has TLS parameters (sslmode, sslrootcert, …) and store.ssl is set too, and the URL's would win; fix: remove them from store.url and keep store.ssl");
  }
  if (ssl && Boolean(ssl.cert) !== Boolean(ssl.key)) {
    problems.push(`store.ssl.${ssl.cert ? "key" : "cert"}: required with store.ssl.${ssl.cert ? "cert" : "key"}; fix: give both the client certificate and its private key`);
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** Cross-key rules of `ha`: a shared store, and an address others can reach this node at. */
function checkHa(config: TaskflowConfig, source: string): void {
  if (!config.ha.enabled) return;
  const problems: string[] = [];
  if (config.store.kind !== "postgres") problems.push(`ha.enabled: needs store.kind "postgres" (got "${config.store.kind}"), the store every control node shares; fix: ${hints["ha.enabled"]}`);
  if (!config.roles.includes("control")) problems.push(`ha.enabled: only means something on a node with the "control" role; fix: add "control" to roles or remove ha`);
  const { host, port } = config.control;
  if (!config.ha.advertiseAddress && (port === 0 || /^(0\.0\.0\.0|::|\[::\])$/.test(host))) {
    problems.push(`ha.advertiseAddress: required when control.host is a wildcard or control.port is 0 (${host}:${port}), so that standbys can name this node to clients; fix: ${hints["ha.advertiseAddress"]}`);
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** The address a node with `ha.enabled` names itself by (in the lease, and to clients). */
export function advertisedAddress(config: TaskflowConfig): string {
  const { host, port } = config.control;
  return config.ha.advertiseAddress ?? `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

/** Cross-key rules of `tls`, `auth` and `insecure`, each naming the key and the fix. */
function checkSecurity(config: TaskflowConfig, source: string): void {
  const problems: string[] = [];
  const tls = config.tls;
  if (tls && Boolean(tls.cert) !== Boolean(tls.key)) {
    problems.push(`tls.${tls.cert ? "key" : "cert"}: required with tls.${tls.cert ? "cert" : "key"}; fix: give both the certificate and its private key`);
  }
  if (tls?.requireClientCert && !tls.ca) problems.push("tls.requireClientCert: needs tls.ca to check client certificates against; fix: set tls.ca to the CA that signs them");
  const names = new Set<string>();
  for (const [i, t] of config.auth.tokens.entries()) {
    if (names.has(t.name)) problems.push(`auth.tokens.${i}.name: "${t.name}" is used by another token; fix: give every token its own name`);
    names.add(t.name);
  }
  const serving = config.roles.includes("control");
  const tlsOn = Boolean(tls?.cert);
  const authOn = config.auth.tokens.length > 0 || Boolean(config.auth.tokensFile);
  const exposed: string[] = [];
  if (serving && !isLoopbackHost(config.control.host)) exposed.push(`control.host (${config.control.host})`);
  if (config.metrics.enabled && !isLoopbackHost(config.metrics.host)) exposed.push(`metrics.host (${config.metrics.host})`);
  if (serving && config.dashboard.enabled && !isLoopbackHost(config.dashboard.host)) exposed.push(`dashboard.host (${config.dashboard.host})`);
  if (exposed.length && !(tlsOn && authOn) && !config.insecure) {
    const missing = [tlsOn ? "" : "tls.cert/tls.key", authOn ? "" : "auth.tokens"].filter(Boolean).join(" and ");
    problems.push(
      `${exposed.join(", ")}: binds beyond loopback without ${missing}, so anyone on the network could run, read and cancel tasks; fix: set ${missing} (see README: Running a secure cluster), bind 127.0.0.1, or set "insecure": true to accept the risk`,
    );
  }
  if (problems.length) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `invalid config in ${source}:\n  - ${problems.join("\n  - ")}`, { reason: Reason.CONFIG });
  }
}

/** The defaults, as `parseConfig({})` gives them. */
export function defaultConfig(): TaskflowConfig {
  return parseConfig({});
}
