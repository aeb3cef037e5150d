/**
 * Following the leader among standby control nodes (ADR 0028). Given several control addresses,
 * the SDK talks through one {@link LeaderChannel}: a grpc-js channel that sends every call to the
 * node it believes leads. A call that ends with UNAVAILABLE moves it: to the address a standby
 * named (reason `TASKFLOW_ERR_NOT_LEADER`, metadata `leader`), or, when the connection broke or
 * the standby knows no leader, to the next address. The callers' own retries (submits with their
 * request IDs, a worker's reconnect with its held tasks and results) then reach the new node, with
 * their backoff, so following the leader adds no retry loop of its own.
 */
import * as grpc from "@grpc/grpc-js";
import { Code, Reason, TaskflowError } from "@taskflow/core/base";
import { reasonFromTrailers } from "@taskflow/proto/grpc";

/**
 * The control addresses in `address`: one `host:port`, several separated by commas
 * (`"a:50051,b:50051"`), or an array of them.
 * @throws TaskflowError INVALID_ARGUMENT naming `address` when none is given.
 */
export function controlAddresses(address: string | readonly string[]): string[] {
  const list = (typeof address === "string" ? address.split(",") : address.flatMap((a) => a.split(","))).map((a) => a.trim()).filter(Boolean);
  if (!list.length) throw new TaskflowError(Code.INVALID_ARGUMENT, `address: no control address in ${JSON.stringify(address)}; give host:port, or several separated by commas`);
  return [...new Set(list)];
}

/**
 * grpc-js waits 1 s (then 1.6 s, 2.6 s, … up to 120 s) before it connects again to an address
 * that refused a connection; a node being elected frees and binds its port, and one restarted by
 * its supervisor comes back within seconds, so the channels of a {@link LeaderChannel} try again
 * sooner. Channel options the caller gives win.
 */
const FAILOVER_RECONNECT: grpc.ChannelOptions = { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 };

/** A grpc-js channel over several control nodes that sends each call to the one that leads, as far as it knows. */
export class LeaderChannel implements grpc.ChannelInterface {
  private readonly channels = new Map<string, grpc.ChannelInterface>();
  private index = 0;
  private target: string;
  private closed = false;

  constructor(
    /** The configured addresses, tried in turn. */
    readonly addresses: readonly string[],
    private readonly credentials: grpc.ChannelCredentials,
    private readonly options: grpc.ChannelOptions,
  ) {
    this.target = addresses[0]!;
  }

  /** The address calls go to now. */
  get current(): string {
    return this.target;
  }

  /**
   * A call to `target` ended with UNAVAILABLE and these trailers: go to the leader a standby
   * named (stay when it named itself: elected, still loading), else to the next address. Ignored when calls already go elsewhere (another call's
   * failure moved them first), and for an UNAVAILABLE the leader itself gave for a reason of its
   * own (its store cannot write, say): another node would only send the caller back.
   */
  unavailable(target: string, trailers: grpc.Metadata | undefined): void {
    if (target !== this.target || this.closed) return;
    const why = reasonFromTrailers(trailers);
    if (why && why.reason !== Reason.NOT_LEADER) return;
    const leader = why?.metadata["leader"];
    // The node names itself: it was elected and answers as a standby while it loads its tasks
    // (ADR 0028). It serves within moments; another node would only send the caller back.
    if (leader === target) return;
    if (leader) {
      this.target = leader;
      const at = this.addresses.indexOf(leader);
      if (at >= 0) this.index = at;
      return;
    }
    this.index = (this.index + 1) % this.addresses.length;
    this.target = this.addresses[this.index]!;
  }

  /** The interceptor that reports every UNAVAILABLE to {@link unavailable}; goes first on the clients' call options. */
  readonly interceptor: grpc.Interceptor = (callOptions, nextCall) => {
    const target = this.target;
    return new grpc.InterceptingCall(nextCall(callOptions), {
      start: (metadata, _listener, next) => {
        next(metadata, {
          onReceiveStatus: (status, nextStatus) => {
            if (status.code === grpc.status.UNAVAILABLE) this.unavailable(target, status.metadata);
            nextStatus(status);
          },
        });
      },
    });
  };

  private channel(address: string): grpc.ChannelInterface {
    let channel = this.channels.get(address);
    if (!channel) {
      channel = new grpc.Channel(address, this.credentials, { ...FAILOVER_RECONNECT, ...this.options });
      this.channels.set(address, channel);
    }
    return channel;
  }

  createCall(...args: Parameters<grpc.ChannelInterface["createCall"]>): ReturnType<grpc.ChannelInterface["createCall"]> {
    return this.channel(this.target).createCall(...args);
  }

  getTarget(): string {
    return this.target;
  }

  getConnectivityState(tryToConnect: boolean): grpc.connectivityState {
    return this.channel(this.target).getConnectivityState(tryToConnect);
  }

  watchConnectivityState(currentState: grpc.connectivityState, deadline: Date | number, callback: (error?: Error) => void): void {
    this.channel(this.target).watchConnectivityState(currentState, deadline, callback);
  }

  getChannelzRef(): ReturnType<grpc.ChannelInterface["getChannelzRef"]> {
    return this.channel(this.target).getChannelzRef();
  }

  close(): void {
    this.closed = true;
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
  }
}
