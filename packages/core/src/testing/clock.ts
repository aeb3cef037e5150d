/**
 * A fake clock for tests: time stands still until the test moves it, and timers fire in time
 * order, each at its own instant, while it does. Pass it as both the `Clock` and the `Timers`
 * of a control-plane part; no test then sleeps for a retry, a timeout or a liveness check.
 *
 * @example
 * ```ts
 * const clock = new FakeClock();
 * const register = new WorkerRegister(config, events, logger, clock, clock);
 * clock.advance(config.liveness.heartbeatTimeoutMs); // the worker is now dead
 * ```
 */
import type { Clock, TimerHandle, Timers } from "../contracts.js";

interface FakeTimer extends TimerHandle {
  readonly id: number;
  at: number;
  /** Repeats every this many ms; 0 = a timeout. */
  readonly every: number;
  readonly callback: () => void;
  active: boolean;
}

export class FakeClock implements Clock, Timers {
  private time: number;
  private nextId = 0;
  private readonly timers = new Set<FakeTimer>();

  /** @param start - ms since the epoch the clock starts at. @defaultValue `1_700_000_000_000` */
  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, 0);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, Math.max(1, ms));
  }

  clear(handle: TimerHandle | undefined): void {
    const timer = handle as FakeTimer | undefined;
    if (!timer) return;
    timer.active = false;
    this.timers.delete(timer);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** When the next timer fires (ms since the epoch), or undefined when none waits. */
  nextAt(): number | undefined {
    return this.next()?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in time order
   * (ties in the order they were set), with `now()` at each timer's own instant.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance takes a duration ≥ 0, got ${ms}`);
    const end = this.time + ms;
    for (let timer = this.next(); timer && timer.at <= end; timer = this.next()) {
      this.time = Math.max(this.time, timer.at);
      // Like Node: an interval that fired late (after stall) goes on from when it fired.
      if (timer.every) timer.at = this.time + timer.every;
      else this.clear(timer);
      timer.callback();
    }
    this.time = end;
  }

  /**
   * Moves time forward by `ms` and fires nothing, as a blocked event loop does: timers that fell
   * due fire late, once each, on the next `advance`.
   */
  stall(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`stall takes a duration ≥ 0, got ${ms}`);
    this.time += ms;
  }

  /** Fires timers one after another until none is left (an interval would never end: throws after `limit`). */
  runAll(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const timer = this.next();
      if (!timer) return;
      this.advance(timer.at - this.time);
    }
    throw new Error(`runAll: timers still pending after ${limit} firings (an interval?); use advance(ms)`);
  }

  private add(callback: () => void, ms: number, every: number): FakeTimer {
    // Like Node: a delay below 1 ms (or not a number) is 1 ms.
    const delay = ms >= 1 ? ms : 1;
    const timer: FakeTimer = { id: this.nextId++, at: this.time + delay, every, callback, active: true };
    this.timers.add(timer);
    return timer;
  }

  private next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    return best;
  }
}
