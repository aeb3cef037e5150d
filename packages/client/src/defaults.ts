/**
 * The SDK's defaults in one place: the code reads them here, each option's TSDoc states its value.
 */
import { DEFAULT_CONTROL_ADDRESS } from "@taskflow/core/base";

/** Defaults of `ClientOptions`. */
export const CLIENT_DEFAULTS = Object.freeze({
  address: DEFAULT_CONTROL_ADDRESS,
  maxBatchSize: 1000,
  maxInFlightBatches: 8,
  submitRetryTimeoutMs: 30_000,
});

/** Defaults of `WorkerOptions`. */
export const WORKER_DEFAULTS = Object.freeze({
  address: DEFAULT_CONTROL_ADDRESS,
  slots: 16,
  maxReconnectDelayMs: 1000,
  abortGraceMs: 5000,
  shareConnection: true,
});
