/**
 * Standby control nodes (config `ha`, ADR 0016 and 0028): the node takes part in the leader
 * election on the Postgres lease. As a standby it serves only the {@link StandbyServer} (every
 * call: UNAVAILABLE, NOT_LEADER, the leader's address); once elected it closes that, starts the
 * whole control plane on the same port with every store write fenced by its epoch (loading the
 * unfinished tasks and re-adopting them from workers, as after a restart), and serves. When it
 * loses the lease it stops at once: `onLost` (the node process exits with {@link EXIT_LOST_LEADERSHIP}
 * and its supervisor starts it again, as a standby).
 */
import { advertisedAddress, type LeadershipState, type Logger, type TaskflowConfig } from "@taskflow/core";
import { StandbyServer } from "@taskflow/services";
import { allocateHeaps, startControl, type ControlNode } from "./control.js";
import { postgresOpenError, postgresSsl } from "./postgres-config.js";
import { serverSecurity } from "./security.js";

/** The exit code of a node that lost its leadership (EX_TEMPFAIL): restart it, it comes back as a standby. */
export const EXIT_LOST_LEADERSHIP = 75;

/** A control node with `ha.enabled`: a standby until it is elected. */
export interface HaControl {
  /** The control port (the same as standby and as leader). */
  readonly port: number;
  /** The control plane, once this node leads. */
  readonly control: ControlNode | undefined;
  leadership(): LeadershipState;
  /** Gives up the lease (a standby takes over at once) and stops. */
  stop(): Promise<void>;
}

export interface HaHooks {
  /** The control plane started: this node leads. */
  elected?(control: ControlNode, epoch: number): void;
  /** The node lost the lease or could not start leading: it must stop serving now. */
  lost(reason: string): void;
}

export async function startHaControl(config: TaskflowConfig, baseDir: string, logger: Logger, hooks: HaHooks): Promise<HaControl> {
  const { PostgresLeaderLease } = await import("@taskflow/store-postgres");
  const me = advertisedAddress(config);
  const ttlMs = config.ha.leaseTtlMs;
  const lease = new PostgresLeaderLease({ url: config.store.url!, ssl: postgresSsl(config, baseDir), schema: config.store.schema, holder: me, ttlMs });
  await lease.open().catch((err: unknown) => {
    throw postgresOpenError(err, config.store.url!);
  });
  // Before the election: a standby is ready to lead with no allocation on the way (and a host
  // that cannot hold the heaps stops now, naming the key).
  let heaps: ReturnType<typeof allocateHeaps> | undefined;
  try {
    heaps = allocateHeaps(config);
  } catch (err) {
    await lease.close();
    throw err;
  }
  let state: LeadershipState = { role: "standby", epoch: 0, leader: "" };
  const standby = new StandbyServer({ host: config.control.host, port: config.control.port, security: serverSecurity(config, baseDir, logger), leadership: () => state, logger });
  const closeHeaps = () => {
    for (const h of [heaps?.taskHeap, heaps?.workerHeap, heaps?.dueHeap]) h?.close();
    heaps = undefined;
  };
  const port = await standby.listen().catch(async (err: unknown) => {
    closeHeaps();
    await lease.close();
    throw err;
  });
  let control: ControlNode | undefined;
  let stopped = false;

  // A leader whose lease ran out steps down even when a renewal hangs rather than fails.
  const watch = setInterval(() => {
    if (state.role === "leader" && lease.epoch === undefined) stepDown("the lease expired before a renewal was acknowledged");
  }, Math.max(100, Math.floor(ttlMs / 4)));
  watch.unref();

  function stepDown(reason: string): void {
    if (stopped) return;
    stopped = true;
    clearInterval(watch);
    lease.stop();
    logger.error({ epoch: state.epoch, reason }, "lost the leader lease: stopping at once so that nothing more is served or written under it");
    hooks.lost(reason);
  }

  lease.start({
    elected: (epoch, { freeForMs }) => {
      if (stopped) return;
      // From now on the standby server names this node as the leader: clients and workers stay
      // on it and retry within moments, rather than cycling through the other nodes.
      state = { role: "leader", epoch, leader: me };
      // freeForMs: how long the lease sat expired before this node took it (the failover
      // timeline of ADR 0028: lease expiry, then this, then the start below).
      logger.info({ epoch, address: me, freeForMs }, "elected leader: loading unfinished tasks, then serving");
      const started = performance.now();
      let loadedMs = 0;
      void (async () => {
        // The same port as the standby's: clients and workers already know this address. The
        // standby keeps answering on it until the control plane is ready to bind it, so that
        // nobody meets a closed port (grpc-js would back off its reconnects by a second or more).
        control = await startControl({ ...config, control: { ...config.control, port } }, baseDir, logger, {
          leaderEpoch: () => lease.epoch,
          leadership: { current: () => state },
          heaps,
          beforeListen: async () => {
            loadedMs = Math.round(performance.now() - started);
            await standby.close();
          },
        });
        // The control node closes them from now on.
        heaps = undefined;
        logger.info({ epoch, address: me, freeForMs, loadedMs, tookMs: Math.round(performance.now() - started) }, "leading: serving on the control port");
        hooks.elected?.(control, epoch);
      })().catch((err: unknown) => {
        logger.error({ err }, "elected, but the control plane did not start");
        stepDown(`could not start leading: ${err instanceof Error ? err.message : String(err)}`);
      });
    },
    lost: (_epoch, reason) => stepDown(reason),
    // Who leads, for the NOT_LEADER answers (an expired lease names nobody): read by the lease
    // loop after each failed try, so a standby that lost the race at the lease's expiry names
    // the new leader within milliseconds (it used to read the row on a timer of its own, up to
    // ttl/4 later, sending callers round the other nodes meanwhile).
    observed: (row) => {
      if (state.role === "standby") state = { role: "standby", epoch: row.epoch, leader: row.expiresInMs > 0 && row.holder !== me ? row.holder : "" };
    },
  });
  logger.info({ address: me, leaseTtlMs: ttlMs }, "standby control node: waiting for the leader lease");

  return {
    port,
    get control() {
      return control;
    },
    leadership: () => state,
    async stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(watch);
        lease.stop();
      }
      await control?.stop();
      closeHeaps();
      await standby.close();
      // After the control plane's last write: a standby may take over at once.
      await lease.release().catch((err: unknown) => logger.warn({ err }, "could not release the leader lease; a standby takes over when it expires"));
      await lease.close();
    },
  };
}
