/** The config's tenants and authentication sections. */
import { z } from "zod";
import { AUTH_ROLES } from "./addresses.js";

/** What a tenant's name may be: it appears in metric labels, logs and the config's keys. */
export const TENANT_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const tenantName = z.string().regex(TENANT_NAME_PATTERN, "must be 1-64 letters, digits, _ . or -");

/**
 * One tenant's limits. A key left out of `tenants.quotas.<name>` takes `tenants.defaultQuota`'s.
 * A refused submit gets RESOURCE_EXHAUSTED with reason `TASKFLOW_ERR_QUOTA` naming the key.
 */
const quotaSchema = z.strictObject({
  /**
   * Most tasks of the tenant accepted and not yet finished at once (queued, waiting out a retry
   * backoff, or with a worker): each holds a place in the task heap, so this keeps one tenant
   * from filling `control.taskHeapCapacity` for all. 0 = no limit but the heap's. @defaultValue 0
   */
  maxUnfinishedTasks: z.number().int().min(0).optional(),
  /** Tasks (not calls: a batch of 100 counts 100) the tenant may submit per second, on average; 0 = no limit. @defaultValue 0 */
  submitsPerSecond: z.number().min(0).max(10_000_000).optional(),
  /**
   * Tasks the tenant may submit at once beyond the average rate (a token bucket's size); also the
   * largest batch it can ever submit in one call. @defaultValue one second's worth (`submitsPerSecond`, at least 1)
   */
  burst: z.number().int().min(1).optional(),
});

/** Per-tenant quotas; tenants come from tokens (`auth.tokens[].tenant`). @see docs/adr/0013-tenants.md */
export const tenantsSchema = z.strictObject({
  /** Quota of every tenant without an entry in `tenants.quotas`, and of the keys an entry leaves out. @defaultValue {} (no limits) */
  defaultQuota: quotaSchema.prefault({}),
  /** Quotas by tenant name, such as `{"acme": {"maxUnfinishedTasks": 10000, "submitsPerSecond": 500}}`. @defaultValue {} */
  quotas: z.record(tenantName, quotaSchema).default({}),
});

/** One tenant's effective quota, and the config key each limit came from (for refusal messages). */
export interface TenantQuota {
  /** 0 = no limit. */
  maxUnfinishedTasks: number;
  /** 0 = no limit. */
  submitsPerSecond: number;
  burst: number;
  /** The key that set `maxUnfinishedTasks`, such as `tenants.quotas.acme.maxUnfinishedTasks`. */
  maxUnfinishedTasksKey: string;
  /** The key that set `submitsPerSecond`. */
  submitsPerSecondKey: string;
  /** The key that set `burst` (or `submitsPerSecond` when it was left to its default). */
  burstKey: string;
}

/** The quota of `tenant`: its own entry's keys, the rest from `tenants.defaultQuota`. The one place that applies these defaults. */
export function tenantQuota(config: { readonly tenants: z.output<typeof tenantsSchema> }, tenant: string): TenantQuota {
  const own = Object.hasOwn(config.tenants.quotas, tenant) ? config.tenants.quotas[tenant] : undefined;
  const base = config.tenants.defaultQuota;
  const pick = <K extends keyof z.output<typeof quotaSchema>>(key: K) =>
    own?.[key] !== undefined ? { value: own[key], key: `tenants.quotas.${tenant}.${key}` } : { value: base[key], key: `tenants.defaultQuota.${key}` };
  const max = pick("maxUnfinishedTasks");
  const rate = pick("submitsPerSecond");
  const burst = pick("burst");
  const ratePerSecond = rate.value ?? 0;
  return {
    maxUnfinishedTasks: max.value ?? 0,
    submitsPerSecond: ratePerSecond,
    burst: burst.value ?? Math.max(1, Math.ceil(ratePerSecond)),
    maxUnfinishedTasksKey: max.key,
    submitsPerSecondKey: rate.key,
    burstKey: burst.value !== undefined ? burst.key : rate.key,
  };
}

export { AUTH_ROLES, type AuthRole } from "./addresses.js";

/** One bearer token, stored as its hash (`taskflow token create` prints the line). */
export const tokenEntrySchema = z.strictObject({
  /** `sha256:<64 hex digits>` of the token; the token itself is never stored. */
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 lowercase hex digits>"),
  /** `client` (submits and reads its tenant's tasks), `worker` (runs tasks), `viewer` (reads: dashboard, metrics, get/list/watch), `admin` (everything). */
  role: z.enum(AUTH_ROLES),
  /** The tenant its tasks belong to; tenants see only their own tasks. @defaultValue "default" */
  tenant: tenantName.default("default"),
  /** Who holds it, for logs and for binding worker IDs; unique. */
  name: z.string().min(1).max(128),
  /** Worker tokens: the only task types its workers may take; absent = any. @defaultValue any */
  taskTypes: z.array(z.string().min(1)).min(1).optional(),
});
export type TokenEntry = z.output<typeof tokenEntrySchema>;

/** Bearer-token authentication on the gRPC port (and the HTTP ports beyond loopback). */
export const authSchema = z.strictObject({
  /** Accepted tokens with their roles and tenants; empty (and no `auth.tokensFile`) = no authentication. @defaultValue [] */
  tokens: z.array(tokenEntrySchema).default([]),
  /** A JSON file holding more entries like `auth.tokens` (an array), relative to the config file. @defaultValue none */
  tokensFile: z.string().min(1).optional(),
});

