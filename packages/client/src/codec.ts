/** Payloads and results travel as bytes; the SDK's default codec is JSON. */
export interface Codec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** JSON, with `undefined` as empty bytes (and empty bytes decoding to `undefined`). */
export const jsonCodec: Codec = {
  encode(value) {
    if (value === undefined) return EMPTY;
    if (value instanceof Uint8Array) return value;
    return encoder.encode(JSON.stringify(value));
  },
  decode(bytes) {
    if (bytes.byteLength === 0) return undefined;
    return JSON.parse(decoder.decode(bytes));
  },
};
