/** The one retry schedule of the SDK's client: resends, reconnects and resubscribes. */
import { Code, Reason } from "@taskflow/core/base";

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
 * a standby's NOT_LEADER that names no leader (an election is under way), or a broken connection
 * when there are other addresses to try. The `LeaderChannel` already points at the next node, and
 * the leader is expected within moments, so the doubling backoff would only add to the failover
 * time. (One address: the backoff as is.)
 */
export const FOLLOW_LEADER_MAX_MS = 250;

/**
 * Longest wait after a NOT_LEADER that names the leader: the `LeaderChannel` now points at it (or
 * stays on the elected node that answered while it loads its tasks), which serves within moments
 * (ADR 0028). Short rather than zero: a standby with a stale view bounces the caller at most this
 * often.
 */
export const FOLLOW_NAMED_LEADER_MAX_MS = 50;

/** What {@link retryDelay} reads of the error that made a call fail. */
export interface RetryCause {
  reason?: string | undefined;
  metadata?: Readonly<Record<string, string>>;
}

/**
 * The delay before the next try after an error (`cause`): capped at
 * {@link FOLLOW_NAMED_LEADER_MAX_MS} for a NOT_LEADER naming the leader, at
 * {@link FOLLOW_LEADER_MAX_MS} for one naming nobody, and for any UNAVAILABLE without a reason
 * when `following` (several control addresses).
 */
export function retryDelay(backoff: Backoff, cause: RetryCause | undefined, following = false): number {
  const delay = backoff.next();
  if (cause?.reason === Reason.NOT_LEADER) return Math.min(delay, cause.metadata?.["leader"] ? FOLLOW_NAMED_LEADER_MAX_MS : FOLLOW_LEADER_MAX_MS);
  return following && cause?.reason === undefined ? Math.min(delay, FOLLOW_LEADER_MAX_MS) : delay;
}

/** How long, and how, {@link retryUnavailable} keeps trying. */
export interface UnavailableRetry {
  /** Gives up after this many ms (the client's `submitRetryTimeoutMs`). */
  timeoutMs: number;
  /** Several control addresses: see {@link retryDelay}. */
  following: boolean;
  /** True once the client is closed: stop trying. */
  closed: () => boolean;
}

/**
 * Runs `attempt` again while it fails with UNAVAILABLE (the node restarts, a standby answers
 * NOT_LEADER during a failover), with the backoff and caps of {@link retryDelay}, for at most
 * `timeoutMs`; then, or on any other failure, throws it. Only for calls that are safe to repeat
 * (they carry a request ID), and `attempt` must throw TaskflowErrors (wrap it in `call`).
 */
export async function retryUnavailable<T>(attempt: () => Promise<T>, retry: UnavailableRetry): Promise<T> {
  const backoff = new Backoff();
  const start = Date.now();
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const e = err as { code?: number; reason?: string; metadata?: Readonly<Record<string, string>> };
      if (e.code !== Code.UNAVAILABLE || retry.closed() || Date.now() - start >= retry.timeoutMs) throw err;
      await new Promise((resolve) => setTimeout(resolve, retryDelay(backoff, e, retry.following)));
    }
  }
}
