/**
 * The control node's gRPC server: TaskService, WorkerService and ClusterService over the
 * generated descriptors, plus grpc.health.v1.Health and server reflection. Every handler
 * validates its input and answers a precise status; nothing a client sends can crash it.
 */
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescFile, MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { inject, injectable } from "tsyringe";
import {
  Code,
  TOKENS,
  TaskflowError,
  isWellFormedPageToken,
  type Clock,
  type Durability,
  type EventBus,
  type Leadership,
  type LeadershipState,
  type Logger,
  type Plm,
  type Scheduler,
  type TaskflowConfig,
  type TaskState,
} from "@taskflow/core";
import {
  ClusterService,
  ScheduleService,
  TaskService,
  WorkerService,
  file_google_rpc_error_details,
  file_google_rpc_status,
  file_taskflow_v1_cluster_service,
  file_taskflow_v1_schedule_service,
  file_taskflow_v1_task,
  file_taskflow_v1_task_service,
  file_taskflow_v1_worker_service,
  SubmitTaskStreamResponseSchema,
  statusMessage,
  WatchEventsResponseSchema,
  WatchTaskResponseSchema,
  type SessionRequest,
  type SessionResponse,
} from "@taskflow/proto";
import { decodeSessionRequest, decodeSubmitTaskStream, decodeSubmitTasks, encodeAssign, encodeResults, encodeSubmitAck } from "@taskflow/proto/fast";
import { addService, rejectMalformedRequests, statusTrailers } from "@taskflow/proto/grpc";
import { file_google_protobuf_any, file_google_protobuf_timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { coreTaskState, filterFromWire, outcomeToWire, specFromWire, storeToWire, taskToWire, wireTaskState, workerToWire } from "./convert.js";
import { type WorkerRegister } from "./register.js";
import { clusterWorkers } from "./cluster-state.js";
import { type WorkerIndex } from "./worker-index.js";
import type { OutgoingAssignment } from "./worker-ports.js";
import { type WorkerSessions } from "./worker-sessions.js";
import { boundedWriter } from "./stream-budget.js";
import { invalid, requireId } from "./validation.js";
import { Authenticator, scopeOf, tenantOf, type Principal, type ServerSecurity } from "./auth.js";
import { scheduleHandlers } from "./schedule-service.js";
import type { Schedules } from "./schedules.js";

const MAX_BATCH = 10_000;

/** Submit requests refused with one status code and reason (`""` when the error has none). */
export interface SubmitRejections {
  code: string;
  reason: string;
  count: number;
}

/**
 * Converts anything thrown into a grpc-js status error whose trailers carry the reason as a
 * `google.rpc.Status` with an `ErrorInfo` (`grpc-status-details-bin`), for any gRPC client.
 */
export function toStatus(err: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = TaskflowError.from(err);
  return { code: e.code as number as grpc.status, details: e.message, metadata: statusTrailers(e.code, e.message, e.reason, e.metadata) };
}

function unary<Req, Res>(logger: Logger, fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res, refused?: (err: unknown) => void): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          refused?.(err);
          const status = toStatus(err);
          if (status.code === grpc.status.INTERNAL || status.code === grpc.status.UNKNOWN) logger.error({ err }, "request failed");
          callback(status);
        },
      );
  };
}

@injectable()
export class ControlServer {
  private readonly server: grpc.Server;
  /** Worker ID → the identity that registered it; binding while the register knows the worker. */
  private readonly workerOwners = new Map<string, string>();
  /** Tokens and roles of the callers; every call is ANONYMOUS (an admin) when none are configured. */
  readonly auth: Authenticator;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING" });
  private boundPort = 0;
  private serving = false;
  /** Calls that ended with an error, by status code name (for metrics). */
  private readonly errorCounts = new Map<string, number>();
  /** Submit requests refused, by "code reason": stream batches too, whose refusal is an ack, not a status. */
  private readonly submitRejections = new Map<string, SubmitRejections>();
  private readonly submitRefused = (err: unknown) => {
    const e = TaskflowError.from(err);
    const code = Code[e.code] ?? String(e.code);
    const reason = e.reason ?? "";
    const key = `${code} ${reason}`;
    const counted = this.submitRejections.get(key);
    if (counted) counted.count++;
    else this.submitRejections.set(key, { code, reason, count: 1 });
  };
  /** Counts every call's final status; streams and unary calls alike. */
  private readonly countStatuses: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      sendStatus: (status, next) => {
        if (status.code !== grpc.status.OK) {
          const name = grpc.status[status.code] ?? String(status.code);
          this.errorCounts.set(name, (this.errorCounts.get(name) ?? 0) + 1);
        }
        next(status);
      },
    });

  constructor(
    @inject(TOKENS.Config) private readonly config: TaskflowConfig,
    @inject(TOKENS.Plm) private readonly plm: Plm,
    @inject(TOKENS.Register) private readonly register: Pick<WorkerRegister, "drain">,
    @inject(TOKENS.Scheduler) private readonly scheduler: Scheduler,
    @inject(TOKENS.StoreWriteBehind) private readonly durability: Durability,
    @inject(TOKENS.WorkerSessions) private readonly sessions: Pick<WorkerSessions, "open">,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.EventBus) private readonly events: EventBus,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.Security) private readonly security: ServerSecurity,
    @inject(TOKENS.Schedules) private readonly schedules: Pick<Schedules, "create" | "get" | "list" | "pause" | "resume" | "delete" | "update">,
    @inject(TOKENS.Leadership) private readonly leadership: Leadership,
    @inject(TOKENS.WorkerIndex) private readonly workers: Pick<WorkerIndex, "get" | "page" | "summary">,
  ) {
    this.auth = new Authenticator(security.tokens);
    this.auth.onFailure((e) => logger.warn({ reason: e.reason, method: e.method, peer: e.peer, token: e.name }, "call refused"));
    this.server = new grpc.Server({
      // Refused by grpc-js before any decoding: a bigger batch must be split (the SDK splits by bytes).
      "grpc.max_receive_message_length": config.control.maxReceiveMessageBytes,
      "grpc.max_send_message_length": Math.max(64 * 1024 * 1024, config.control.maxPayloadBytes * 2),
      // Nothing reads channelz; it registers every worker's connection and counts every call and
      // message, a cost per connect and per heartbeat at thousands of workers (ADR 0031).
      "grpc.enable_channelz": 0,
      // Outermost last: a malformed request's INVALID_ARGUMENT passes countStatuses on its way out.
      // The token check is outermost: a refused call never reaches the decoders or handlers.
      interceptors: [this.countStatuses, rejectMalformedRequests, ...(this.auth.enabled ? [this.auth.interceptor] : [])],
    });
    this.addTaskService();
    this.addWorkerService();
    this.addClusterService();
    addService(this.server, ScheduleService, scheduleHandlers(this.schedules, (call) => this.auth.principalOf(call), (fn) => unary(this.logger, fn)));
    this.health.addToServer(this.server);
    new ReflectionService(reflectionPackage() as never).addToServer(this.server);
  }

  /** Calls answered with an error status so far, by code name (`NOT_FOUND`, …). */
  errorsByCode(): ReadonlyMap<string, number> {
    return this.errorCounts;
  }

  /** Submit requests refused so far (SubmitTask, SubmitTasks, each SubmitTaskStream batch), by code and reason. */
  submitsRejected(): Iterable<Readonly<SubmitRejections>> {
    return this.submitRejections.values();
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return this.boundPort;
  }

  async listen(): Promise<number> {
    const { host, port } = this.config.control;
    const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(address, this.credentials(), (err, bound) => (err ? reject(err) : resolve(bound))),
    ).catch((err: Error) => {
      throw new TaskflowError(Code.UNAVAILABLE, `cannot listen on ${address}: ${err.message}; fix: choose another control.port or stop what uses it`, {
        cause: err,
      });
    });
    this.serving = true;
    this.setHealth(this.durability.storeWritable);
    this.durability.onStoreHealth((health) => {
      if (this.serving) this.setHealth(health.writable);
    });
    return this.boundPort;
  }

  private credentials(): grpc.ServerCredentials {
    const tls = this.security.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.requireClientCert);
  }

  /** SERVING only while the store takes writes: a node that cannot save is no place to send work. */
  private setHealth(ok: boolean): void {
    for (const name of ["", TaskService.typeName, WorkerService.typeName, ClusterService.typeName, ScheduleService.typeName]) this.health.setStatus(name, ok ? "SERVING" : "NOT_SERVING");
  }

  /** Stops accepting calls and waits for open ones up to `graceMs`, then cancels the rest. */
  async close(graceMs = 2000): Promise<void> {
    this.serving = false;
    this.setHealth(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Every TaskService call acts for the caller's tenant: submits store it on the tasks, reads
   * see only its tasks (another tenant's answer NOT_FOUND), results come from its tasks only.
   * Viewers and admins read every tenant's tasks.
   */
  private addTaskService(): void {
    const { plm, logger, auth } = this;
    const bufferLimit = this.config.control.maxStreamBufferBytes;
    // Enforced while decoding: a request allocates no more specs or payload bytes than these.
    const limits = { maxSpecs: MAX_BATCH, maxPayloadBytes: this.config.control.maxPayloadBytes };
    addService(this.server, TaskService, {
      submitTask: unary(
        logger,
        async (req, call) => {
          const { ids, deduplicated } = await plm.submit([specFromWire(req.spec)], req.clientId, req.requestId, tenantOf(auth.principalOf(call)));
          return { taskId: ids[0]!, deduplicated: deduplicated[0]! };
        },
        this.submitRefused,
      ),
      submitTasks: unary(
        logger,
        async (req, call) => {
          checkBatch(req.specs.length);
          const { ids, deduplicated } = await plm.submit(req.specs.map(specFromWire), req.clientId, req.requestId, tenantOf(auth.principalOf(call)));
          return { taskIds: ids, deduplicated: deduplicated.includes(true) ? deduplicated : [] };
        },
        this.submitRefused,
      ),
      submitTaskStream: (call) => {
        const tenant = tenantOf(auth.principalOf(call));
        // A client may half-close right after its last batch; the call ends only once every
        // batch it sent is acknowledged, or a durable store's slower inserts lose their acks.
        let pending = 0;
        let halfClosed = false;
        const endWhenSettled = () => {
          if (halfClosed && pending === 0 && call.writable) call.end();
        };
        // A client that sends batches but never reads their acknowledgements is cut off too.
        const out = boundedWriter(call, bufferLimit, logger, "SubmitTaskStream", () => {});
        call.on("data", (raw) => {
          const req = raw as ReturnType<typeof decodeSubmitTaskStream>;
          pending++;
          Promise.resolve()
            .then(() => {
              if (req.refused) {
                const { reason, metadata } = req.refused;
                throw new TaskflowError(req.refused.code as Code, req.refused.message, { ...(reason && { reason }), ...(metadata && { metadata }) });
              }
              checkBatch(req.specs.length);
              return plm.submit(req.specs.map(specFromWire), req.clientId, req.requestId, tenant);
            })
            .then(
              // Hand-encoded: an acknowledgement lists every task ID.
              ({ ids, deduplicated }) => out.write(encodeSubmitAck(req.batchId, ids, deduplicated)),
              (err: unknown) => {
                this.submitRefused(err);
                const e = TaskflowError.from(err);
                const errorStatus = statusMessage(e.code, e.message, e.reason, e.metadata);
                out.write(ackBytes({ batchId: req.batchId, errorCode: e.code, errorMessage: e.message, errorStatus }));
              },
            )
            .finally(() => {
              pending--;
              endWhenSettled();
            });
        });
        call.on("end", () => {
          halfClosed = true;
          endWhenSettled();
        });
        call.on("error", () => {});
      },
      getTask: unary(logger, async (req, call) => {
        const task = await plm.get(requireId(req.taskId, "task_id"), scopeOf(auth.principalOf(call)));
        return { task: taskToWire(task, plm.graphOf(task.id)) };
      }),
      watchTask: (call) => {
        const taskId = call.request.taskId;
        let unsubscribe: (() => void) | undefined;
        call.on("cancelled", () => unsubscribe?.());
        const out = boundedWriter(call, bufferLimit, logger, "WatchTask", () => unsubscribe?.());
        Promise.resolve()
          .then(() =>
            plm.watch(
              requireId(taskId, "task_id"),
              (task) => {
              if (!out.write(Buffer.from(toBinary(WatchTaskResponseSchema, create(WatchTaskResponseSchema, { task: taskToWire(task) }))))) return;
              if (task.state === "succeeded" || task.state === "failed" || task.state === "cancelled") {
                unsubscribe?.();
                call.end();
              }
              },
              scopeOf(auth.principalOf(call)),
            ),
          )
          .then(
            (unsub) => {
              if (call.writable) unsubscribe = unsub;
              else unsub();
            },
            (err: unknown) => call.emit("error", toStatus(err)),
          );
      },
      subscribeResults: (call) => {
        try {
          const clientId = requireId(call.request.clientId, "client_id");
          let unsubscribe = () => {};
          const out = boundedWriter(call, bufferLimit, logger, `SubscribeResults of client ${clientId}`, () => unsubscribe());
          unsubscribe = plm.subscribeResults(
            clientId,
            (outcomes) => {
              // Hand-encoded SubscribeResultsResponse: this runs once per finished task.
              out.write(encodeResults(outcomes.map(outcomeToWire)));
            },
            tenantOf(auth.principalOf(call)),
          );
          call.on("cancelled", unsubscribe);
          call.on("close", unsubscribe);
          out.write(encodeResults([]));
        } catch (err) {
          call.emit("error", toStatus(err));
        }
      },
      submitFlow: unary(
        logger,
        async (req, call) => {
          if (req.nodes.length === 0) throw invalid("nodes must hold at least one task");
          if (req.nodes.length > MAX_BATCH) throw invalid(`nodes holds ${req.nodes.length} tasks; at most ${MAX_BATCH} per flow`);
          const nodes = req.nodes.map((n, i) => {
            if (!n.spec) throw invalid(`nodes[${i}].spec is required`);
            return { spec: specFromWire(n.spec), dependsOnNodes: n.dependsOnNodes };
          });
          const { ids, deduplicated } = await plm.submitFlow(nodes, req.clientId, req.requestId, tenantOf(auth.principalOf(call)));
          return { taskIds: ids, deduplicated: deduplicated.includes(true) ? deduplicated : [] };
        },
        this.submitRefused,
      ),
      cancelTask: unary(logger, async (req, call) => {
        const task = await plm.cancel(requireId(req.taskId, "task_id"), req.reason, scopeOf(auth.principalOf(call)));
        return { task: taskToWire(task) };
      }),
      retryTasks: unary(logger, async (req, call) => {
        const filter = req.filter;
        if (req.taskIds.length > 0 && filter) throw invalid("set either task_ids or filter, not both");
        if (!req.taskIds.length && !filter) throw invalid("task_ids or filter is required");
        const options = { maxTasks: req.maxTasks, dryRun: req.dryRun };
        const target = filter ? filterFromWire(filter) : req.taskIds;
        const tasks = await plm.retry(target, options, scopeOf(auth.principalOf(call)));
        return { tasks: tasks.map((t) => taskToWire(t)) };
      }),
      cancelTasks: unary(logger, async (req, call) => {
        if (!req.filter) throw invalid("filter is required");
        const options = { maxTasks: req.maxTasks, dryRun: req.dryRun };
        const tasks = await plm.cancelMany(filterFromWire(req.filter), req.reason, options, scopeOf(auth.principalOf(call)));
        return { tasks: tasks.map((t) => taskToWire(t)) };
      }),
      listTasks: unary(logger, async (req, call) => {
        if (req.pageSize > 1000) throw invalid(`page_size must be at most 1000, got ${req.pageSize}`);
        // Only the form here: what a token means is the store's, which refuses one it did not give out.
        if (req.pageToken && !isWellFormedPageToken(req.pageToken)) throw invalid("page_token is not one this server gave out");
        const states: TaskState[] = [];
        for (const s of req.states) {
          const state = coreTaskState(s);
          if (!state) throw invalid(`states has an unknown task state ${s}`);
          states.push(state);
        }
        const page = await plm.list({
          states,
          type: req.type,
          clientId: req.clientId,
          pageSize: req.pageSize || 50,
          pageToken: req.pageToken,
        }, scopeOf(auth.principalOf(call)));
        return { tasks: page.tasks.map((t) => taskToWire(t)), nextPageToken: page.nextPageToken, totalSize: BigInt(page.totalSize) };
      }),
    }, { submitTasks: (bytes) => decodeSubmitTasks(bytes, limits), submitTaskStream: (bytes) => decodeSubmitTaskStream(bytes, limits) });
  }

  private addWorkerService(): void {
    addService(
      this.server,
      WorkerService,
      { session: (call) => this.workerSession(call) },
      // Heartbeats carry every result: decoded by hand, the same fields as protobuf-es gives.
      { session: decodeSessionRequest },
    );
  }

  /**
   * Whether `principal` may run as worker `workerId` taking `taskTypes`: a live worker's ID
   * belongs to the identity (token name, certificate subject) that registered it, and a worker
   * token limited to task types cannot offer others. Returns the refusal, or undefined.
   */
  private claimWorkerId(principal: Principal, workerId: string, taskTypes: readonly string[], peer: string): TaskflowError | undefined {
    const method = `/${WorkerService.typeName}/Session`;
    const allowed = principal.taskTypes;
    const foreign = allowed && taskTypes.filter((t) => !allowed.has(t));
    if (foreign?.length) {
      return this.auth.refuse(
        { reason: "task_types", method, peer, name: principal.name },
        new TaskflowError(Code.PERMISSION_DENIED, `token ${principal.name} may take only task types ${[...allowed!].join(", ")}; hello offered ${foreign.join(", ")}`),
      );
    }
    const owner = this.workerOwners.get(workerId);
    if (owner !== undefined && owner !== principal.identity && this.workers.get(workerId)) {
      return this.auth.refuse(
        { reason: "worker_id_taken", method, peer, name: principal.name },
        new TaskflowError(Code.PERMISSION_DENIED, `worker ID ${workerId} belongs to another credential while that worker lives; use your own worker ID`),
      );
    }
    this.workerOwners.set(workerId, principal.identity);
    return undefined;
  }

  /** The session stream of one worker: messages in and out; what they mean is WorkerSessions'. */
  private workerSession(call: grpc.ServerDuplexStream<SessionRequest, SessionResponse>): void {
    const principal = this.auth.principalOf(call);
    const send = (kind: SessionResponse["kind"]) => {
      if (call.writable) call.write({ kind } as SessionResponse);
    };
    const session = this.sessions.open(
      {
        // The hot path: hand-encoded, the same bytes as SessionResponse{assign}.
        assign: (assignments: readonly OutgoingAssignment[]) => {
          if (call.writable) call.write(encodeAssign(assignments) as never);
        },
        cancel: (tasks, reason) =>
          send({ case: "cancel", value: { tasks: tasks.map((t) => ({ taskId: t.taskId, epoch: BigInt(t.epoch) })), reason } as never }),
        drain: () => send({ case: "drain", value: {} as never }),
        close: () => {
          if (call.writable) call.end();
        },
        welcome: (workerId, heartbeatIntervalMs) => send({ case: "welcome", value: { workerId, heartbeatIntervalMs, storesResults: true } as never }),
        stored: (seqs) => send({ case: "stored", value: { seqs } as never }),
        fail: (err) => call.emit("error", toStatus(err)),
      },
      (hello) => this.claimWorkerId(principal, hello.workerId, hello.taskTypes, call.getPeer()),
    );
    call.on("data", (msg: SessionRequest) => session.receive(msg));
    call.on("end", () => {
      session.ended("worker closed the session");
      if (call.writable) call.end();
    });
    call.on("error", (err) => session.ended(err.message));
    call.on("cancelled", () => session.ended("session cancelled"));
  }

  private addClusterService(): void {
    const { plm, register, workers, scheduler, durability, events, logger, clock, leadership } = this;
    const bufferLimit = this.config.control.maxStreamBufferBytes;
    addService(this.server, ClusterService, {
      getClusterState: unary(logger, async (req) => {
        const page = clusterWorkers(workers, req);
        const counts = await plm.counts();
        return {
          ...page,
          queued: BigInt(counts.queued),
          running: BigInt(counts.running + counts.assigned),
          succeeded: BigInt(counts.succeeded),
          failed: BigInt(counts.failed),
          cancelled: BigInt(counts.cancelled),
          policy: scheduler.policyName,
          store: storeToWire(durability.storeHealth()),
          leadership: leadershipToWire(leadership.current()),
        };
      }),
      watchEvents: (call) => {
        const includeTasks = call.request.includeTasks;
        let unsubscribe = () => {};
        const out = boundedWriter(call, bufferLimit, logger, "WatchEvents", () => unsubscribe());
        const send = (init: MessageInitShape<typeof WatchEventsResponseSchema>) => out.write(Buffer.from(toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, init))));
        unsubscribe = events.subscribe((event) => {
          if (!call.writable || out.cutOff) return;
          const time = timestampFromMs(event.time);
          if (event.kind === "worker") {
            send({ time, event: { case: "worker", value: workerToWire(event.worker) } });
          } else if (includeTasks) {
            const t = event.task;
            send({
              time,
              event: { case: "task", value: { taskId: t.id, state: wireTaskState(t.state), workerId: t.workerId, epoch: BigInt(t.epoch), type: t.type } },
            });
          }
        });
        call.on("cancelled", unsubscribe);
        call.on("close", unsubscribe);
        // Start with the current workers so a watcher has a full picture: a page a turn, so that
        // 10,000 of them do not hold the loop (ADR 0031). Each is read when sent, so one that
        // changed meanwhile (and was sent live) is never sent older than it is.
        const snapshot = (after: number) => {
          if (!call.writable || out.cutOff) return;
          const page = workers.page(after, WATCH_SNAPSHOT_PAGE);
          for (const e of page.entries) send({ time: timestampFromMs(clock.now()), event: { case: "worker", value: workerToWire(e.record) } });
          if (page.after) setImmediate(() => snapshot(page.after));
        };
        snapshot(0);
      },
      drainWorker: unary(logger, async (req) => {
        const worker = register.drain(requireId(req.workerId, "worker_id"));
        return { worker: workerToWire(worker) };
      }),
    });
  }
}

/** Workers a WatchEvents stream's opening snapshot sends per turn of the event loop. */
const WATCH_SNAPSHOT_PAGE = 100;

function leadershipToWire(state: LeadershipState) {
  return { role: state.role, epoch: BigInt(state.epoch), leader: state.leader };
}

function ackBytes(init: MessageInitShape<typeof SubmitTaskStreamResponseSchema>): Buffer {
  return Buffer.from(toBinary(SubmitTaskStreamResponseSchema, create(SubmitTaskStreamResponseSchema, init)));
}

function checkBatch(n: number): void {
  if (n === 0) throw invalid("specs must hold at least one task");
  if (n > MAX_BATCH) throw invalid(`specs holds ${n} tasks; at most ${MAX_BATCH} per call (split it into batches)`);
}

/** The shape @grpc/reflection reads: services mapped to the encoded files that define them. */
function reflectionPackage(): Record<string, { fileDescriptorProtos: Buffer[] }> {
  // Every file the services' files import, in dependency order, or reflection cannot resolve
  // their types; error_details too, so a reflecting client can decode the ErrorInfo it gets.
  const files: DescFile[] = [
    file_google_protobuf_timestamp,
    file_google_protobuf_any,
    file_google_rpc_status,
    file_google_rpc_error_details,
    file_taskflow_v1_task,
    file_taskflow_v1_task_service,
    file_taskflow_v1_worker_service,
    file_taskflow_v1_cluster_service,
    file_taskflow_v1_schedule_service,
  ];
  const encoded = files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  const out: Record<string, { fileDescriptorProtos: Buffer[] }> = {};
  for (const service of [TaskService, WorkerService, ClusterService, ScheduleService]) out[service.typeName] = { fileDescriptorProtos: encoded };
  return out;
}
