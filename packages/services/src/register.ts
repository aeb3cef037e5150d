/**
 * The Register: workers, their session streams, heartbeats and liveness
 * (alive → suspect → dead, draining), and each worker's load for the worker heap.
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
  type Register,
  type TaskflowConfig,
  type WorkerRecord,
} from "@taskflow/core";

/** What the Register needs from a worker's open session. */
export interface WorkerSessionPort {
  assign(assignments: readonly OutgoingAssignment[]): void;
  cancel(tasks: readonly { taskId: string; epoch: number }[], reason: string): void;
  drain(): void;
  /** Ends the session from the control side. */
  close(): void;
}

export interface OutgoingAssignment {
  taskId: string;
  epoch: number;
  type: string;
  payload: Uint8Array;
  attempt: number;
  timeoutMs: number;
}

/** A worker as the Register and Scheduler keep it. */
export interface WorkerEntry {
  readonly record: WorkerRecord & { running: number };
  session: WorkerSessionPort | undefined;
  /** Worker heap handle while it has a free slot and takes tasks, else -1. */
  handle: number;
  /** Its id in the worker heap. */
  readonly idx: number;
  joinSeq: number;
  lastAssignedSeq: number;
  /** When its session broke; it is declared dead if it does not come back within the grace. */
  disconnectedAt: number;
  /** Assignments made this loop turn, sent in one message. */
  outbox: OutgoingAssignment[];
  /** Most tasks it holds at once: slots + prefetch. */
  capacity: number;
  /** Assignments sent on the current session, and how many the worker acknowledged. */
  sent: number;
  acked: number;
  /** Since when an assignment waits for acknowledgement; 0 = none waits. */
  unackedSince: number;
}

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

export interface RegisterHooks {
  /** A worker joined, came back, or got free slots. */
  capacity(worker: WorkerEntry): void;
  /** A worker was declared dead (or left): requeue its tasks. */
  lost(worker: WorkerEntry, reason: string): void;
  /** A worker left the set of schedulable workers (dead, draining). */
  unschedulable(worker: WorkerEntry): void;
}

const noHooks: RegisterHooks = { capacity() {}, lost() {}, unschedulable() {} };

@injectable()
export class WorkerRegister implements Register {
  hooks: RegisterHooks = noHooks;
  private readonly entries = new Map<string, WorkerEntry>();
  private readonly byIdx: (WorkerEntry | undefined)[] = [];
  private readonly freeIdx: number[] = [];
  private joinCounter = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.EventBus) private readonly events: EventBus,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Clock) private readonly clock: Clock,
  ) {}

  start(): void {
    const every = Math.max(10, Math.floor(this.config.liveness.heartbeatIntervalMs / 2));
    this.timer = setInterval(() => this.checkLiveness(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const entry of this.entries.values()) entry.session?.close();
  }

  workers(): WorkerRecord[] {
    return [...this.entries.values()].map((e) => e.record);
  }

  entriesList(): WorkerEntry[] {
    return [...this.entries.values()];
  }

  get(workerId: string): WorkerRecord | undefined {
    return this.entries.get(workerId)?.record;
  }

  entry(workerId: string): WorkerEntry | undefined {
    return this.entries.get(workerId);
  }

  byHeapId(idx: number): WorkerEntry | undefined {
    return this.byIdx[idx];
  }

  /** A session said hello. A known worker ID resumes (its running tasks stay its own). */
  connect(hello: HelloInfo, session: WorkerSessionPort): WorkerEntry {
    const now = this.clock.now();
    let entry = this.entries.get(hello.workerId);
    if (entry && entry.session && entry.session !== session) {
      // A second session with the same ID: the newer one wins, the old stream is closed.
      entry.session.close();
    }
    if (entry && entry.record.state !== "dead") {
      entry.session = session;
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
      const idx = this.freeIdx.length ? this.freeIdx.pop()! : this.byIdx.length;
      entry = {
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
        session,
        handle: -1,
        idx,
        joinSeq: ++this.joinCounter,
        lastAssignedSeq: 0,
        disconnectedAt: 0,
        outbox: [],
        capacity: hello.slots + hello.prefetch,
        sent: 0,
        acked: 0,
        unackedSince: 0,
      };
      this.byIdx[idx] = entry;
      this.entries.set(hello.workerId, entry);
      this.logger.info({ workerId: hello.workerId, host: hello.host, slots: hello.slots, types: hello.taskTypes }, "worker joined");
    }
    this.emit(entry);
    this.hooks.capacity(entry);
    return entry;
  }

  heartbeat(entry: WorkerEntry, assignmentsReceived: number): void {
    entry.record.lastHeartbeat = this.clock.now();
    entry.acked = Math.max(entry.acked, assignmentsReceived);
    if (entry.acked >= entry.sent) entry.unackedSince = 0;
    if (entry.record.state === "suspect" && entry.unackedSince === 0) {
      entry.record.state = "alive";
      this.emit(entry);
      this.hooks.capacity(entry);
    }
  }

  /** Assignments went out on the worker's session. */
  sentAssignments(entry: WorkerEntry, count: number): void {
    if (entry.acked >= entry.sent) entry.unackedSince = this.clock.now();
    entry.sent += count;
  }

  /** A worker re-adopted tasks after a control node restart: they count toward its load. */
  adopted(entry: WorkerEntry, count: number): void {
    entry.record.running += count;
    this.hooks.capacity(entry);
  }

  /** The session stream ended; the worker gets a grace period to reconnect. */
  disconnected(entry: WorkerEntry, session: WorkerSessionPort, reason: string): void {
    if (entry.session !== session) return;
    entry.session = undefined;
    entry.disconnectedAt = this.clock.now();
    if (entry.record.state === "draining" && entry.record.running === 0) {
      this.left(entry);
      return;
    }
    this.logger.warn({ workerId: entry.record.id, reason }, "worker session ended; waiting for it to reconnect");
    this.hooks.unschedulable(entry);
  }

  drain(workerId: string): WorkerRecord {
    const entry = this.entries.get(workerId);
    if (!entry || entry.record.state === "dead") {
      throw new TaskflowError(Code.NOT_FOUND, `worker ${workerId} not found; \`taskflow workers\` lists them`, { reason: Reason.WORKER_NOT_FOUND, metadata: { workerId } });
    }
    if (entry.record.state !== "draining") {
      entry.record.state = "draining";
      this.hooks.unschedulable(entry);
      entry.session?.drain();
      this.emit(entry);
      this.logger.info({ workerId }, "draining worker");
    }
    return entry.record;
  }

  /** True when the worker takes new tasks. */
  schedulable(entry: WorkerEntry): boolean {
    return entry.session !== undefined && entry.record.state === "alive" && entry.record.running < entry.capacity;
  }

  private checkLiveness(): void {
    const now = this.clock.now();
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.config.liveness;
    for (const entry of this.entries.values()) {
      const record = entry.record;
      if (record.state === "dead") continue;
      if (!entry.session) {
        if (now - entry.disconnectedAt >= this.config.liveness.reconnectGraceMs) this.declareDead(entry, "session lost and not resumed in time");
        continue;
      }
      const silent = now - record.lastHeartbeat;
      // Liveness is progress, not just a pulse: assignments must be acknowledged too.
      const unacked = entry.unackedSince ? now - entry.unackedSince : 0;
      const { ackTimeoutMs } = this.config.liveness;
      if (silent >= heartbeatTimeoutMs || unacked >= ackTimeoutMs * 2) {
        const why = silent >= heartbeatTimeoutMs ? `no heartbeat for ${silent} ms` : `assignments unacknowledged for ${unacked} ms`;
        const session = entry.session;
        this.declareDead(entry, why);
        session?.close();
      } else if ((silent >= heartbeatIntervalMs * 2 || unacked >= ackTimeoutMs) && record.state === "alive") {
        record.state = "suspect";
        this.hooks.unschedulable(entry);
        this.emit(entry);
      }
    }
  }

  private declareDead(entry: WorkerEntry, reason: string): void {
    entry.record.state = "dead";
    this.hooks.unschedulable(entry);
    this.emit(entry);
    this.logger.warn({ workerId: entry.record.id, reason }, "worker is dead");
    this.hooks.lost(entry, `worker ${entry.record.id} lost: ${reason}`);
    entry.record.running = 0;
    this.remove(entry);
  }

  /** A drained worker left: nothing to requeue. */
  private left(entry: WorkerEntry): void {
    entry.record.state = "dead";
    this.hooks.unschedulable(entry);
    this.emit(entry);
    this.logger.info({ workerId: entry.record.id }, "drained worker left");
    this.remove(entry);
  }

  private remove(entry: WorkerEntry): void {
    this.entries.delete(entry.record.id);
    this.byIdx[entry.idx] = undefined;
    this.freeIdx.push(entry.idx);
  }

  private emit(entry: WorkerEntry): void {
    if (this.events.hasSubscribers) this.events.publish({ kind: "worker", time: this.clock.now(), worker: { ...entry.record } });
  }
}
