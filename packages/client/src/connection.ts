/** How the SDK reaches a control node: TLS (optionally mTLS) and a bearer token on every call. */
import * as grpc from "@grpc/grpc-js";
import { LeaderChannel, controlAddresses } from "./leader-channel.js";

/** TLS to the control node. PEM contents (not paths). */
export interface TlsOptions {
  /** CA certificates the control node's certificate must chain to. @defaultValue the system's CAs */
  ca?: Buffer | string;
  /** This client's certificate chain, for a node that requires client certificates (mTLS). @defaultValue none */
  cert?: Buffer | string;
  /** The private key of `cert`. @defaultValue none */
  key?: Buffer | string;
  /** The name to check the node's certificate against, when it differs from the address's host. @defaultValue the address's host */
  serverName?: string;
}

/** The connection options {@link TaskflowClient} and {@link TaskflowWorker} share. */
export interface ConnectionOptions {
  /** Connect with TLS; `true` trusts the system's CAs. @defaultValue plaintext */
  tls?: TlsOptions | boolean;
  /** Ready-made grpc-js channel credentials; overrides `tls`. @defaultValue from `tls` */
  credentials?: grpc.ChannelCredentials;
  /** Bearer token sent in the `authorization` metadata of every call (`taskflow token create` makes one). @defaultValue none */
  token?: string;
}

const buf = (v: Buffer | string | undefined) => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

/** Channel credentials and the client options (token interceptor, server name) for `options`. */
export function connection(options: ConnectionOptions): { credentials: grpc.ChannelCredentials; clientOptions: grpc.ChannelOptions } {
  const tls = options.tls === true ? {} : options.tls || undefined;
  const credentials =
    options.credentials ?? (tls ? grpc.credentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert)) : grpc.credentials.createInsecure());
  const clientOptions: grpc.ChannelOptions = {};
  if (tls?.serverName) clientOptions["grpc.ssl_target_name_override"] = tls.serverName;
  const token = options.token;
  if (token) {
    const bearer = `Bearer ${token}`;
    const withToken: grpc.Interceptor = (callOptions, nextCall) =>
      new grpc.InterceptingCall(nextCall(callOptions), {
        start(metadata, listener, next) {
          metadata.set("authorization", bearer);
          next(metadata, listener);
        },
      });
    clientOptions["interceptors"] = [withToken];
  }
  return { credentials, clientOptions };
}

/**
 * The channel setup for the control address(es) `address`: with one address, as before; with
 * several (`"a:1,b:2"` or an array), a {@link LeaderChannel} that follows the leader among
 * standby control nodes, to pass as the clients' channel, with its interceptor first.
 */
export function controlConnection(
  address: string | readonly string[],
  options: ConnectionOptions,
  channelOptions: grpc.ChannelOptions = {},
): { target: string; credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions; channel: LeaderChannel | undefined } {
  const addresses = controlAddresses(address);
  const { credentials, clientOptions } = connection(options);
  const merged: grpc.ChannelOptions = { ...channelOptions, ...clientOptions };
  if (addresses.length === 1) return { target: addresses[0]!, credentials, channelOptions: merged, channel: undefined };
  // The channels underneath get the channel options only; interceptors belong to the clients.
  const { interceptors, ...plain } = merged as grpc.ChannelOptions & { interceptors?: grpc.Interceptor[] };
  const channel = new LeaderChannel(addresses, credentials, plain);
  return { target: addresses.join(","), credentials, channelOptions: { ...merged, interceptors: [channel.interceptor, ...(interceptors ?? [])] }, channel };
}
