import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import {
  SessionRequestSchema,
  SessionResponseSchema,
  SubmitTaskStreamRequestSchema,
  SubmitTaskStreamResponseSchema,
  SubmitTasksRequestSchema,
  SubscribeResultsResponseSchema,
} from "./index.js";
import { HelloSchema } from "./index.js";
import {
  decodeHeartbeat,
  decodeResults,
  decodeSessionRequest,
  decodeSessionResponse,
  decodeSubmitAck,
  decodeSubmitTaskStream,
  decodeSubmitTasks,
  RequestRefused,
  type FastSpec,
  encodeAssign,
  encodeDependencyResults,
  encodeSubmitAck,
  encodeHeartbeat,
  encodeResults,
  encodeSubmitTaskStream,
  installFastTextEncoding,
} from "./fast.js";

/** SubmitTasks is encoded by protobuf-es: only SubmitTaskStream is on the hot path. */
function encodeSubmitTasks(specs: readonly FastSpec[], clientId: string, requestId = ""): Uint8Array {
  return toBinary(SubmitTasksRequestSchema, create(SubmitTasksRequestSchema, { specs: [...specs], clientId, requestId }));
}

const ids = ["0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a", "", "ünïcødé-✓", "x".repeat(200)];
const bytes = [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7)];

function same(actual: Uint8Array, expected: Uint8Array): void {
  assert.deepEqual(Buffer.from(actual).toString("hex"), Buffer.from(expected).toString("hex"));
}

describe("fast encoders write exactly what protobuf-es writes", () => {
  it("encodeAssign", () => {
    const assignments = ids.flatMap((taskId, i) =>
      bytes.map((payload, j) => ({
        taskId,
        epoch: i * 1000 + j,
        type: i % 2 ? "echo" : "",
        payload,
        attempt: j,
        timeoutMs: i * 70_000,
        ...(j === 1 && { metadata: { trace: `t-${i}`, "ünï": "✓", empty: "" } }),
      })),
    );
    const expected = toBinary(SessionResponseSchema, create(SessionResponseSchema, { kind: { case: "assign", value: { assignments: assignments.map((a) => ({ ...a, epoch: BigInt(a.epoch) })) } } }));
    same(encodeAssign(assignments), expected);
    same(encodeAssign([]), toBinary(SessionResponseSchema, create(SessionResponseSchema, { kind: { case: "assign", value: { assignments: [] } } })));
  });

  it("encodeAssign with a dependent's dependency results, pre-encoded by encodeDependencyResults", () => {
    const dependencyResults = [
      { taskId: ids[0]!, state: 4, result: bytes[2]!, error: "", resultOmitted: false },
      { taskId: ids[2]!, state: 5, result: bytes[0]!, error: "boom ✗", resultOmitted: false },
      { taskId: ids[3]!, state: 4, result: bytes[0]!, error: "", resultOmitted: true },
    ];
    const plain = { taskId: "t2", epoch: 3, type: "echo", payload: bytes[1]!, attempt: 1, timeoutMs: 0 };
    const joined = { taskId: "t1", epoch: 2, type: "join", payload: bytes[1]!, attempt: 1, timeoutMs: 500, dependencyResults: encodeDependencyResults(dependencyResults) };
    const expected = toBinary(
      SessionResponseSchema,
      create(SessionResponseSchema, { kind: { case: "assign", value: { assignments: [{ ...joined, epoch: 2n, dependencyResults }, { ...plain, epoch: 3n }] } } }),
    );
    same(encodeAssign([joined, plain]), expected);
    assert.deepEqual(decodeSessionResponse(expected), fromBinary(SessionResponseSchema, expected));
  });

  it("encodeResults", () => {
    const results = ids.flatMap((taskId, i) =>
      bytes.map((result, j) => ({ taskId, state: (i + j) % 7, result, error: j === 1 ? "boom ✗" : "", attempt: i, workerId: i % 2 ? "host-w1" : "" })),
    );
    same(encodeResults(results), toBinary(SubscribeResultsResponseSchema, create(SubscribeResultsResponseSchema, { results })));
    same(encodeResults([]), toBinary(SubscribeResultsResponseSchema, create(SubscribeResultsResponseSchema, {})));
  });

  it("encodeHeartbeat", () => {
    for (const draining of [false, true]) {
      const hb = {
        running: draining ? 0 : 300,
        results: ids.map((taskId, i) => ({ taskId, epoch: BigInt(i), ok: i % 2 === 0, result: bytes[i % 3]!, error: i % 2 ? "failed: ✗" : "", unrecoverable: i === 3 })),
        started: ids.map((taskId, i) => ({ taskId, epoch: BigInt(i * 3) })),
        assignmentsReceived: draining ? 0n : 123_456_789n,
        draining,
        released: draining ? ids.map((taskId) => ({ taskId, epoch: 2n })) : [],
        seq: draining ? 0n : 2n ** 40n + 3n,
      };
      same(encodeHeartbeat(hb), toBinary(SessionRequestSchema, create(SessionRequestSchema, { kind: { case: "heartbeat", value: hb } })));
    }
  });

  it("encodeSubmitTaskStream, with negative priorities and labels", () => {
    const specs = [-2_147_483_648, -1, 0, 5, 2_147_483_647].map((priority, i) => ({
      type: i === 2 ? "" : "resize",
      payload: bytes[i % 3]!,
      priority,
      requiredLabels: (i % 2 ? { gpu: "yes", zone: "é" } : {}) as Record<string, string>,
      maxAttempts: i,
      timeoutMs: i * 1000,
      idempotencyKey: i === 3 ? "order-42" : "",
      expectedDurationMs: i * 99_999,
      // Delayed tasks: int64 fields, past 2^32 and negative (refused later, but it must decode).
      delayMs: [0n, 31_536_000_000n, -1n, 250n, 0n][i]!,
      runAtMs: [0n, 0n, 0n, 1_767_225_600_123n, -(2n ** 63n)][i]!,
      // Task graphs: field 15 repeated, field 16 (a two-byte tag), including an unknown enum value.
      dependsOn: [[], [ids[0]!], [ids[2]!, ids[3]!], [], ["a", "b", "c"]][i]!,
      onDependencyFailure: [0, 1, 2, 0, 7][i]!,
      // Limits: string fields 13 and 14.
      concurrencyKey: ["", "customer-42", "", "ü/✓ key", "k".repeat(256)][i]!,
      rateLimitKey: ["", "", "email", "customer-42", "r".repeat(300)][i]!,
      // Metadata only where set (the decoder leaves it out otherwise); deadlines int64 like the delays.
      ...(i % 2 === 0 && { metadata: { trace: `t-${i}`, "ünï": "✓", "": "empty key" } }),
      deadlineMs: [0n, 1_767_225_600_000n, -1n, 2n ** 53n + 1n, 0n][i]!,
    }));
    for (const [clientId, requestId] of [["", ""], ["client-1", ""], ["client-1", "req-✓-1"]] as const) {
      same(
        encodeSubmitTaskStream(300, specs, clientId, requestId),
        toBinary(SubmitTaskStreamRequestSchema, create(SubmitTaskStreamRequestSchema, { batchId: 300n, specs, clientId, requestId })),
      );
      const streamed = decodeSubmitTaskStream(encodeSubmitTaskStream(7, specs, clientId, requestId));
      assert.equal(streamed.batchId, 7n);
      assert.equal(streamed.clientId, clientId);
      assert.equal(streamed.requestId, requestId);
      assert.deepEqual(streamed.specs.map((s) => ({ ...s, payload: [...s.payload] })), specs.map((s) => ({ ...s, payload: [...s.payload] })));
      const back = fromBinary(SubmitTaskStreamRequestSchema, encodeSubmitTaskStream(1, specs, clientId, requestId));
      assert.deepEqual(back.specs.map((s) => s.priority), specs.map((s) => s.priority));
    }
  });
});

describe("installFastTextEncoding", () => {
  it("round-trips ASCII, non-ASCII and long strings", () => {
    installFastTextEncoding();
    const te = getTextEncoding();
    for (const s of ["", "abc", "0b7c2a43-5f7e-4c1a-9a51-8f0e3d2b1c4a", "ünïcødé ✓", "y".repeat(500)]) {
      const encoded = te.encodeUtf8(s);
      same(encoded, new TextEncoder().encode(s));
      assert.equal(te.decodeUtf8(encoded), s);
    }
    assert.throws(() => te.decodeUtf8(new Uint8Array([0xff, 0xfe]), true));
  });
});

describe("fast decoders read what protobuf-es reads", () => {
  it("decodeResults", () => {
    const results = ids.map((taskId, i) => ({ taskId, state: i + 1, result: bytes[i % 3]!, error: i % 2 ? "✗ failed" : "", attempt: i, workerId: i ? "w" : "" }));
    const wire = toBinary(SubscribeResultsResponseSchema, create(SubscribeResultsResponseSchema, { results }));
    const decoded = decodeResults(wire).results;
    const expected = fromBinary(SubscribeResultsResponseSchema, wire).results;
    assert.deepEqual(decoded.map((r) => ({ ...r, result: [...r.result] })), expected.map(({ $typeName: _, ...r }) => ({ ...r, result: [...r.result] })));
  });

  it("decodeHeartbeat and decodeSessionRequest", () => {
    const value = {
      running: 3,
      results: ids.map((taskId, i) => ({ taskId, epoch: BigInt(i + 1), ok: i % 2 === 0, result: bytes[i % 3]!, error: i % 2 ? "e" : "", unrecoverable: i === 1 })),
      started: [{ taskId: "a", epoch: 9n }],
      assignmentsReceived: 77n,
      draining: true,
      released: [{ taskId: "b", epoch: 2n }],
      seq: 12n,
    };
    const wire = toBinary(SessionRequestSchema, create(SessionRequestSchema, { kind: { case: "heartbeat", value } }));
    const hb = decodeHeartbeat(wire)!;
    assert.equal(hb.running, 3);
    assert.equal(hb.assignmentsReceived, 77n);
    assert.equal(hb.draining, true);
    assert.equal(hb.seq, 12n);
    assert.deepEqual(hb.started, [{ taskId: "a", epoch: 9n }]);
    assert.deepEqual(hb.released, [{ taskId: "b", epoch: 2n }]);
    assert.deepEqual(hb.results.map((r) => ({ ...r, result: [...r.result] })), value.results.map((r) => ({ ...r, result: [...r.result] })));
    const viaSession = decodeSessionRequest(wire);
    assert.equal(viaSession.kind.case, "heartbeat");
    const hello = toBinary(SessionRequestSchema, create(SessionRequestSchema, { kind: { case: "hello", value: create(HelloSchema, { workerId: "w1", slots: 2, taskTypes: ["echo"] }) } }));
    assert.equal(decodeHeartbeat(hello), undefined);
    const decodedHello = decodeSessionRequest(hello);
    assert.equal(decodedHello.kind.case, "hello");
    assert.equal(decodedHello.kind.case === "hello" && decodedHello.kind.value.workerId, "w1");
  });

  it("decodeSessionResponse: assignments by hand, other cases as protobuf-es reads them", () => {
    const assignments = ids.map((taskId, i) => ({
      taskId,
      epoch: [1n, 300n, 2n ** 49n + 5n, 2n ** 63n + 1n][i]!,
      type: i % 2 ? "echo" : "",
      payload: bytes[i % 3]!,
      attempt: i,
      timeoutMs: i * 70_000,
      metadata: (i % 2 ? { region: "eu", "ünï": "✓" } : {}) as Record<string, string>,
    }));
    const cases = [
      create(SessionResponseSchema, { kind: { case: "assign", value: { assignments } } }),
      create(SessionResponseSchema, { kind: { case: "assign", value: { assignments: [] } } }),
      create(SessionResponseSchema, { kind: { case: "welcome", value: { workerId: "w1", heartbeatIntervalMs: 500 } } }),
      create(SessionResponseSchema, { kind: { case: "cancel", value: { tasks: [{ taskId: "a", epoch: 3n }], reason: "user" } } }),
      create(SessionResponseSchema, { kind: { case: "drain", value: {} } }),
      create(SessionResponseSchema, { kind: { case: "stored", value: { seqs: [1n, 2n, 2n ** 50n] } } }),
    ];
    for (const msg of cases) {
      const wire = toBinary(SessionResponseSchema, msg);
      assert.deepEqual(decodeSessionResponse(wire), fromBinary(SessionResponseSchema, wire));
    }
    // Epochs beyond 2^49 take protobuf-es's exact 64-bit path.
    const big = decodeSessionResponse(encodeAssign([{ taskId: "t", epoch: 2 ** 52 + 1, type: "x", payload: bytes[0]!, attempt: 1, timeoutMs: 0 }]));
    assert.equal(big.kind.case === "assign" && big.kind.value.assignments[0]!.epoch, 2n ** 52n + 1n);
    // A truncated message throws rather than reading past its end.
    const wire = toBinary(SessionResponseSchema, cases[0]!);
    assert.throws(() => decodeSessionResponse(wire.subarray(0, wire.length - 3)));
  });

  it("encodeSubmitAck and decodeSubmitAck", () => {
    for (const batchId of [0n, 1n, 300n, 2n ** 40n, 2n ** 64n - 1n]) {
      const expected = toBinary(SubmitTaskStreamResponseSchema, create(SubmitTaskStreamResponseSchema, { batchId, taskIds: ids }));
      same(encodeSubmitAck(batchId, ids), expected);
      assert.deepEqual(decodeSubmitAck(expected), fromBinary(SubmitTaskStreamResponseSchema, expected));
    }
    const flags = ids.map((_, i) => i % 2 === 1);
    const withFlags = toBinary(SubmitTaskStreamResponseSchema, create(SubmitTaskStreamResponseSchema, { batchId: 5n, taskIds: ids, deduplicated: flags }));
    same(encodeSubmitAck(5n, ids, flags), withFlags);
    assert.deepEqual(decodeSubmitAck(withFlags), fromBinary(SubmitTaskStreamResponseSchema, withFlags));
    // All false: nothing on the wire, as the proto says.
    same(encodeSubmitAck(5n, ids, ids.map(() => false)), toBinary(SubmitTaskStreamResponseSchema, create(SubmitTaskStreamResponseSchema, { batchId: 5n, taskIds: ids })));
    const rejected = toBinary(SubmitTaskStreamResponseSchema, create(SubmitTaskStreamResponseSchema, { batchId: 9n, errorCode: 8, errorMessage: "queue full ✗" }));
    assert.deepEqual(decodeSubmitAck(rejected), fromBinary(SubmitTaskStreamResponseSchema, rejected));
  });

  it("refuse the bytes protobuf-es refuses, such as a tag with field number 0", () => {
    for (const garbage of [new Uint8Array([0x00, 0x01]), new Uint8Array([0x08, 0x01, 0x02, 0x05]), new Uint8Array(12).fill(0xff)]) {
      const hex = Buffer.from(garbage).toString("hex");
      assert.throws(() => fromBinary(SubmitTaskStreamRequestSchema, garbage), Error, `protobuf-es refuses ${hex}`);
      assert.throws(() => decodeSubmitTaskStream(garbage), Error, `decodeSubmitTaskStream ${hex}`);
      assert.throws(() => decodeSessionRequest(garbage), Error, `decodeSessionRequest ${hex}`);
    }
  });

  it("decodeSubmitTasks reads what protobuf-es reads", () => {
    const specs: FastSpec[] = [
      { type: "echo", payload: bytes[1]!, priority: -5, requiredLabels: { gpu: "yes" }, maxAttempts: 3, timeoutMs: 1000, idempotencyKey: "k", expectedDurationMs: 7, delayMs: 300_000n, runAtMs: 0n, concurrencyKey: "customer-✓", rateLimitKey: "email", metadata: { tenant: "a", "ünï": "✓" }, deadlineMs: 1_767_225_600_000n },
      { type: "", payload: bytes[0]!, priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, delayMs: 0n, runAtMs: 2n ** 63n - 1n, deadlineMs: -1n },
      { type: "x", payload: bytes[0]!, priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, delayMs: -86_400_000n, runAtMs: 0n, deadlineMs: 0n },
      { type: "join", payload: bytes[0]!, priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, delayMs: 0n, runAtMs: 0n, dependsOn: [ids[0]!, ids[2]!], onDependencyFailure: 2 },
    ];
    const wire = encodeSubmitTasks(specs, "client-✓", "req-1");
    const decoded = decodeSubmitTasks(wire);
    const expected = fromBinary(SubmitTasksRequestSchema, wire);
    assert.equal(decoded.clientId, expected.clientId);
    assert.equal(decoded.requestId, expected.requestId);
    assert.deepEqual(
      decoded.specs.map((s) => ({ ...s, payload: [...s.payload] })),
      // protobuf-es gives every spec a metadata map; the hot decoder only those that carry one.
      expected.specs.map(({ $typeName: _, metadata, ...s }) => ({
        ...s,
        requiredLabels: { ...s.requiredLabels },
        payload: [...s.payload],
        ...(Object.keys(metadata).length > 0 && { metadata: { ...metadata } }),
      })),
    );
  });
});

describe("submit decoders stop at their limits", () => {
  const limits = { maxSpecs: 10_000, maxPayloadBytes: 1024 };
  const empty: FastSpec = { type: "", payload: new Uint8Array(0), priority: 0, requiredLabels: {}, maxAttempts: 0, timeoutMs: 0, idempotencyKey: "", expectedDurationMs: 0, delayMs: 0n, runAtMs: 0n };

  function refusal(code: number, pattern: RegExp) {
    return (err: unknown) => {
      assert.ok(err instanceof RequestRefused, String(err));
      assert.equal(err.code, code);
      assert.match(err.message, pattern);
      return true;
    };
  }

  it("takes 10,000 specs and refuses the 10,001st with INVALID_ARGUMENT before reading further", () => {
    assert.equal(decodeSubmitTasks(encodeSubmitTasks(Array(10_000).fill(empty), "c"), limits).specs.length, 10_000);
    const over = encodeSubmitTasks(Array(10_001).fill(empty), "c");
    assert.throws(() => decodeSubmitTasks(over, limits), refusal(3, /more than 10000 tasks; at most 10000 per call/));
    // Bytes past the 10,001st spec are never read: a truncated tail changes nothing.
    const withBrokenTail = Buffer.concat([over, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])]);
    assert.throws(() => decodeSubmitTasks(withBrokenTail, limits), refusal(3, /at most 10000 per call/));
  });

  it("refuses a payload past the limit with RESOURCE_EXHAUSTED, naming the spec and the config key", () => {
    const specs = [empty, { ...empty, type: "echo", payload: new Uint8Array(1025) }];
    assert.throws(() => decodeSubmitTasks(encodeSubmitTasks(specs, "c"), limits), refusal(8, /specs\[1\]\.payload is 1025 bytes, over the limit of 1024 \(control\.maxPayloadBytes\)/));
    // A length that claims more than the limit is refused before anything is read or copied.
    const claim = Buffer.from([0x0a, 0x06, 0x12, 0x84, 0x80, 0x80, 0x80, 0x01]);
    assert.throws(() => decodeSubmitTasks(claim, limits), refusal(8, /payload is 268435460 bytes/));
  });

  it("decodeSubmitTaskStream refuses just that batch, keeping its batch ID and no specs", () => {
    const ok = decodeSubmitTaskStream(encodeSubmitTaskStream(4, Array(10_000).fill(empty), "c", "r"), limits);
    assert.equal(ok.refused, undefined);
    assert.equal(ok.specs.length, 10_000);
    const tooMany = decodeSubmitTaskStream(encodeSubmitTaskStream(5, Array(10_001).fill(empty), "c", "r"), limits);
    assert.equal(tooMany.batchId, 5n);
    assert.equal(tooMany.requestId, "r");
    assert.deepEqual(tooMany.specs, []);
    assert.ok(tooMany.refused);
    assert.equal(tooMany.refused.code, 3);
    assert.match(tooMany.refused.message, /at most 10000 per call/);
    const big = decodeSubmitTaskStream(encodeSubmitTaskStream(6, [empty, { ...empty, payload: new Uint8Array(2000) }, empty], "c"), limits);
    assert.equal(big.batchId, 6n);
    assert.equal(big.refused?.code, 8);
    assert.match(big.refused!.message, /specs\[1\]\.payload is 2000 bytes/);
    assert.deepEqual(big.specs, []);
    // Malformed bytes still throw: a refusal is for well-formed requests past a limit.
    assert.throws(() => decodeSubmitTaskStream(Buffer.from([0x12, 0x05, 0x12, 0x83]), limits), (err) => !(err instanceof RequestRefused));
  });
});
