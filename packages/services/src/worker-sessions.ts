/**
 * Worker sessions: what a worker's session stream means to the control plane. A hello
 * registers the worker and reconciles the tasks it says it holds; heartbeats carry liveness,
 * acknowledgements, start notices, results and hand-backs; results are acknowledged as
 * `stored` once durable. The gRPC server only moves these messages (see server.ts).
 */
import { inject, injectable } from "tsyringe";
import { Code, TOKENS, TaskflowError, type Durability, type Logger, type TaskReports } from "@taskflow/core";
import type { Heartbeat, Hello, SessionRequest } from "@taskflow/proto";
import { type Recovery } from "./recovery.js";
import { type WorkerEntry, type WorkerRegister } from "./register.js";
import type { WorkerSessionPort } from "./worker-ports.js";
import { invalid } from "./validation.js";

/** What a session needs from its stream, beyond what the control plane sends a worker. */
export interface SessionTransport extends WorkerSessionPort {
  welcome(workerId: string, heartbeatIntervalMs: number): void;
  /** Heartbeats (by sequence number) whose results are durable: the worker may forget them. */
  stored(seqs: bigint[]): void;
  /** Ends the stream with this error's status. */
  fail(err: TaskflowError): void;
}

/** Refuses a hello (the caller's credential may not run this worker), or returns undefined. */
export type HelloCheck = (hello: Hello) => TaskflowError | undefined;

/** Prefetch beyond this is taken as this: it only sizes how much a worker may hold. */
const MAX_PREFETCH = 100_000;

/**
 * Hellos handled in one turn of the event loop; more wait for the next turn. A burst of hellos
 * (thousands of workers starting together) then blocks the loop for a few ms at a time instead of
 * ~0.1 ms a hello all at once, and heartbeats and timers run in between (ADR 0031).
 */
export const HELLOS_PER_TURN = 50;
/** Messages a session may send after its hello, before the hello is handled; more end it. */
const MAX_EARLY_MESSAGES = 1000;

/** What sessions use of the Register, and nothing more. */
type Workers = Pick<WorkerRegister, "connect" | "heartbeat" | "drain" | "adopted" | "released" | "disconnected">;

@injectable()
export class WorkerSessions {
  constructor(
    @inject(TOKENS.Register) private readonly register: Workers,
    @inject(TOKENS.TaskLifecycle) private readonly reports: TaskReports,
    @inject(TOKENS.Recovery) private readonly recovery: Pick<Recovery, "reconcile">,
    @inject(TOKENS.StoreWriteBehind) private readonly durability: Durability,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {}

  /** Hellos waiting for a turn of their own, in arrival order. */
  private readonly hellos: { session: WorkerSession; hello: Hello }[] = [];
  /** Hellos handled at once in the current turn. */
  private helloTurn = 0;

  /** A session stream opened; `check` vets its hello. */
  open(transport: SessionTransport, check: HelloCheck = () => undefined): WorkerSession {
    return new WorkerSession(this, transport, check);
  }

  /**
   * @internal A vetted hello: handled now while this turn has room and none waits, else queued for
   * the next turns, HELLOS_PER_TURN at a time. The session holds its messages meanwhile.
   */
  admit(session: WorkerSession, hello: Hello): void {
    if (this.hellos.length === 0 && this.helloTurn < HELLOS_PER_TURN) {
      if (this.helloTurn++ === 0) setImmediate(() => (this.helloTurn = 0));
      session.handled(this.hello(session, hello));
      return;
    }
    if (this.hellos.push({ session, hello }) === 1) setImmediate(() => this.nextHellos());
  }

  private nextHellos(): void {
    for (const { session, hello } of this.hellos.splice(0, HELLOS_PER_TURN)) {
      try {
        // A stream that ended while its hello waited registers nothing.
        if (!session.isEnded) session.handled(this.hello(session, hello));
      } catch (err) {
        this.failed(err);
      }
    }
    if (this.hellos.length) setImmediate(() => this.nextHellos());
  }

  /** The worker's entry, or undefined when the register refused it (the session is ended). */
  private hello(session: WorkerSession, hello: Hello): WorkerEntry | undefined {
    let entry: WorkerEntry;
    try {
      entry = this.register.connect(
        {
          workerId: hello.workerId,
          host: hello.host,
          pid: hello.pid,
          slots: hello.slots,
          prefetch: Math.min(hello.prefetch, MAX_PREFETCH),
          labels: { ...hello.labels },
          taskTypes: hello.taskTypes,
        },
        session.transport,
      );
    } catch (err) {
      // Refused (the register is full; it logged why): the worker hears the status, nothing is kept.
      const refused = TaskflowError.from(err);
      if (refused.code === Code.INTERNAL) this.failed(err);
      session.transport.fail(refused);
      return undefined;
    }
    session.transport.welcome(hello.workerId, entry.beatMs);
    this.reconcile(entry, hello, session.transport);
    return entry;
  }

  /** The worker listed every task it holds: keep its own, re-adopt, stop the stale, rerun the lost. */
  private reconcile(entry: WorkerEntry, hello: Hello, transport: SessionTransport): void {
    const { adopted, lost, stale } = this.recovery.reconcile(
      hello.workerId,
      hello.running.map((r) => ({ taskId: r.taskId, epoch: Number(r.epoch) })),
    );
    // Tasks it still holds that are no longer its own (reassigned meanwhile) stop on the worker.
    if (stale.length) transport.cancel(stale, "reassigned while this worker was away");
    if (adopted) this.register.adopted(entry, adopted);
    if (lost) this.register.released(entry, lost);
  }

  /** @internal */ heartbeat(session: WorkerSession, entry: WorkerEntry, hb: Heartbeat): void {
    const { register, reports } = this;
    register.heartbeat(entry, Number(hb.assignmentsReceived));
    const workerId = entry.record.id;
    if (hb.draining && entry.record.state !== "draining") register.drain(workerId);
    if (hb.released.length) reports.handBack(workerId, hb.released.map((r) => ({ taskId: r.taskId, epoch: Number(r.epoch) })));
    for (const s of hb.started) reports.started(workerId, s.taskId, Number(s.epoch));
    if (hb.results.length) {
      reports.completed(
        workerId,
        hb.results.map((r) => ({ taskId: r.taskId, epoch: Number(r.epoch), ok: r.ok, result: r.result, error: r.error, unrecoverable: r.unrecoverable })),
      );
    }
    // Also for results dropped as stale: the worker need not keep those either.
    const seq = hb.seq;
    if (seq) this.durability.afterDurable(() => session.ackStored(seq));
  }

  /** @internal */ ended(session: WorkerSession, entry: WorkerEntry, reason: string): void {
    this.register.disconnected(entry, session.transport, reason);
  }

  /** @internal */ failed(err: unknown): void {
    this.logger.error({ err }, "worker session message failed");
  }
}

/** One worker's session stream: hello first, then heartbeats. */
export class WorkerSession {
  private entry: WorkerEntry | undefined;
  /** Messages that came after the hello while it waited its turn; undefined when none waits. */
  private early: SessionRequest[] | undefined;
  private streamEnded = false;
  /** Heartbeats whose results are durable, told to the worker once per turn. */
  private storedSeqs: bigint[] = [];

  constructor(
    private readonly sessions: WorkerSessions,
    readonly transport: SessionTransport,
    private readonly check: HelloCheck,
  ) {}

  /** One message from the worker. A malformed one ends the session with INVALID_ARGUMENT. */
  receive(msg: SessionRequest): void {
    try {
      if (msg.kind.case === "hello") {
        const hello = msg.kind.value;
        if (this.entry || this.early) return this.refuse("hello was already sent on this session");
        if (!hello.workerId) return this.refuse("hello.worker_id is required");
        if (hello.slots < 1) return this.refuse("hello.slots must be at least 1");
        if (hello.taskTypes.length === 0) return this.refuse("hello.task_types must list at least one task type");
        const refused = this.check(hello);
        if (refused) return this.transport.fail(refused);
        this.early = [];
        this.sessions.admit(this, hello);
        return;
      }
      if (this.early) {
        // Once over the bound the session is ended (once); what else arrives is dropped.
        if (this.early.length <= MAX_EARLY_MESSAGES && this.early.push(msg) > MAX_EARLY_MESSAGES) {
          this.refuse(`more than ${MAX_EARLY_MESSAGES} messages before the welcome`);
        }
        return;
      }
      if (!this.entry) return this.refuse("the first message of a session must be hello");
      if (msg.kind.case === "heartbeat") this.sessions.heartbeat(this, this.entry, msg.kind.value);
    } catch (err) {
      this.sessions.failed(err);
    }
  }

  /** The stream ended (closed, broken or cancelled): the worker gets its reconnect grace. */
  ended(reason: string): void {
    this.streamEnded = true;
    if (this.entry) this.sessions.ended(this, this.entry, reason);
  }

  /** @internal */ get isEnded(): boolean {
    return this.streamEnded;
  }

  /** @internal Its hello was handled: `entry` when welcomed. Messages that waited go through now. */
  handled(entry: WorkerEntry | undefined): void {
    this.entry = entry;
    const early = this.early ?? [];
    this.early = undefined;
    if (entry) for (const msg of early) this.receive(msg);
  }

  /** @internal */ ackStored(seq: bigint): void {
    if (this.storedSeqs.push(seq) > 1) return;
    setImmediate(() => {
      const seqs = this.storedSeqs;
      this.storedSeqs = [];
      this.transport.stored(seqs);
    });
  }

  private refuse(message: string): void {
    this.transport.fail(invalid(message));
  }
}
