/**
 * The repository's patch of grpc-js (patches/@grpc+grpc-js+*.patch, applied by patch-package on
 * install): its message decoder, one per stream, kept a slice of the last message's bytes and an
 * array of its parts until that stream's next message. A worker session beats every few seconds,
 * so at 10,000 workers every heartbeat's buffers outlived two young-generation GCs and were
 * copied into the old space: 10–12 ms of GC per second with nothing but heartbeats (3–5 with the
 * patch; ADR 0031).
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";

// Internal to grpc-js, reached by path on purpose: this is what the patch changes.
const { StreamDecoder } = createRequire(import.meta.url)("@grpc/grpc-js/build/src/stream-decoder.js") as {
  StreamDecoder: new (maxReadMessageLength: number) => { write(data: Buffer): Buffer[]; readCompressFlag: Buffer; readPartialMessage: Buffer[] };
};

/** A gRPC length-prefixed frame: compression flag, big-endian length, bytes. */
function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe("grpc-js stream decoder (patched)", () => {
  it("keeps no reference to a decoded message's bytes", () => {
    const decoder = new StreamDecoder(-1);
    const chunk = Buffer.concat([frame(Buffer.from("heartbeat one")), frame(Buffer.from("heartbeat two"))]);
    const messages = decoder.write(chunk);
    assert.deepEqual(
      messages.map((m) => m.subarray(5).toString()),
      ["heartbeat one", "heartbeat two"],
    );
    assert.notEqual(decoder.readCompressFlag.buffer, chunk.buffer, "the compression flag is copied, not a slice of the chunk");
    assert.equal(decoder.readPartialMessage.length, 0, "no part of a finished message is held");
  });

  it("still joins a message split across chunks", () => {
    const decoder = new StreamDecoder(-1);
    const whole = frame(Buffer.from("a message in three chunks"));
    const out = [...decoder.write(whole.subarray(0, 3)), ...decoder.write(whole.subarray(3, 12)), ...decoder.write(whole.subarray(12))];
    assert.deepEqual(out.map((m) => m.subarray(5).toString()), ["a message in three chunks"]);
    assert.equal(out[0]![0], 0, "the compression flag of the message");
    assert.equal(decoder.readPartialMessage.length, 0);
  });
});
