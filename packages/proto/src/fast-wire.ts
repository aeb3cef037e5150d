/**
 * The byte-level parts the hand-written codecs share: varint and string writers, a reader that
 * reads tags and uint64s without allocating, and the short-string text encoding for protobuf-es.
 */
import { BinaryReader, configureTextEncoding } from "@bufbuild/protobuf/wire";

// ---- primitives ---------------------------------------------------------------------------

export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Size of a signed 32-bit value as protobuf writes it (negatives take 10 bytes). */
export function int32Size(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

export function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

export function writeInt32(buf: Buffer, pos: number, n: number): number {
  if (n >= 0) return writeVarint(buf, pos, n);
  // Two's complement over 64 bits, as protobuf encodes negative int32 values.
  let v = BigInt.asUintN(64, BigInt(n));
  for (let i = 0; i < 9; i++) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

/** Size of an int64 as protobuf writes it (two's complement over 64 bits: negatives take 10 bytes). */
export function int64Size(n: bigint): number {
  let v = BigInt.asUintN(64, n);
  let size = 1;
  while (v >= 128n) {
    v >>= 7n;
    size++;
  }
  return size;
}

export function writeInt64(buf: Buffer, pos: number, n: bigint): number {
  let v = BigInt.asUintN(64, n);
  while (v >= 128n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

export function strSize(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Writes a string's bytes (length known); ASCII by hand, anything else through Buffer. */
export function writeStr(buf: Buffer, pos: number, s: string, bytes: number): number {
  if (bytes === s.length) {
    for (let i = 0; i < bytes; i++) buf[pos + i] = s.charCodeAt(i);
  } else {
    buf.write(s, pos, bytes, "utf8");
  }
  return pos + bytes;
}

/** tag + length + string, for a non-empty string field. */
export function lenStrSize(bytes: number): number {
  return 1 + varintSize(bytes) + bytes;
}

/** Size of a `map<string, string>` field: one tag byte, a length and `{1: key, 2: value}` per entry. */
export function mapSize(map: Readonly<Record<string, string>>): number {
  let size = 0;
  for (const key in map) {
    const entry = lenStrSize(strSize(key)) + lenStrSize(strSize(map[key]!));
    size += 1 + varintSize(entry) + entry;
  }
  return size;
}

/** Writes a `map<string, string>` field under a one-byte `tag`; see {@link mapSize}. */
export function writeMap(buf: Buffer, pos: number, tag: number, map: Readonly<Record<string, string>>): number {
  for (const key in map) {
    const value = map[key]!;
    const keyBytes = strSize(key);
    const valueBytes = strSize(value);
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, lenStrSize(keyBytes) + lenStrSize(valueBytes));
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, keyBytes);
    pos = writeStr(buf, pos, key, keyBytes);
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, valueBytes);
    pos = writeStr(buf, pos, value, valueBytes);
  }
  return pos;
}

/** The varint bytes of a uint64. */
export function varint64(v: bigint): number[] {
  const out: number[] = [];
  for (; v >= 0x80n; v >>= 7n) out.push(Number(v & 0x7fn) | 0x80);
  out.push(Number(v));
  return out;
}

export const EMPTY = new Uint8Array(0);

// ---- text encoding for protobuf-es ----------------------------------------------------------

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();
let strictDecoder: InstanceType<typeof TextDecoder> | undefined;

/**
 * Makes protobuf-es encode and decode short ASCII strings (task IDs, types, worker IDs) without
 * a TextEncoder/TextDecoder call each, which cost ~0.5 µs apiece; other strings go through them.
 */
export function installFastTextEncoding(): void {
  configureTextEncoding({
    encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
      const n = text.length;
      if (n > 64) return utf8Encoder.encode(text);
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c > 0x7f) return utf8Encoder.encode(text);
        out[i] = c;
      }
      return out;
    },
    decodeUtf8(bytes: Uint8Array, strict?: boolean): string {
      const n = bytes.length;
      if (n <= 64) {
        let ascii = true;
        for (let i = 0; i < n; i++) {
          if (bytes[i]! > 0x7f) {
            ascii = false;
            break;
          }
        }
        if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
      }
      if (strict) return (strictDecoder ??= new TextDecoder("utf-8", { fatal: true })).decode(bytes);
      return utf8Decoder.decode(bytes);
    },
    checkUtf8(text: string): boolean {
      try {
        encodeURIComponent(text);
        return true;
      } catch {
        return false;
      }
    },
  });
}

// ---- decoders ------------------------------------------------------------------------------

/**
 * protobuf-es's reader plus the two reads the hot decoders do per field without allocating:
 * `BinaryReader.tag()` returns a fresh array and `uint64()` goes through a DataView and an array
 * spread; at a dozen fields per task that showed up as GC time.
 */
export class HotReader extends BinaryReader {
  /** Wire type of the tag `field()` read last. */
  wireType = 0;

  /** Reads a tag: returns its field number and leaves its wire type in `wireType`. */
  field(): number {
    const tag = this.uint32();
    this.wireType = tag & 7;
    const field = tag >>> 3;
    // protobuf-es refuses field 0 the same way; skipping it would accept bytes that are no message.
    if (field === 0) throw new Error(`illegal tag: field no 0 wire type ${this.wireType}`);
    return field;
  }

  /** Reads a uint64 as a bigint, exactly; values up to 2^49 skip the 64-bit path. */
  u64(): bigint {
    const buf = this.buf;
    let pos = this.pos;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7 && pos < this.len; i++) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = pos;
        return BigInt(n);
      }
      mul *= 128;
    }
    return BigInt(this.uint64());
  }

  /** Reads an int64 (a delay or a time in ms). */
  i64(): bigint {
    return BigInt.asIntN(64, this.u64());
  }

  /** Reads one entry of a `map<string, string>` field into `into` (a later key wins, as in protobuf-es). */
  mapEntry(into: Record<string, string>): void {
    const stop = this.uint32() + this.pos;
    let key = "";
    let value = "";
    while (this.pos < stop) {
      const g = this.field();
      if (g === 1) key = this.string();
      else if (g === 2) value = this.string();
      else this.skip(this.wireType, g);
    }
    into[key] = value;
  }

}

/**
 * Decodes `SubscribeResultsResponse` into plain objects shaped like the generated messages
 * (without `$typeName`). Unknown fields are skipped, as protobuf-es does.
 */
