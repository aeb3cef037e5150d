/**
 * Result delivery: who watches a task (every change, until it is final) and who subscribes to
 * the outcomes of a (tenant, client ID)'s tasks. Outcomes reach subscribers only once durable:
 * store write-behind holds them with its pending writes and hands them here after the write.
 * A tenant's subscribers live on its account (`TenantAccount.results`), so a finished task finds
 * them through the account it points at, in one lookup (docs/adr/0013-tenants.md).
 */
import { injectable } from "tsyringe";
import { isFinal, type TaskOutcome, type TaskRecord } from "@taskflow/core";
import { type ResultListener, type TenantAccount } from "./tenants.js";

/** Outcomes waiting for delivery: by tenant account, then client ID. */
export type PendingOutcomes = Map<TenantAccount, Map<string, TaskOutcome[]>>;

@injectable()
export class ResultDelivery {
  private readonly watchers = new Map<string, Set<(task: TaskRecord) => void>>();

  /** Calls `listener` on every later change of the task until it is final; returns unsubscribe. */
  watch(taskId: string, listener: (task: TaskRecord) => void): () => void {
    let set = this.watchers.get(taskId);
    if (!set) this.watchers.set(taskId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.watchers.get(taskId) === set) this.watchers.delete(taskId);
    };
  }

  /** Streams outcomes of tasks the account's tenant submitted with `clientId`; returns unsubscribe. */
  subscribeResults(account: TenantAccount, clientId: string, listener: ResultListener): () => void {
    const subscribers = account.results;
    let set = subscribers.get(clientId);
    if (!set) subscribers.set(clientId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      // Only our own set: unsubscribe may run twice (cancelled, then close), after a newer
      // subscriber of the same client ID made a new one.
      if (set.size === 0 && subscribers.get(clientId) === set) subscribers.delete(clientId);
    };
  }

  /** Tells the task's watchers it changed; a final change is their last. */
  changed(rec: TaskRecord): void {
    const watchers = this.watchers.get(rec.id);
    if (!watchers) return;
    for (const listener of watchers) listener(rec);
    if (isFinal(rec.state)) this.watchers.delete(rec.id);
  }

  /** True when someone waits for the outcomes of this tenant's client's tasks. */
  wantsOutcomes(account: TenantAccount, clientId: string): boolean {
    return account.results.has(clientId);
  }

  /** Durable outcomes, batched per (tenant, client), go to that tenant's client's subscribers. */
  deliver(outcomes: PendingOutcomes): void {
    for (const [account, byClient] of outcomes) {
      for (const [clientId, batch] of byClient) {
        const subscribers = account.results.get(clientId);
        if (!subscribers) continue;
        for (const listener of subscribers) listener(batch);
      }
    }
  }
}
