/**
 * What a standby control node (config `ha`, ADR 0028) serves on the control port: every call of
 * the three services ends with UNAVAILABLE, reason `TASKFLOW_ERR_NOT_LEADER` and the leader's
 * address in the ErrorInfo metadata (`leader`), so that clients and workers go there; only
 * GetClusterState answers, with the node's role. It holds no task and decodes no request.
 */
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { Code, Reason, TaskflowError, type LeadershipState, type Logger } from "@taskflow/core";
import { ClusterService, TaskService, WorkerService, type GetClusterStateResponse } from "@taskflow/proto";
import { grpcServiceDefinition } from "@taskflow/proto/grpc";
import { Authenticator, type ServerSecurity } from "./auth.js";
import { toStatus } from "./server.js";

/** Options of {@link StandbyServer}. */
export interface StandbyServerOptions {
  /** Where to listen: `control.host` and `control.port`. */
  host: string;
  port: number;
  security: ServerSecurity;
  /** The node's role and the leader it last saw, read on every call. */
  leadership: () => LeadershipState;
  logger: Logger;
}

/** The error every call but GetClusterState gets from a standby. */
export function notLeaderError(state: LeadershipState): TaskflowError {
  const where = state.leader ? `; the leader is ${state.leader}` : "; no node leads right now (an election is under way)";
  return new TaskflowError(Code.UNAVAILABLE, `this control node is a standby${where}`, {
    reason: Reason.NOT_LEADER,
    metadata: state.leader ? { leader: state.leader } : {},
  });
}

/** The control port of a standby node. */
export class StandbyServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING" });
  private bound = 0;

  constructor(private readonly options: StandbyServerOptions) {
    const auth = new Authenticator(options.security.tokens);
    // Tokens are checked as on the leader: a standby tells where the leader is only to callers it would serve.
    this.server = new grpc.Server({ interceptors: auth.enabled ? [auth.interceptor] : [] });
    for (const service of [TaskService, WorkerService, ClusterService]) {
      const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
      const handlers: grpc.UntypedServiceImplementation = {};
      for (const [name, method] of Object.entries(grpcServiceDefinition(service))) {
        // Requests are never read: no decoding, so no request can fail here but with NOT_LEADER.
        definition[name] = { ...method, requestDeserialize: (bytes: Buffer) => bytes };
        handlers[name] = service === ClusterService && name === "getClusterState" ? this.clusterState() : this.refuse(method.responseStream);
      }
      this.server.addService(definition, handlers);
    }
    this.health.addToServer(this.server);
  }

  /** Binds the control port; resolves the bound port. */
  async listen(): Promise<number> {
    const { host, port, security } = this.options;
    const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
    const tls = security.tls;
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.requireClientCert)
      : grpc.ServerCredentials.createInsecure();
    this.bound = await new Promise<number>((resolve, reject) => this.server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound)))).catch(
      (err: Error) => {
        throw new TaskflowError(Code.UNAVAILABLE, `cannot listen on ${address}: ${err.message}; fix: choose another control.port or stop what uses it`, { cause: err });
      },
    );
    return this.bound;
  }

  get port(): number {
    return this.bound;
  }

  /** Ends every open call and frees the port at once (the node is about to lead, on this port). */
  async close(): Promise<void> {
    this.server.forceShutdown();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private refuse(stream: boolean): grpc.UntypedHandleCall {
    const { leadership, logger } = this.options;
    if (!stream) {
      return ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(toStatus(notLeaderError(leadership())))) as grpc.UntypedHandleCall;
    }
    return ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.on("error", (err) => logger.debug({ err }, "standby: a refused stream failed"));
      call.emit("error", toStatus(notLeaderError(leadership())));
    }) as grpc.UntypedHandleCall;
  }

  private clusterState(): grpc.UntypedHandleCall {
    return ((_call: unknown, callback: grpc.sendUnaryData<Partial<GetClusterStateResponse>>) => {
      const state = this.options.leadership();
      callback(null, { policy: "", workers: [], leadership: { role: state.role, epoch: BigInt(state.epoch), leader: state.leader } } as never);
    }) as grpc.UntypedHandleCall;
  }
}
