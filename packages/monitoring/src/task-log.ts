import type { EventBus, Logger } from "@taskflow/core";

/**
 * Logs every task transition at debug level, each line carrying the task ID (plus its state,
 * attempt, epoch, worker and type). Subscribe only when debug is on: at info the bus has one
 * listener fewer and the hot path does no formatting.
 */
export function logTaskTransitions(bus: EventBus, logger: Logger): () => void {
  return bus.subscribe((event) => {
    if (event.kind === "worker") {
      const w = event.worker;
      logger.debug({ workerId: w.id, state: w.state, running: w.running, slots: w.slots }, `worker ${w.state}`);
      return;
    }
    const t = event.task;
    logger.debug(
      { taskId: t.id, state: t.state, type: t.type, attempt: t.attempt, epoch: t.epoch, workerId: t.workerId || undefined, error: t.error || undefined },
      `task ${t.state}`,
    );
  });
}
