/**
 * Delayed tasks: a task submitted with `delayMs` or `runAt` (and one reloaded after a restart
 * before its due time) waits here, out of the task heap, in a due-time heap keyed by its due
 * epoch ms. One timer, through the injected Timers, is armed for the earliest due time; when it
 * fires, every task now due enters the task heap and the scheduler is woken. Cancel removes a
 * task from here (the lifecycle's finish). The record's `notBefore` is the durable due time.
 */
import { inject, injectable } from "tsyringe";
import { TOKENS, type Clock, type SchedulerInbox, type TimerHandle, type Timers } from "@taskflow/core";
import type { IndexedHeap } from "@taskflow/shm-heap";
import { type LiveTask, type TaskTable } from "./task-table.js";

/** Node fires a timer above 2^31-1 ms at once; a later due time is reached in steps this long. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the delayed tasks use of the task table, and nothing more. */
type Tasks = Pick<TaskTable, "byHeapId" | "enqueue">;

@injectable()
export class DelayedTasks {
  private timer: TimerHandle | undefined;
  /** The due time the timer is armed for; Infinity when none is. */
  private armedFor = Infinity;
  private closed = false;

  constructor(
    @inject(TOKENS.DueHeap) private readonly heap: IndexedHeap,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
  ) {}

  /** Delayed tasks waiting for their time. */
  get size(): number {
    return this.heap.size;
  }

  /**
   * Keeps a queued task out of the task heap until `rec.notBefore`, and returns true; returns
   * false when that time has come (the caller enqueues it).
   */
  holdUntilDue(live: LiveTask): boolean {
    const due = live.rec.notBefore;
    if (!(due > this.clock.now())) return false;
    live.dueHandle = this.heap.push(due, live.idx);
    if (due < this.armedFor) this.arm(due);
    return true;
  }

  /** True while the task waits here. */
  holds(live: LiveTask): boolean {
    return live.dueHandle >= 0;
  }

  /** The task leaves before its time (cancelled). The timer stays: firing early finds nothing due. */
  remove(live: LiveTask): void {
    if (live.dueHandle < 0) return;
    this.heap.remove(live.dueHandle);
    live.dueHandle = -1;
  }

  stop(): void {
    this.closed = true;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }

  private arm(due: number): void {
    this.timers.clear(this.timer);
    this.armedFor = due;
    const wait = Math.min(Math.max(0, due - this.clock.now()), MAX_TIMER_MS);
    this.timer = this.timers.setTimeout(() => this.fire(), wait);
  }

  /** Moves every task now due into the task heap, then arms the timer for the next one. */
  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.closed) return;
    const now = this.clock.now();
    let moved = 0;
    while (this.heap.size > 0 && this.heap.peekKey() <= now) {
      const live = this.table.byHeapId(this.heap.pop());
      // A recycled heap id belongs to a newer task: only the handle the task holds counts.
      if (!live || live.dueHandle !== this.heap.lastHandle) continue;
      live.dueHandle = -1;
      if (live.rec.state !== "queued") continue;
      // The stored reason ("delayed until …") stays true of the past; `get` explains the heap now.
      this.table.enqueue(live);
      moved++;
    }
    if (moved) this.inbox.wake();
    if (this.heap.size > 0) this.arm(this.heap.peekKey());
  }
}
