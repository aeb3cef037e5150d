/**
 * A token bucket for rates such as a tenant's submits per second. Synchronous and clock-free:
 * the caller passes the time, so it costs two multiplications per check and tests need no
 * timers. (`limiter` and `rate-limiter-flexible` read the wall clock themselves and are built
 * around promises; this is the whole algorithm.)
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /**
   * @param ratePerSecond tokens added per second; must be positive.
   * @param burst most tokens held (and the most one `take` can ever get); starts full.
   * @param now the current time in ms.
   */
  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number,
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError(`token bucket needs rate > 0 and burst >= 1, got ${ratePerSecond} and ${burst}`);
    this.tokens = burst;
    this.last = now;
  }

  /** Takes `n` tokens if the bucket holds them at time `now` (ms), else takes none. */
  take(n: number, now: number): boolean {
    this.refill(now);
    if (n > this.tokens) return false;
    this.tokens -= n;
    return true;
  }

  /** Tokens held at time `now`, for tests and messages. */
  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** Milliseconds from `now` until `n` tokens are held (0 = now; Infinity when `n` > burst). */
  waitMs(n: number, now: number): number {
    if (n > this.burst) return Infinity;
    this.refill(now);
    return n <= this.tokens ? 0 : Math.ceil(((n - this.tokens) * 1000) / this.ratePerSecond);
  }

  private refill(now: number): void {
    // A clock that went back adds nothing (and takes nothing).
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerSecond) / 1000);
      this.last = now;
    }
  }
}
