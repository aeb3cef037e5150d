/** The config's `ha` section: standby control nodes on one Postgres, one leading by a lease (ADR 0016, 0028). */
import { z } from "zod";

/**
 * Standby control nodes. Several control nodes share one Postgres store (`store.kind:
 * "postgres"`); the one holding the leader lease serves, the others answer every call with
 * UNAVAILABLE (reason `TASKFLOW_ERR_NOT_LEADER`) naming the leader's address, and take over when
 * its lease expires. @see docs/adr/0028-failover.md
 */
export const haSchema = z.strictObject({
  /** Run as one of several control nodes that elect a leader. Needs `store.kind: "postgres"`. @defaultValue false */
  enabled: z.boolean().default(false),
  /**
   * How long the lease lasts after each renewal, in ms: a standby takes over at most about this
   * long after the leader dies, and a leader cut off from Postgres stops serving within it.
   * Renewed every quarter of it. @defaultValue 10000
   */
  leaseTtlMs: z.number().int().min(500).max(600_000).default(10_000),
  /**
   * The address clients and workers reach this node at (`host:port`), given to them by standbys
   * while this node leads; also its name in the lease, so unique per node.
   * @defaultValue `control.host:control.port` (required when the host is a wildcard such as 0.0.0.0 or the port is 0)
   */
  advertiseAddress: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):\d{1,5}$/, "must be host:port").optional(),
});
