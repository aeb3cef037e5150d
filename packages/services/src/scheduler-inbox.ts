/**
 * The scheduler's inbox: what parts below the scheduler note for it between loop turns (tasks
 * queued, slots freed, workers changed), and the loop's wake-up: one `setImmediate` per burst
 * of changes. The scheduler drives it and reads it at the start of every turn, so no part
 * below the scheduler calls up into it, and the worker heap changes only inside a turn.
 */
import { injectable } from "tsyringe";
import type { SchedulerInbox } from "@taskflow/core";
import type { WorkerChanges, WorkerEntry } from "./register.js";

@injectable()
export class LoopInbox implements SchedulerInbox, WorkerChanges {
  private turn: () => void = () => {};
  private running = false;
  private scheduled = false;
  /** Worker ID → slots freed since the last turn. */
  private freed = new Map<string, number>();
  private changed = new Set<WorkerEntry>();
  private readonly fire = () => {
    this.scheduled = false;
    this.turn();
  };

  /** The scheduler runs `turn` whenever something changed, from now on. */
  drive(turn: () => void): void {
    this.turn = turn;
    this.running = true;
    this.wake();
  }

  /** No more turns. */
  halt(): void {
    this.running = false;
  }

  wake(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(this.fire);
  }

  released(workerId: string, count: number): void {
    this.freed.set(workerId, (this.freed.get(workerId) ?? 0) + count);
    this.wake();
  }

  workerChanged(worker: WorkerEntry): void {
    this.changed.add(worker);
    this.wake();
  }

  /** Slots freed per worker since the last call. */
  takeFreed(): ReadonlyMap<string, number> {
    const freed = this.freed;
    if (freed.size) this.freed = new Map();
    return freed;
  }

  /** Workers whose load or state changed since the last call, in the order they changed. */
  takeChanged(): ReadonlySet<WorkerEntry> {
    const changed = this.changed;
    if (changed.size) this.changed = new Set();
    return changed;
  }
}
