/**
 * The simulator's time: a {@link Clock} and {@link Timers} that move only when told, like
 * `FakeClock` from `@taskflow/core/testing`, but with its timers in a binary heap, because a
 * replay keeps one timer per running task (and per attempt timeout) and fires hundreds of
 * thousands of them.
 */
import type { Clock, TimerHandle, Timers } from "@taskflow/core";

interface VirtualTimer extends TimerHandle {
  at: number;
  /** Tie-break: timers due at the same instant fire in the order they were set. */
  readonly id: number;
  readonly every: number;
  readonly callback: () => void;
  active: boolean;
}

export class VirtualClock implements Clock, Timers {
  private time: number;
  private nextId = 0;
  private readonly heap: VirtualTimer[] = [];
  private live = 0;

  /** @param start - epoch ms the clock starts at. */
  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /** Like Node's: a delay below 1 ms is 1 ms. */
  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.push(this.time + (ms >= 1 ? ms : 1), 0, callback);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const every = ms >= 1 ? ms : 1;
    return this.push(this.time + every, every, callback);
  }

  /** Runs `callback` at the epoch ms `at` (now or later; no 1 ms minimum): the simulator's own events. */
  at(at: number, callback: () => void): TimerHandle {
    return this.push(Math.max(at, this.time), 0, callback);
  }

  clear(handle: TimerHandle | undefined): void {
    const timer = handle as VirtualTimer | undefined;
    if (!timer?.active) return;
    // Left in the heap and skipped when it comes up: no O(n) removal.
    timer.active = false;
    this.live--;
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.live;
  }

  /** When the next timer fires, or undefined when none waits. */
  nextAt(): number | undefined {
    this.dropCleared();
    return this.heap[0]?.at;
  }

  /**
   * Moves time to `to` (never back), firing every timer due by then in time order, with `now()`
   * at each timer's own instant.
   */
  advanceTo(to: number): void {
    for (;;) {
      this.dropCleared();
      const top = this.heap[0];
      if (!top || top.at > to) break;
      this.pop();
      if (top.at > this.time) this.time = top.at;
      if (top.every) {
        top.at += top.every;
        this.insert(top);
      } else {
        top.active = false;
        this.live--;
      }
      top.callback();
    }
    if (to > this.time) this.time = to;
  }

  private push(at: number, every: number, callback: () => void): VirtualTimer {
    const timer: VirtualTimer = { at, id: this.nextId++, every, callback, active: true };
    this.live++;
    this.insert(timer);
    return timer;
  }

  private dropCleared(): void {
    while (this.heap.length && !this.heap[0]!.active) this.pop();
  }

  private insert(timer: VirtualTimer): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(timer);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(timer, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}

function before(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id);
}
