/**
 * Bounds what a server stream holds for a client that does not read. grpc-js queues every
 * message written to a call until the client's HTTP/2 window lets it out, without limit: clients
 * that opened result streams and never read grew the control node by hundreds of MB. Here each
 * write is counted until grpc-js hands it to the socket; past the limit the stream is reset
 * (RESOURCE_EXHAUSTED at the client) and nothing more is queued on it.
 */
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@taskflow/core";
import { resetCall } from "@taskflow/proto/grpc";

export interface BoundedWriter {
  /** Writes encoded message bytes; false once the stream was cut off (the message is dropped). */
  write(bytes: Buffer): boolean;
  /** True once the stream was cut off. */
  readonly cutOff: boolean;
}

export function boundedWriter(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  limit: number,
  logger: Logger,
  what: string,
  onCutOff: () => void,
): BoundedWriter {
  let unsent = 0;
  let cutOff = false;
  const sent = (bytes: number) => () => {
    unsent -= bytes;
  };
  return {
    get cutOff() {
      return cutOff;
    },
    write(bytes) {
      if (cutOff || !call.writable) return false;
      // One message past the limit still goes out when nothing else waits: a large result is not
      // a slow reader.
      if (unsent > 0 && unsent + bytes.length > limit) {
        cutOff = true;
        logger.warn({ stream: what, unsentBytes: unsent, limit, peer: call.getPeer() }, "client does not read its stream; reset it (control.maxStreamBufferBytes)");
        onCutOff();
        if (!resetCall(call)) {
          call.emit("error", { code: 8, details: `${what}: the client did not read ${unsent} bytes; at most ${limit} wait (control.maxStreamBufferBytes)` });
        }
        return false;
      }
      unsent += bytes.length;
      call.write(bytes, sent(bytes.length));
      return true;
    },
  };
}
