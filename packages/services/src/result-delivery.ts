/**
 * Result delivery: who watches a task (every change, until it is final) and who subscribes to
 * the outcomes of a client's tasks. Outcomes reach subscribers only once durable: store
 * write-behind holds them with its pending writes and hands them here after the write.
 */
import { injectable } from "tsyringe";
import { isFinal, type TaskOutcome, type TaskRecord } from "@taskflow/core";

@injectable()
export class ResultDelivery {
  private readonly watchers = new Map<string, Set<(task: TaskRecord) => void>>();
  private readonly resultSubscribers = new Map<string, Set<(outcomes: readonly TaskOutcome[]) => void>>();

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

  /** Streams outcomes of tasks submitted with `clientId`; returns unsubscribe. */
  subscribeResults(clientId: string, listener: (outcomes: readonly TaskOutcome[]) => void): () => void {
    let set = this.resultSubscribers.get(clientId);
    if (!set) this.resultSubscribers.set(clientId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      // Only our own set: unsubscribe may run twice (cancelled, then close), after a newer
      // subscriber of the same client ID made a new one.
      if (set.size === 0 && this.resultSubscribers.get(clientId) === set) this.resultSubscribers.delete(clientId);
    };
  }

  /** Tells the task's watchers it changed; a final change is their last. */
  changed(rec: TaskRecord): void {
    const watchers = this.watchers.get(rec.id);
    if (!watchers) return;
    for (const listener of watchers) listener(rec);
    if (isFinal(rec.state)) this.watchers.delete(rec.id);
  }

  /** True when someone waits for the outcomes of this client's tasks. */
  wantsOutcomes(clientId: string): boolean {
    return this.resultSubscribers.has(clientId);
  }

  /** Durable outcomes, batched per client, go to that client's subscribers. */
  deliver(outcomes: ReadonlyMap<string, readonly TaskOutcome[]>): void {
    for (const [clientId, batch] of outcomes) {
      const subscribers = this.resultSubscribers.get(clientId);
      if (!subscribers) continue;
      for (const listener of subscribers) listener(batch);
    }
  }
}
