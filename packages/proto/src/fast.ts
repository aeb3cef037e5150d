/**
 * Hand-written encoders for the four messages on the per-task hot path (assignments, worker
 * heartbeats, client submits and result batches). protobuf-es encodes by reflection, which cost
 * about a fifth of the control node's CPU per task; these write the same bytes (unit tests
 * compare them with `toBinary`) into one buffer sized up front. Pass the returned Buffer to a
 * stream's `write` or a unary call in place of the message: the grpc adapter sends bytes as they
 * are. Every other message keeps using protobuf-es.
 */
export { installFastTextEncoding } from "./fast-wire.js";
export { encodeResults, decodeResults, type FastResult } from "./fast-results.js";
export {
  encodeAssign,
  encodeDependencyResults,
  encodeHeartbeat,
  decodeHeartbeat,
  decodeSessionRequest,
  decodeSessionResponse,
  type DecodedHeartbeat,
  type FastAssignment,
  type FastHeartbeat,
  type FastTaskRef,
  type FastWorkerResult,
} from "./fast-session.js";
export {
  RequestRefused,
  encodeSubmitTaskStream,
  decodeSubmitTasks,
  decodeSubmitTaskStream,
  encodeSubmitAck,
  decodeSubmitAck,
  type DecodedSubmitBatch,
  type DecodedSubmitTasks,
  type FastSpec,
  type SubmitLimits,
} from "./fast-submit.js";
