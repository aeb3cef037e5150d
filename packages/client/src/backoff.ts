/** The one retry schedule of the SDK's client: resends, reconnects and resubscribes. */

/** First delay of a retry, in ms. */
export const RETRY_MIN_MS = 100;
/** Longest delay between two tries, in ms. */
export const RETRY_MAX_MS = 2_000;

/** Doubling delays from `minMs` to at most `maxMs`; `reset()` after a success. */
export class Backoff {
  private delayMs: number;
  constructor(
    private readonly minMs = RETRY_MIN_MS,
    private readonly maxMs = RETRY_MAX_MS,
  ) {
    this.delayMs = minMs;
  }

  /** The delay before the next try; each call doubles the one after. */
  next(): number {
    const delay = this.delayMs;
    this.delayMs = Math.min(delay * 2, this.maxMs);
    return delay;
  }

  reset(): void {
    this.delayMs = this.minMs;
  }
}
