/** Fencing: writes carry the leader epoch they were made under, and a stale one is refused (ADR 0016). */
import type pg from "pg";
import { Code, Reason, TaskflowError } from "@taskflow/core";

/** The epoch a fenced write must carry, or the error that refuses it before it is sent. */
export function fenceEpoch(leaderEpoch: (() => number | undefined) | undefined): number | undefined {
  if (!leaderEpoch) return undefined;
  const epoch = leaderEpoch();
  // UNAVAILABLE and NOT_LEADER, as a standby answers: nothing was written, and a client that
  // retries (with its request ID) finds the leader.
  if (epoch === undefined) throw new TaskflowError(Code.UNAVAILABLE, "postgres store: this node does not hold the leader lease; it may not write", { reason: Reason.NOT_LEADER });
  return epoch;
}

/**
 * Locks the lease row until the end of the transaction and checks its epoch: a node taking the
 * lease (which locks the row FOR UPDATE) waits for this transaction, so no write of an older
 * epoch commits after a newer epoch began. FOR KEY SHARE rather than FOR SHARE: the leader's
 * renewals (an UPDATE of expires_at only, FOR NO KEY UPDATE) do not wait for its writes, so a
 * leader busy writing does not lose its lease for want of a renewal.
 */
export async function checkFence(client: pg.PoolClient, epoch: number): Promise<void> {
  const { rows } = await client.query<unknown[]>({ name: "tf_fence", text: "SELECT epoch, holder FROM taskflow_leader WHERE id = 1 FOR KEY SHARE", values: [], rowMode: "array" });
  refuseStale(rows, epoch);
}

/**
 * Throws NOT_LEADER unless the lease row read under the fence's lock (`[epoch, holder]`, or no
 * row) carries `epoch`.
 */
export function refuseStale(rows: unknown[][], epoch: number): void {
  const current = rows[0]?.[0] as number | undefined;
  if (current !== epoch) {
    throw new TaskflowError(
      Code.UNAVAILABLE,
      `postgres store: fenced: this node's leader epoch ${epoch} is over; epoch ${current ?? "none"} (${String(rows[0]?.[1] ?? "")}) leads now`,
      { reason: Reason.NOT_LEADER },
    );
  }
}
