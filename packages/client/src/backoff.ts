/** The one retry schedule of the SDK's client: resends, reconnects and resubscribes. */
import { Reason } from "@taskflow/core";

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

/**
 * Longest wait before trying again while following the leader among several control nodes: after
 * a standby's NOT_LEADER, or a broken connection when there are other addresses to try. The
 * `LeaderChannel` already points at the next node, and the leader is expected within moments, so
 * the doubling backoff would only add to the failover time. (One address: the backoff as is.)
 */
export const FOLLOW_LEADER_MAX_MS = 250;

/**
 * The delay before the next try after an error with `reason`, capped at
 * {@link FOLLOW_LEADER_MAX_MS} for NOT_LEADER, and for any UNAVAILABLE without a reason when
 * `following` (several control addresses).
 */
export function retryDelay(backoff: Backoff, reason: string | undefined, following = false): number {
  const delay = backoff.next();
  return reason === Reason.NOT_LEADER || (following && reason === undefined) ? Math.min(delay, FOLLOW_LEADER_MAX_MS) : delay;
}
