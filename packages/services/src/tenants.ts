/**
 * Tenants on the control node: each tenant's account (its unfinished tasks, its submit-rate
 * bucket, its result subscribers and its counters), the quota check of a submit, and the
 * bounded per-tenant usage that metrics read. Every live task points at its tenant's account, so
 * what a task costs here is a field increment, never a lookup by name. A part of the control
 * plane's facts layer (docs/adr/0015-the-control-plane.md): it calls no other part.
 * @see docs/adr/0013-tenants.md
 */
import { inject, injectable } from "tsyringe";
import {
  Code,
  DEFAULT_TENANT,
  Reason,
  TOKENS,
  TaskflowError,
  TokenBucket,
  tenantQuota,
  type Clock,
  type TaskOutcome,
  type TaskflowConfig,
  type TenantQuota,
  type TenantUsage,
  type TokenEntry,
} from "@taskflow/core";

/** Most tenants with a metrics label of their own; the rest count under {@link OTHER_LABEL}. */
export const MAX_TENANT_LABELS = 100;
/** The metrics label of tenants without one of their own. */
export const OTHER_LABEL = "other";

export type ResultListener = (outcomes: readonly TaskOutcome[]) => void;

/** One tenant's state on this node. */
export interface TenantAccount {
  readonly name: string;
  readonly quota: TenantQuota;
  /** Undefined when `submitsPerSecond` is 0 (no limit). */
  readonly bucket: TokenBucket | undefined;
  /** Tasks accepted and not finished (the task table keeps this as tasks are tracked and untracked). */
  unfinished: number;
  /** Tasks of submits that passed the quota check and are being stored. */
  reserved: number;
  submitted: number;
  refusedUnfinished: number;
  refusedRate: number;
  /**
   * Result subscribers by client ID: results go to (tenant, client ID), never to a client ID
   * alone. Kept by result delivery (result-delivery.ts), which owns subscriptions; here so that a
   * finished task finds its subscribers through its own account, in one lookup.
   */
  readonly results: Map<string, Set<ResultListener>>;
}

@injectable()
export class Tenants {
  private readonly accounts = new Map<string, TenantAccount>();
  private readonly labelled = new Set<string>([DEFAULT_TENANT]);

  /** `security.tokens`: every accepted token, `auth.tokens` and those of `auth.tokensFile`. */
  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Security) security: { readonly tokens: readonly TokenEntry[] },
  ) {
    // A metrics label of their own, up to MAX_TENANT_LABELS in all: tenants with a quota entry first, then those of tokens.
    this.addLabels(Object.keys(config.tenants.quotas));
    this.addLabels(security.tokens.map((t) => t.tenant));
  }

  private addLabels(names: Iterable<string>): void {
    for (const name of names) {
      if (this.labelled.size >= MAX_TENANT_LABELS) return;
      this.labelled.add(name);
    }
  }

  /** The account of `name`, made on first use. */
  account(name: string): TenantAccount {
    let account = this.accounts.get(name);
    if (!account) {
      const quota = tenantQuota(this.config, name);
      account = {
        name,
        quota,
        bucket: quota.submitsPerSecond > 0 ? new TokenBucket(quota.submitsPerSecond, quota.burst, this.clock.now()) : undefined,
        unfinished: 0,
        reserved: 0,
        submitted: 0,
        refusedUnfinished: 0,
        refusedRate: 0,
        results: new Map(),
      };
      this.accounts.set(name, account);
    }
    return account;
  }

  /**
   * Checks a submit of `n` new tasks against the tenant's quota and reserves them: the caller
   * must call {@link settle} once they are stored or refused. Throws RESOURCE_EXHAUSTED with
   * reason `TASKFLOW_ERR_QUOTA` naming the quota's config key; a refused submit takes nothing.
   */
  admit(account: TenantAccount, n: number): void {
    const { quota, bucket } = account;
    const held = account.unfinished + account.reserved;
    if (quota.maxUnfinishedTasks > 0 && held + n > quota.maxUnfinishedTasks) {
      account.refusedUnfinished += n;
      throw new TaskflowError(
        Code.RESOURCE_EXHAUSTED,
        `tenant ${account.name} has ${held} unfinished tasks and this submit adds ${n}, over its quota of ${quota.maxUnfinishedTasks} (${quota.maxUnfinishedTasksKey}); nothing was accepted, retry once some finish`,
        { reason: Reason.QUOTA, metadata: { tenant: account.name, key: quota.maxUnfinishedTasksKey, limit: String(quota.maxUnfinishedTasks) } },
      );
    }
    if (bucket) {
      const now = this.clock.now();
      if (n > bucket.burst) {
        account.refusedRate += n;
        throw new TaskflowError(
          Code.RESOURCE_EXHAUSTED,
          `a submit of ${n} tasks is over tenant ${account.name}'s burst of ${bucket.burst} (${quota.burstKey}); nothing was accepted, split it into batches of at most ${bucket.burst}`,
          { reason: Reason.QUOTA, metadata: { tenant: account.name, key: quota.burstKey, limit: String(bucket.burst) } },
        );
      }
      if (!bucket.take(n, now)) {
        account.refusedRate += n;
        throw new TaskflowError(
          Code.RESOURCE_EXHAUSTED,
          `tenant ${account.name} may submit ${quota.submitsPerSecond} tasks per second (${quota.submitsPerSecondKey}) with bursts of ${bucket.burst}; nothing was accepted, retry in ${bucket.waitMs(n, now)} ms`,
          {
            reason: Reason.QUOTA,
            metadata: { tenant: account.name, key: quota.submitsPerSecondKey, limit: String(quota.submitsPerSecond), retryAfterMs: String(bucket.waitMs(n, now)) },
          },
        );
      }
    }
    account.reserved += n;
  }

  /** Ends the reservation of {@link admit}; `stored` counts them as submitted. */
  settle(account: TenantAccount, n: number, stored: boolean): void {
    account.reserved -= n;
    if (stored) account.submitted += n;
  }

  /** Counters by metrics label: every labelled tenant (zeros included), plus `other` when any tenant folds into it. */
  usage(): TenantUsage[] {
    const byLabel = new Map<string, TenantUsage>();
    const entry = (label: string) => {
      let usage = byLabel.get(label);
      if (!usage) byLabel.set(label, (usage = { label, submitted: 0, unfinished: 0, refusedUnfinished: 0, refusedRate: 0 }));
      return usage;
    };
    for (const name of this.labelled) entry(name);
    for (const account of this.accounts.values()) {
      const usage = entry(this.labelled.has(account.name) ? account.name : OTHER_LABEL);
      usage.submitted += account.submitted;
      usage.unfinished += account.unfinished;
      usage.refusedUnfinished += account.refusedUnfinished;
      usage.refusedRate += account.refusedRate;
    }
    return [...byLabel.values()];
  }
}
