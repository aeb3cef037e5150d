/**
 * The bridge between protobuf-es service descriptors and grpc-js.
 *
 * protobuf-es generates no grpc-js stubs, so this module turns a generated `GenService` into a
 * grpc-js `ServiceDefinition` and gives typed server handlers and promise-based clients over it.
 */
import * as grpc from "@grpc/grpc-js";
import { constants as http2 } from "node:http2";
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { RequestRefused, installFastTextEncoding } from "./fast.js";
import { REASON_KEY, STATUS_DETAILS_KEY, encodeStatus, reasonFromStatusBytes, type ErrorReason } from "./status.js";

// Every process that talks gRPC through this adapter gets the faster short-string codec.
installFastTextEncoding();

type Method = GenServiceMethods[string];
type In<M extends Method> = MessageShape<M["input"]>;
type Out<M extends Method> = MessageShape<M["output"]>;
type OutInit<M extends Method> = MessageInitShape<M["output"]>;

function serializer<D extends DescMessage>(schema: D): (msg: MessageInitShape<D>) => Buffer {
  return (msg) => {
    // Bytes from the hand-written encoders in ./fast.js go out as they are.
    if (msg instanceof Uint8Array) return Buffer.isBuffer(msg) ? msg : Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
    // grpc-js writes only Buffers; wrap the encoded bytes without copying them.
    const message = isMessage(msg, schema) ? msg : create(schema, msg);
    const bytes = toBinary(schema, message as MessageShape<D>);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D): (buf: Buffer) => MessageShape<D> {
  return (buf) => fromBinary(schema, buf);
}

/** Hand-written decoders by method local name, for hot messages (see ./fast.js). */
export type Decoders = Partial<Record<string, (bytes: Buffer) => unknown>>;

/** Turns a generated service descriptor into a grpc-js service definition, keyed by method local name. */
export function grpcServiceDefinition(service: DescService, decoders: { requests?: Decoders; responses?: Decoders } = {}): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const kind = method.methodKind;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.localName,
      requestStream: kind === "client_streaming" || kind === "bidi_streaming",
      responseStream: kind === "server_streaming" || kind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: decoders.requests?.[method.localName] ?? deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: decoders.responses?.[method.localName] ?? deserializer(method.output),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition;
}

/** Typed grpc-js server handlers for a generated service. */
export type ServiceHandlers<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? grpc.handleUnaryCall<In<S[K]>, Out<S[K]> | OutInit<S[K]>>
    : S[K]["methodKind"] extends "server_streaming"
      ? grpc.handleServerStreamingCall<In<S[K]>, Out<S[K]> | OutInit<S[K]>>
      : S[K]["methodKind"] extends "client_streaming"
        ? grpc.handleClientStreamingCall<In<S[K]>, Out<S[K]> | OutInit<S[K]>>
        : grpc.handleBidiStreamingCall<In<S[K]>, Out<S[K]> | OutInit<S[K]>>;
};

/**
 * What a server's request decoder gives for bytes that are not a valid message, or that break a
 * limit the decoder enforces while it reads (it throws {@link RequestRefused}). grpc-js answers
 * a decoder that throws with INTERNAL, which blames the server for the client's bytes and hides
 * why; {@link rejectMalformedRequests} ends such a call with `code` and `details` instead.
 */
export class MalformedRequest {
  /** The status code the call ends with: INVALID_ARGUMENT unless the decoder chose another. */
  readonly code: grpc.status;
  /** The status message the call ends with. */
  readonly details: string;
  constructor(
    /** The message type the bytes should have been, such as `taskflow.v1.SubmitTaskRequest`. */
    readonly typeName: string,
    /** What the decoder found wrong, such as `premature EOF`. */
    readonly reason: string,
    /** A decoder's own refusal: its code, message and `TASKFLOW_ERR_*` reason are used as they are. */
    refused?: RequestRefused,
  ) {
    this.code = refused ? (refused.code as grpc.status) : grpc.status.INVALID_ARGUMENT;
    this.details = refused ? refused.message : `request is not a valid ${typeName} message: ${reason}`;
    this.refused = refused;
  }
  private readonly refused: RequestRefused | undefined;
  /** The trailers the call ends with: the status details, with the decoder's reason if it gave one. */
  trailers(): grpc.Metadata {
    if (this.refused) return statusTrailers(this.code, this.details, this.refused.reason, this.refused.metadata);
    return statusTrailers(this.code, this.details, "TASKFLOW_ERR_INVALID_REQUEST", { messageType: this.typeName });
  }
}

/**
 * Trailers for a failed call: `grpc-status-details-bin` with a `google.rpc.Status` (its details
 * hold an `ErrorInfo` when there is a reason), and the reason alone in `taskflow-reason` as well.
 */
export function statusTrailers(code: number, message: string, reason?: string, metadata?: Readonly<Record<string, string>>): grpc.Metadata {
  const trailers = new grpc.Metadata();
  const bytes = encodeStatus(code, message, reason, metadata);
  trailers.set(STATUS_DETAILS_KEY, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (reason) trailers.set(REASON_KEY, reason);
  return trailers;
}

/**
 * The reason a failed call's trailers give: the `ErrorInfo` in `grpc-status-details-bin`, else the
 * `taskflow-reason` trailer (an older control node sends only that one, without metadata).
 */
export function reasonFromTrailers(trailers: grpc.Metadata | undefined): ErrorReason | undefined {
  if (!trailers) return undefined;
  const details = trailers.get(STATUS_DETAILS_KEY)[0];
  const fromDetails = details instanceof Uint8Array ? reasonFromStatusBytes(details) : undefined;
  if (fromDetails) return fromDetails;
  const reason = trailers.get(REASON_KEY)[0];
  return typeof reason === "string" && reason ? { reason, metadata: {} } : undefined;
}

function tolerant(typeName: string, decode: (bytes: Buffer) => unknown): (bytes: Buffer) => unknown {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      if (err instanceof RequestRefused) return new MalformedRequest(typeName, err.message, err);
      return new MalformedRequest(typeName, err instanceof Error ? err.message : String(err));
    }
  };
}

/**
 * A server interceptor that ends a call whose request did not decode (or broke a decoder's
 * limit) with the {@link MalformedRequest}'s code, naming the message type and the fault, before
 * any handler sees it. A server that {@link addService} registers handlers on needs it as soon as
 * it may get bytes from clients it does not control: without it, handlers get a
 * {@link MalformedRequest} in place of a message.
 */
export const rejectMalformedRequests: grpc.ServerInterceptor = (_method, call) => {
  let rejected = false;
  const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, nextMessage) => {
          if (rejected) return;
          if (!(message instanceof MalformedRequest)) return nextMessage(message);
          rejected = true;
          intercepted.sendStatus({ code: message.code, details: message.details, metadata: message.trailers() });
        },
        // The call is over once rejected: a half-close must not start a handler on no request.
        onReceiveHalfClose: (nextHalfClose) => {
          if (!rejected) nextHalfClose();
        },
      }),
  });
  return intercepted;
};

/**
 * Registers typed handlers for a generated service on a grpc-js server. Requests that do not
 * decode reach grpc-js as {@link MalformedRequest}s: create the server with
 * {@link rejectMalformedRequests} among its interceptors.
 */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  requestDecoders?: Decoders,
): void {
  const definition = grpcServiceDefinition(service, requestDecoders ? { requests: requestDecoders } : {});
  for (const method of service.methods) {
    const entry = definition[method.localName]!;
    entry.requestDeserialize = tolerant(method.input.typeName, entry.requestDeserialize);
  }
  server.addService(definition, handlers as unknown as grpc.UntypedServiceImplementation);
}

/**
 * Resets a server call's HTTP/2 stream with ENHANCE_YOUR_CALM, which a gRPC client reports as
 * RESOURCE_EXHAUSTED, and frees what the stream still holds to send. A status cannot do this for
 * a client that does not read: grpc-js sends trailers only after every queued message, and those
 * wait for the client. grpc-js has no public way to reset a call, so this finds the stream under
 * the call's interceptors; returns false when it cannot (the caller then ends the call itself).
 */
export function resetCall(call: object): boolean {
  let inner: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; inner && depth < 16; depth++) {
    const stream = (inner as { stream?: { close?: (code: number) => void; destroyed?: boolean } }).stream;
    if (stream && typeof stream.close === "function") {
      if (!stream.destroyed) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
      return true;
    }
    inner = (inner as { nextCall?: unknown }).nextCall;
  }
  return false;
}

/** Per-call options of a typed client. */
export interface CallOptions {
  /** Absolute deadline or milliseconds from now. Default: none. */
  deadline?: Date | number;
  metadata?: grpc.Metadata;
  signal?: AbortSignal;
}

/** A typed, promise-based client for a generated service. Streams are grpc-js streams. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? (request: MessageInitShape<S[K]["input"]>, options?: CallOptions) => Promise<Out<S[K]>>
    : S[K]["methodKind"] extends "server_streaming"
      ? (request: MessageInitShape<S[K]["input"]>, options?: CallOptions) => grpc.ClientReadableStream<Out<S[K]>>
      : S[K]["methodKind"] extends "client_streaming"
        ? never
        : (options?: CallOptions) => grpc.ClientDuplexStream<MessageInitShape<S[K]["input"]>, Out<S[K]>>;
} & { readonly raw: grpc.Client };

function callOptions(options: CallOptions | undefined): grpc.CallOptions {
  if (options?.deadline === undefined) return {};
  const deadline = typeof options.deadline === "number" ? Date.now() + options.deadline : options.deadline;
  return { deadline };
}

/**
 * Channel options every Taskflow client should use. grpc-js keeps a per-call retry buffer by
 * default and re-slices it per message; turning it off makes client streams ~10x faster.
 */
export const defaultChannelOptions: grpc.ChannelOptions = {
  "grpc.per_rpc_retry_buffer_size": 0,
  // Each client gets its own connection: a new client must not inherit another's reconnect backoff.
  "grpc.use_local_subchannel_pool": 1,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 64 * 1024 * 1024,
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  // grpc-js backs off reconnects up to 120 s; workers and clients must find a restarted control
  // node within a second or so (they retry on their own schedule, every call fails fast meanwhile).
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1_000,
};

/** Creates a typed client for a generated service on an existing or new channel. */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  options: { credentials?: grpc.ChannelCredentials; channelOptions?: grpc.ChannelOptions; channel?: grpc.ChannelInterface; responseDecoders?: Decoders } = {},
): ServiceClient<S> {
  const definition = grpcServiceDefinition(service, options.responseDecoders ? { responses: options.responseDecoders } : {});
  const Ctor = grpc.makeGenericClientConstructor(definition, service.typeName);
  const channelOptions: grpc.ChannelOptions = { ...defaultChannelOptions, ...options.channelOptions };
  if (options.channel) channelOptions.channelOverride = options.channel;
  const raw = new Ctor(address, options.credentials ?? grpc.credentials.createInsecure(), channelOptions);
  const client: Record<string, unknown> = { raw };
  for (const method of service.methods) {
    const name = method.localName;
    const fn = (raw as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!.bind(raw);
    switch (method.methodKind) {
      case "unary":
        client[name] = (request: unknown, opts?: CallOptions) =>
          new Promise((resolve, reject) => {
            const metadata = opts?.metadata ?? new grpc.Metadata();
            const call = fn(request, metadata, callOptions(opts), (err: grpc.ServiceError | null, res: unknown) =>
              err ? reject(err) : resolve(res),
            ) as grpc.ClientUnaryCall;
            bindSignal(call, opts?.signal);
          });
        break;
      case "server_streaming":
        client[name] = (request: unknown, opts?: CallOptions) => {
          const call = fn(request, opts?.metadata ?? new grpc.Metadata(), callOptions(opts)) as grpc.ClientReadableStream<unknown>;
          bindSignal(call, opts?.signal);
          return call;
        };
        break;
      case "bidi_streaming":
        client[name] = (opts?: CallOptions) => {
          const call = fn(opts?.metadata ?? new grpc.Metadata(), callOptions(opts)) as grpc.ClientDuplexStream<unknown, unknown>;
          bindSignal(call, opts?.signal);
          return call;
        };
        break;
      default:
        // Taskflow's API has no client-streaming-only RPCs.
        break;
    }
  }
  return client as ServiceClient<S>;
}

/**
 * Cancels `call` when `signal` aborts, and lets go of the signal when the call ends: a long-lived
 * signal (a client's "closing") shared by many calls must not keep a listener per finished call.
 */
function bindSignal(call: { cancel(): void; once(event: "status", listener: () => void): unknown }, signal: AbortSignal | undefined): void {
  if (!signal) return;
  if (signal.aborted) return call.cancel();
  const cancel = () => call.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  call.once("status", () => signal.removeEventListener("abort", cancel));
}
