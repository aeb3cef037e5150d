/**
 * The client's submit pipeline: submits made in the same tick go out as batches on one
 * SubmitTaskStream, matched to their acknowledgements by batch ID, and are sent again (same
 * request IDs, so never twice) after a broken stream or while the control node is unreachable.
 */
import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core/base";
import type { SubmitTaskStreamResponse, TaskService } from "@taskflow/proto";
import { encodeSubmitTaskStream, type FastSpec } from "@taskflow/proto/fast";
import type { ServiceClient } from "@taskflow/proto/grpc";
import { Backoff, retryDelay } from "./backoff.js";
import { batchCount } from "./batching.js";
import { statusError, wireError } from "./errors.js";

/**
 * A `sentAt` that never matches the break count: the task's result may have gone out while no
 * results stream listened, so awaiting it asks the server (see `ResultStream.accepted`).
 */
export const MAY_HAVE_MISSED = -1;

type Resolve<T> = (value: T) => void;
type Reject = (err: unknown) => void;

/** Submits of one batch, as parallel arrays: one object fewer per task while it is in flight. */
interface SubmitBatch {
  resolves: Resolve<string>[];
  rejects: Reject[];
  /** The encoded request, sent again as it is (same request ID) after a failure. */
  bytes: Buffer;
  /** When it was first sent; it is retried until `submitRetryTimeoutMs` after. */
  firstSentAt: number;
  /** {@link SubmitHost.streamBreaks} when it was last sent. */
  sentAt: number;
  /** True once it was sent again: tasks the server then reports deduplicated may be ones an earlier send made. */
  resent: boolean;
  /** Which of its tasks have an idempotency key (undefined: none), so a deduplicated one may be another client's. */
  keyed: boolean[] | undefined;
}

/** What the pipeline needs of its client. */
export interface SubmitHost {
  /** True while the results stream is live: nothing is sent before, so no result is missed. */
  subscribed(): boolean;
  ensureSubscribed(): Promise<void>;
  /** How many times the live results stream broke so far. */
  streamBreaks(): number;
  /**
   * A new task (not a deduplicated one) was accepted: its result will come to this client.
   * `sentAt`: {@link streamBreaks} when its submit went out, or {@link MAY_HAVE_MISSED}.
   */
  accepted(taskId: string, sentAt: number): void;
  closed(): boolean;
}

export interface SubmitSettings {
  clientId: string;
  maxBatch: number;
  maxInFlight: number;
  submitRetryTimeoutMs: number;
  /** Several control addresses: retries after a broken connection wait less (see `retryDelay`). */
  followLeader: boolean;
}

export class SubmitQueue {
  /** True with several control addresses (the client's results stream retries by it too). */
  get followsLeader(): boolean {
    return this.settings.followLeader;
  }

  /** Makes this client's request IDs unique, also against an earlier client with the same client ID. */
  private readonly requestPrefix = randomUUID();
  private resendTimer: NodeJS.Timeout | undefined;
  /** Paces resends and reconnects of submits; reset by an acknowledgement. */
  private readonly submitBackoff = new Backoff();
  private connecting = false;
  /** When submits first found the control node unreachable; 0 while it is reachable. */
  private unreachableSince = 0;
  private queuedSpecs: FastSpec[] = [];
  private queuedResolves: Resolve<string>[] = [];
  private queuedRejects: Reject[] = [];
  private flushScheduled = false;
  private submits: grpc.ClientDuplexStream<unknown, SubmitTaskStreamResponse> | undefined;
  private readonly batches = new Map<number, SubmitBatch>();
  private batchSeq = 0;
  private inFlight = 0;

  constructor(
    private readonly tasks: ServiceClient<typeof TaskService.method>,
    private readonly settings: SubmitSettings,
    private readonly host: SubmitHost,
  ) {}

  /** Fails every submit not yet acknowledged with `err` and drops the stream. */
  close(err: TaskflowError): void {
    clearTimeout(this.resendTimer);
    const submits = this.submits;
    this.submits = undefined;
    submits?.cancel();
    for (const batch of this.batches.values()) for (const reject of batch.rejects) reject(err);
    this.batches.clear();
    for (const reject of this.queuedRejects) reject(err);
    this.queuedSpecs = [];
    this.queuedResolves = [];
    this.queuedRejects = [];
  }

  /** Queues one submit; it goes out with the others of this tick. */
  enqueue(spec: FastSpec, resolve: Resolve<string>, reject: Reject): void {
    this.queuedSpecs.push(spec);
    this.queuedResolves.push(resolve);
    this.queuedRejects.push(reject);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Sends queued submits as batches on one SubmitTaskStream: a message on an open stream costs
   * far less than a unary call, in CPU and in latency. Acknowledgements match by batch ID.
   */
  flush(): void {
    // While batches wait for a retry, new ones wait too, so submits stay in order.
    if (this.resendTimer || !this.queuedSpecs.length) return;
    // Nothing goes out before the results stream is live, so no result can be missed.
    if (!this.host.subscribed()) {
      this.connectThenFlush();
      return;
    }
    while (this.queuedSpecs.length && this.inFlight < this.settings.maxInFlight) {
      const count = batchCount(this.queuedSpecs, this.settings.maxBatch);
      const specs = this.queuedSpecs.splice(0, count);
      const batchId = ++this.batchSeq;
      this.inFlight++;
      // Hand-encoded SubmitTaskStreamRequest: the adapter sends the bytes as they are. Its request
      // ID makes a resend after a broken stream safe: the server answers the same task IDs.
      const bytes = encodeSubmitTaskStream(batchId, specs, this.settings.clientId, `${this.requestPrefix}-${batchId}`);
      this.batches.set(batchId, {
        resolves: this.queuedResolves.splice(0, count),
        rejects: this.queuedRejects.splice(0, count),
        bytes,
        firstSentAt: Date.now(),
        sentAt: this.host.streamBreaks(),
        resent: false,
        keyed: specs.some((s) => s.idempotencyKey) ? specs.map((s) => s.idempotencyKey !== "") : undefined,
      });
      this.submitStream().write(bytes);
    }
  }

  /** Opens the results stream, then sends what is queued; while the node is unreachable, retries. */
  private connectThenFlush(): void {
    if (this.connecting) return;
    this.connecting = true;
    this.host.ensureSubscribed().then(
      () => {
        this.connecting = false;
        this.unreachableSince = 0;
        this.flush();
      },
      (err: unknown) => {
        this.connecting = false;
        const e = wireError(err, Code.UNAVAILABLE);
        const now = Date.now();
        this.unreachableSince ||= now;
        if (e.code !== Code.UNAVAILABLE || now - this.unreachableSince >= this.settings.submitRetryTimeoutMs) {
          this.unreachableSince = 0;
          const failure =
            e.code === Code.UNAVAILABLE && this.settings.submitRetryTimeoutMs > 0
              ? new TaskflowError(Code.UNAVAILABLE, `could not reach the control node for ${this.settings.submitRetryTimeoutMs} ms (submitRetryTimeoutMs): ${e.message}`, { cause: e })
              : e;
          const rejects = this.queuedRejects;
          this.queuedSpecs = [];
          this.queuedResolves = [];
          this.queuedRejects = [];
          for (const reject of rejects) reject(failure);
          return;
        }
        setTimeout(() => this.flush(), retryDelay(this.submitBackoff, e, this.settings.followLeader)).unref();
      },
    );
  }

  /**
   * Sends every unacknowledged batch again once the results stream is live again, after a
   * backoff; a batch that has tried for `submitRetryTimeoutMs` fails with UNAVAILABLE.
   */
  private scheduleResend(cause: TaskflowError): void {
    if (this.host.closed() || this.resendTimer) return;
    this.resendTimer = setTimeout(() => {
      this.resendTimer = undefined;
      const now = Date.now();
      for (const [batchId, batch] of this.batches) {
        if (now - batch.firstSentAt < this.settings.submitRetryTimeoutMs) continue;
        this.batches.delete(batchId);
        this.inFlight--;
        const err = new TaskflowError(
          Code.UNAVAILABLE,
          `could not submit for ${this.settings.submitRetryTimeoutMs} ms (submitRetryTimeoutMs): ${cause.message}`,
          { cause, ...(cause.reason ? { reason: cause.reason, metadata: cause.metadata } : {}) },
        );
        for (const reject of batch.rejects) reject(err);
      }
      this.host.ensureSubscribed().then(
        () => {
          if (this.resendTimer || this.host.closed()) return;
          const stream = this.submitStream();
          const sentAt = this.host.streamBreaks();
          for (const batch of this.batches.values()) {
            batch.sentAt = sentAt;
            batch.resent = true;
            stream.write(batch.bytes);
          }
          this.flush();
        },
        (err: unknown) => this.scheduleResend(wireError(err, Code.UNAVAILABLE)),
      );
    }, retryDelay(this.submitBackoff, cause, this.settings.followLeader));
    this.resendTimer.unref();
  }

  private submitStream(): grpc.ClientDuplexStream<unknown, SubmitTaskStreamResponse> {
    if (this.submits) return this.submits;
    const stream = this.tasks.submitTaskStream() as grpc.ClientDuplexStream<unknown, SubmitTaskStreamResponse>;
    this.submits = stream;
    stream.on("data", (ack: SubmitTaskStreamResponse) => {
      const batchId = Number(ack.batchId);
      const batch = this.batches.get(batchId);
      if (!batch) return;
      if (ack.errorCode === Code.UNAVAILABLE) {
        // Not accepted (the node is stopping, or its store cannot write): the batch waits and goes again.
        this.scheduleResend(statusError(Code.UNAVAILABLE, ack.errorMessage, ack.errorStatus));
        return;
      }
      this.batches.delete(batchId);
      this.inFlight--;
      this.submitBackoff.reset();
      if (ack.errorCode) {
        const err = statusError(ack.errorCode, ack.errorMessage, ack.errorStatus);
        for (const reject of batch.rejects) reject(err);
      } else {
        const { resolves, sentAt, resent, keyed } = batch;
        const deduplicated = ack.deduplicated;
        for (let i = 0; i < resolves.length; i++) {
          const id = ack.taskIds[i]!;
          // A new task's result may already be here: it can overtake the acknowledgement. An
          // existing task found by its idempotency key may be another client's, or finished
          // already: it is followed on the server when awaited. One a resend found without a key
          // is ours, made by an earlier send of this batch (its ID comes from our request ID):
          // its result comes to us, or went out while no stream listened (the send that made it
          // broke), so awaiting it asks the server rather than opening a watch per task.
          if (!deduplicated[i]) this.host.accepted(id, sentAt);
          else if (resent && !keyed?.[i]) this.host.accepted(id, MAY_HAVE_MISSED);
          resolves[i]!(id);
        }
      }
      this.flush();
    });
    const broken = (err: unknown) => {
      if (this.submits !== stream) return;
      this.submits = undefined;
      // Whether these batches were accepted is unknown: they go again with the same request
      // IDs, so the server answers the tasks it already made instead of making them twice.
      if (this.batches.size) this.scheduleResend(wireError(err, Code.UNAVAILABLE));
      else if (this.queuedSpecs.length) this.scheduleFlush();
    };
    stream.on("error", broken);
    stream.on("end", () => broken(new TaskflowError(Code.UNAVAILABLE, "the control node closed the submit stream")));
    return stream;
  }
}
