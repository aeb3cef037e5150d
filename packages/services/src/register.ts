/**
 * The Register: workers, their sessions (through worker ports), heartbeats, their pacing and
 * liveness (alive → suspect → dead, draining), and each worker's load: the one count of the tasks
 * a worker holds (`running`). The workers themselves are kept in the WorkerIndex (by ID, heap id,
 * join order). A lost worker's tasks go straight to the task lifecycle to be requeued; changes of
 * a worker's load or state are noted in the scheduler's inbox. Every hello and heartbeat is O(1);
 * the liveness sweep is one pass every heartbeatIntervalMs / 2 (ADR 0031).
 */
import { inject, injectable } from "tsyringe";
import {
  Code,
  Reason,
  TOKENS,
  TaskflowError,
  type Clock,
  type EventBus,
  type Logger,
  type LostWorkerTasks,
  type Register,
  type TaskflowConfig,
  type TimerHandle,
  type Timers,
  type WorkerRecord,
} from "@taskflow/core";
import { type WorkerEntry, type WorkerIndex } from "./worker-index.js";
import type { WorkerPortDirectory, WorkerSessionPort } from "./worker-ports.js";

export type { WorkerEntry } from "./worker-index.js";

export interface HelloInfo {
  workerId: string;
  host: string;
  pid: number;
  slots: number;
  /** Tasks it accepts beyond its slots (they wait on the worker). */
  prefetch: number;
  labels: Record<string, string>;
  taskTypes: string[];
}

/** Where the Register notes that a worker's load or state changed (the scheduler's inbox). */
export interface WorkerChanges {
  workerChanged(worker: WorkerEntry): void;
}

/** The slowest heartbeat pacing asks for: past it, more workers mean more heartbeats again. */
const MAX_PACED_INTERVAL_MS = 10_000;

/**
 * The heartbeat interval a worker welcomed among `workers` is told: `heartbeatIntervalMs` while
 * they fit in `maxHeartbeatsPerSecond`, k times it beyond (ADR 0031); O(1) per hello.
 */
export function pacedHeartbeatMs(liveness: Pick<TaskflowConfig["liveness"], "heartbeatIntervalMs" | "maxHeartbeatsPerSecond">, workers: number): number {
  const { heartbeatIntervalMs, maxHeartbeatsPerSecond } = liveness;
  const atBase = Math.max(1, Math.floor((maxHeartbeatsPerSecond * heartbeatIntervalMs) / 1000));
  const pace = Math.max(1, Math.ceil(workers / atBase));
  return Math.min(heartbeatIntervalMs * pace, Math.max(heartbeatIntervalMs, MAX_PACED_INTERVAL_MS));
}

/** A refused worker ID is logged again only after this long: a worker retrying its hello is one line. */
export const REFUSAL_LOG_INTERVAL_MS = 10 * 60_000;
/** Refused worker IDs remembered for that; past it the oldest is forgotten (and may log again). */
const REFUSAL_LOG_IDS = 10_000;

@injectable()
export class WorkerRegister implements Register {
  private readonly refusals: HelloRefusals;
  private timer: TimerHandle | undefined;
  private sweepEveryMs = 0;
  /** When the liveness sweep last ran, and whether it skipped its silence verdicts then. */
  private lastSweep = 0;
  private skippedLast = false;
  /** The longest the sweep ran late within the last heartbeatTimeoutMs, and when: the node's own stall. */
  private stallMs = 0;
  private stallAt = 0;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.EventBus) private readonly events: EventBus,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.WorkerPorts) private readonly ports: Pick<WorkerPortDirectory, "link" | "forget">,
    @inject(TOKENS.TaskLifecycle) private readonly lostTasks: LostWorkerTasks,
    @inject(TOKENS.SchedulerInbox) private readonly changes: WorkerChanges,
    @inject(TOKENS.WorkerIndex) private readonly index: WorkerIndex,
  ) {
    this.refusals = new HelloRefusals(config, logger);
  }

  start(): void {
    this.sweepEveryMs = Math.max(10, Math.floor(this.config.liveness.heartbeatIntervalMs / 2));
    this.lastSweep = this.clock.now();
    this.timer = this.timers.setInterval(() => this.checkLiveness(), this.sweepEveryMs);
  }

  stop(): void {
    this.timers.clear(this.timer);
    for (const entry of this.index.entries()) entry.link.port?.close();
  }

  /** Every worker's record. O(workers): admin callers page through the WorkerIndex instead. */
  workers(): WorkerRecord[] {
    return Array.from(this.index.entries(), (e) => e.record);
  }

  get(workerId: string): WorkerRecord | undefined {
    return this.index.get(workerId)?.record;
  }

  /** Hellos refused because the register was full, since the start. */
  get refusedHellos(): number {
    return this.refusals.count;
  }

  /**
   * A session said hello. A known worker ID resumes (its running tasks stay its own). A new one
   * past `control.workerHeapCapacity` is refused before anything of it is kept.
   * @throws TaskflowError RESOURCE_EXHAUSTED (`TASKFLOW_ERR_WORKER_CAPACITY`) when the register is full
   */
  connect(hello: HelloInfo, session: WorkerSessionPort): WorkerEntry {
    const now = this.clock.now();
    let entry = this.index.get(hello.workerId);
    // Every registered worker may sit in the worker heap at once: refusing here keeps it from overflowing.
    if (!entry && this.index.size >= this.config.control.workerHeapCapacity) throw this.refusals.refuse(hello, now);
    if (entry && entry.link.port && entry.link.port !== session) {
      // A second session with the same ID: the newer one wins, the old stream is closed.
      entry.link.port.close();
    }
    const beatMs = pacedHeartbeatMs(this.config.liveness, entry ? this.index.size : this.index.size + 1);
    if (entry && entry.record.state !== "dead") {
      entry.link.port = session;
      entry.beatMs = beatMs;
      entry.disconnectedAt = 0;
      entry.capacity = hello.slots + hello.prefetch;
      entry.sent = 0;
      entry.acked = 0;
      entry.unackedSince = 0;
      Object.assign(entry.record, {
        host: hello.host,
        pid: hello.pid,
        slots: hello.slots,
        labels: hello.labels,
        taskTypes: new Set(hello.taskTypes),
        lastHeartbeat: now,
        connectedAt: now,
        state: entry.record.state === "draining" ? "draining" : "alive",
      });
      this.logger.info({ workerId: hello.workerId }, "worker reconnected");
    } else {
      if (entry) this.remove(entry);
      entry = this.index.add(hello.workerId, (idx, joinSeq) => ({
        record: {
          id: hello.workerId,
          host: hello.host,
          pid: hello.pid,
          state: "alive",
          slots: hello.slots,
          running: 0,
          labels: hello.labels,
          taskTypes: new Set(hello.taskTypes),
          lastHeartbeat: now,
          connectedAt: now,
        },
        link: this.ports.link(hello.workerId),
        handle: -1,
        idx,
        joinSeq,
        beatMs,
        lastAssignedSeq: 0,
        disconnectedAt: 0,
        outbox: [],
        capacity: hello.slots + hello.prefetch,
        sent: 0,
        acked: 0,
        unackedSince: 0,
      }));
      entry.link.port = session;
      this.logger.info({ workerId: hello.workerId, host: hello.host, slots: hello.slots, types: hello.taskTypes }, "worker joined");
    }
    this.emit(entry);
    this.changes.workerChanged(entry);
    return entry;
  }

  heartbeat(entry: WorkerEntry, assignmentsReceived: number): void {
    entry.record.lastHeartbeat = this.clock.now();
    entry.acked = Math.max(entry.acked, assignmentsReceived);
    if (entry.acked >= entry.sent) entry.unackedSince = 0;
    if (entry.record.state === "suspect" && entry.unackedSince === 0) {
      entry.record.state = "alive";
      this.emit(entry);
      this.changes.workerChanged(entry);
    }
  }

  /** Assignments went out on the worker's session. */
  sentAssignments(entry: WorkerEntry, count: number): void {
    if (entry.acked >= entry.sent) entry.unackedSince = this.clock.now();
    entry.sent += count;
  }

  /** The scheduler gave the worker a task. */
  assigned(entry: WorkerEntry): void {
    entry.record.running++;
  }

  /** A worker re-adopted tasks after a control node restart: they count toward its load. */
  adopted(entry: WorkerEntry, count: number): void {
    entry.record.running += count;
    this.changes.workerChanged(entry);
  }

  /** Tasks left the worker's hands; a draining worker with none left is told to go. */
  released(entry: WorkerEntry, count: number): void {
    entry.record.running = Math.max(0, entry.record.running - count);
    if (entry.record.state === "draining" && entry.record.running === 0) {
      entry.link.port?.close();
      return;
    }
    this.changes.workerChanged(entry);
  }

  /** The session stream ended; the worker gets a grace period to reconnect. */
  disconnected(entry: WorkerEntry, session: WorkerSessionPort, reason: string): void {
    // A worker declared dead closes its session: that end is not a disconnect to wait out.
    if (entry.link.port !== session || this.index.get(entry.record.id) !== entry) return;
    entry.link.port = undefined;
    entry.disconnectedAt = this.clock.now();
    if (entry.record.state === "draining" && entry.record.running === 0) {
      this.left(entry);
      return;
    }
    this.logger.warn({ workerId: entry.record.id, reason }, "worker session ended; waiting for it to reconnect");
    this.changes.workerChanged(entry);
  }

  drain(workerId: string): WorkerRecord {
    const entry = this.index.get(workerId);
    if (!entry || entry.record.state === "dead") {
      throw new TaskflowError(Code.NOT_FOUND, `worker ${workerId} not found; \`taskflow workers\` lists them`, { reason: Reason.WORKER_NOT_FOUND, metadata: { workerId } });
    }
    if (entry.record.state !== "draining") {
      entry.record.state = "draining";
      this.changes.workerChanged(entry);
      entry.link.port?.drain();
      this.emit(entry);
      this.logger.info({ workerId }, "draining worker");
    }
    return entry.record;
  }

  /** True when the worker takes new tasks. */
  schedulable(entry: WorkerEntry): boolean {
    return entry.link.port !== undefined && entry.record.state === "alive" && entry.record.running < entry.capacity;
  }

  private checkLiveness(): void {
    const now = this.clock.now();
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.config.liveness;
    // A sweep that runs a heartbeat interval late ran after the event loop was blocked: the
    // heartbeats that arrived meanwhile wait unread behind it (timers run before I/O), so their
    // workers only look silent. Judge silence on the next sweep, after they are read; every
    // other sweep at worst, so an overloaded node still finds dead workers (ADR 0031).
    const lateBy = now - this.lastSweep - this.sweepEveryMs;
    const judgeSilence = lateBy <= heartbeatIntervalMs || this.skippedLast;
    this.skippedLast = !judgeSilence;
    this.lastSweep = now;
    // Silence the node's own recent stall explains is not the worker's: a heartbeat delayed by a
    // stalled worker process and then by a stalled control node still counts (ADR 0031).
    if (lateBy >= this.stallMs || now - this.stallAt > heartbeatTimeoutMs) {
      this.stallMs = Math.max(0, lateBy);
      this.stallAt = now;
    }
    for (const entry of this.index.entries()) {
      const record = entry.record;
      if (record.state === "dead") continue;
      if (!entry.link.port) {
        if (now - entry.disconnectedAt >= this.config.liveness.reconnectGraceMs) this.declareDead(entry, "session lost and not resumed in time");
        continue;
      }
      if (!judgeSilence) continue;
      const silent = now - record.lastHeartbeat;
      const quiet = silent - this.stallMs;
      // A worker paced to beat k times slower (ADR 0031) gets k times the timeout.
      const timeout = heartbeatTimeoutMs * (entry.beatMs / heartbeatIntervalMs);
      // Liveness is progress, not just a pulse: assignments must be acknowledged too.
      const unacked = entry.unackedSince ? now - entry.unackedSince : 0;
      const { ackTimeoutMs } = this.config.liveness;
      if (quiet >= timeout || unacked >= ackTimeoutMs * 2) {
        const why = quiet >= timeout ? `no heartbeat for ${silent} ms` : `assignments unacknowledged for ${unacked} ms`;
        const session = entry.link.port;
        this.declareDead(entry, why);
        session?.close();
      } else if ((quiet >= entry.beatMs * 2 || unacked >= ackTimeoutMs) && record.state === "alive") {
        record.state = "suspect";
        this.changes.workerChanged(entry);
        this.emit(entry);
      }
    }
  }

  private declareDead(entry: WorkerEntry, reason: string): void {
    entry.record.state = "dead";
    this.changes.workerChanged(entry);
    this.emit(entry);
    this.logger.warn({ workerId: entry.record.id, reason }, "worker is dead");
    this.lostTasks.requeueWorkerTasks(entry.record.id, `worker ${entry.record.id} lost: ${reason}`);
    entry.record.running = 0;
    this.remove(entry);
  }

  /** A drained worker left: nothing to requeue. */
  private left(entry: WorkerEntry): void {
    entry.record.state = "dead";
    this.changes.workerChanged(entry);
    this.emit(entry);
    this.logger.info({ workerId: entry.record.id }, "drained worker left");
    this.remove(entry);
  }

  private remove(entry: WorkerEntry): void {
    this.ports.forget(entry.record.id, entry.link);
    this.index.remove(entry);
  }

  private emit(entry: WorkerEntry): void {
    if (this.events.hasSubscribers) this.events.publish({ kind: "worker", time: this.clock.now(), worker: { ...entry.record } });
  }
}

/** Hellos refused because the register is full: counted, and logged once per worker ID per REFUSAL_LOG_INTERVAL_MS. */
class HelloRefusals {
  /** Refused worker ID → when its refusal was logged, oldest first. */
  private readonly refusalsLogged = new Map<string, number>();
  /** Hellos refused because the register was full, since the start. */
  private refused = 0;

  constructor(
    private readonly config: TaskflowConfig,
    private readonly logger: Logger,
  ) {}

  get count(): number {
    return this.refused;
  }

  refuse(hello: HelloInfo, now: number): TaskflowError {
    const capacity = this.config.control.workerHeapCapacity;
    this.refused++;
    const logged = this.refusalsLogged.get(hello.workerId);
    if (logged === undefined || now - logged >= REFUSAL_LOG_INTERVAL_MS) {
      this.refusalsLogged.delete(hello.workerId);
      if (this.refusalsLogged.size >= REFUSAL_LOG_IDS) this.refusalsLogged.delete(this.refusalsLogged.keys().next().value!);
      this.refusalsLogged.set(hello.workerId, now);
      this.logger.warn(
        { workerId: hello.workerId, host: hello.host, capacity, refusedHellos: this.refused },
        "worker refused: the register is full (control.workerHeapCapacity)",
      );
    }
    return new TaskflowError(
      Code.RESOURCE_EXHAUSTED,
      `the control node already has its most workers, ${capacity} (control.workerHeapCapacity); ` +
        "fix: raise control.workerHeapCapacity on the control node (44 bytes of shared memory a worker), or run fewer workers",
      { reason: Reason.WORKER_CAPACITY },
    );
  }
}
