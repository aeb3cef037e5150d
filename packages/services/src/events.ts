import type { ClusterEvent, EventBus } from "@taskflow/core";

/** A synchronous in-process event bus; a failing listener is isolated from the others. */
export class LocalEventBus implements EventBus {
  private readonly listeners = new Set<(event: ClusterEvent) => void>();

  get hasSubscribers(): boolean {
    return this.listeners.size > 0;
  }

  publish(event: ClusterEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A monitoring listener must never break the control plane.
      }
    }
  }

  subscribe(listener: (event: ClusterEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
