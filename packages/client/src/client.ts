/**
 * The client SDK: submit tasks, await or watch their results, cancel, list.
 *
 * Fast by default: `submit` calls made in the same tick are sent as one `SubmitTasks` batch,
 * and results arrive on one `SubscribeResults` stream per client, so no unary call is made per
 * task.
 */
import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core";
import {
  ClusterService,
  DependencyFailure,
  ScheduleService,
  TaskService,
  TaskState,
  type GetClusterStateResponse,
  type ListTasksResponse,
  type Task,
  type TaskResult,
  type WorkerInfo,
} from "@taskflow/proto";
import { decodeResults, decodeSubmitAck, type FastSpec } from "@taskflow/proto/fast";
import { createClient, type ServiceClient } from "@taskflow/proto/grpc";
import { jsonCodec, type Codec } from "./codec.js";
import { controlConnection, type ConnectionOptions } from "./connection.js";
import { wireError } from "./errors.js";
import { Backoff, retryDelay } from "./backoff.js";
import { CLIENT_DEFAULTS } from "./defaults.js";
import { SubmitQueue } from "./submit-queue.js";
import { ScheduleClient } from "./schedules.js";
import { hand, isFinalState, outcomeOf, resultFromTask, settle, type Outcome, type TaskResultFields, type Waiter } from "./outcome.js";

/** Which tasks {@link TaskflowClient.retry} or {@link TaskflowClient.cancelMany} act on; every field set narrows the match. */
export interface BulkFilter {
  /** Only tasks of this type. @defaultValue every type */
  type?: string;
  /** Only this tenant's tasks (admin tokens; a client token always acts on its own tenant). @defaultValue every tenant the token may see */
  tenant?: string;
  /** Retry: FAILED and/or CANCELLED. Cancel: QUEUED, ASSIGNED and/or RUNNING. @defaultValue retry: FAILED; cancel: all three */
  states?: TaskState[];
  /** Only tasks submitted at or after this time. @defaultValue no bound */
  createdAfter?: Date | number;
  /** Only tasks submitted before this time. @defaultValue no bound */
  createdBefore?: Date | number;
  /** Retry only: tasks that finished at or after this time. @defaultValue no bound */
  finishedAfter?: Date | number;
  /** Retry only: tasks that finished before this time. @defaultValue no bound */
  finishedBefore?: Date | number;
  /** Act on at most this many tasks (at most 10,000). @defaultValue 1000 */
  maxTasks?: number;
  /** Find the tasks and change nothing. @defaultValue false */
  dryRun?: boolean;
}

function filterToWire(f: BulkFilter) {
  const ms = (t: Date | number | undefined) => BigInt(t === undefined ? 0 : typeof t === "number" ? t : t.getTime());
  return {
    type: f.type ?? "",
    tenant: f.tenant ?? "",
    states: f.states ?? [],
    createdAfterMs: ms(f.createdAfter),
    createdBeforeMs: ms(f.createdBefore),
    finishedAfterMs: ms(f.finishedAfter),
    finishedBeforeMs: ms(f.finishedBefore),
  };
}

export interface ClientOptions extends ConnectionOptions {
  /**
   * The control node's address; with standby control nodes, several (`"a:50051,b:50051"` or an
   * array): calls go to the leader and follow it on failover (ADR 0028). @defaultValue "127.0.0.1:50051"
   */
  address?: string | readonly string[];
  /** Names this client's results stream; results of tasks it submits come back on it. @defaultValue a random UUID */
  clientId?: string;
  /** Most tasks in one auto-batched `SubmitTasks` call. @defaultValue 1000 */
  maxBatchSize?: number;
  /** Most submit batches in flight at once. @defaultValue 8 */
  maxInFlightBatches?: number;
  /** How payloads and results are encoded. @defaultValue JSON */
  codec?: Codec;
  /** Extra grpc-js channel options. @defaultValue none */
  channelOptions?: grpc.ChannelOptions;
  /**
   * How long a submit keeps trying while the control node cannot be reached (it restarts, say),
   * in ms. Retries carry the same request ID, so a retry never creates a second task; past this
   * the submit fails with UNAVAILABLE. @defaultValue 30000
   */
  submitRetryTimeoutMs?: number;
}

/** Per-task options of a submit. */
export interface SubmitOptions {
  /** Higher runs first under the priority policy. @defaultValue 0 */
  priority?: number;
  /** Labels a worker must have. @defaultValue {} */
  requiredLabels?: Record<string, string>;
  /** Attempts before it fails for good. @defaultValue the cluster's control.defaultMaxAttempts */
  maxAttempts?: number;
  /** Per-attempt timeout in ms. @defaultValue the cluster's control.defaultTimeoutMs */
  timeoutMs?: number;
  /** A repeated key returns the existing task instead of a new one. @defaultValue none */
  idempotencyKey?: string;
  /** A hint for policies. @defaultValue 0 */
  expectedDurationMs?: number;
  /**
   * Delayed task: enters the queue this many ms after the control node accepts it, at most
   * 365 days (`MAX_DELAY_MS`). The wait survives control node restarts; `cancel` works meanwhile.
   * Not together with `runAt`. @defaultValue 0 (now)
   */
  delayMs?: number;
  /**
   * Delayed task: enters the queue at this time (a Date or epoch ms, at most 365 days ahead of
   * the control node's clock); a time in the past runs now. Not together with `delayMs`.
   * @defaultValue none (now)
   */
  runAt?: Date | number;
  /**
   * Task graph: IDs of tasks (of this tenant) it waits for, at most 1,000. It stays queued until
   * every one succeeded; its handler then gets their results (`context.dependencies`). An unknown
   * ID is refused with INVALID_ARGUMENT. @defaultValue none
   */
  dependsOn?: readonly string[];
  /**
   * What it does when a dependency fails or is cancelled: `"cancel"` it (its error names the
   * dependency), or `"run"` it anyway once every dependency finished. @defaultValue "cancel"
   */
  onDependencyFailure?: "cancel" | "run";
  /**
   * At most N tasks sharing this key run at once across the cluster, N from the first rule of
   * the control node's `concurrency` config that fits (no rule fits = no limit). 1-256 printable
   * characters. @defaultValue none
   */
  concurrencyKey?: string;
  /**
   * Each start of the task takes a token of this key's bucket, from the first rule of the
   * control node's `limits` config that fits (for example `{match: {rateLimitKey: "customer-*"},
   * rate: "10/s"}`: a bucket per key). 1-256 printable characters. @defaultValue none
   */
  rateLimitKey?: string;
  /**
   * Free-form string attributes: the handler sees them in its context (`ctx.metadata`), policies
   * and `get` see them. At most 64 entries, keys 1–128 characters, values at most 1024.
   * @defaultValue none
   */
  metadata?: Record<string, string>;
  /**
   * When the task should have finished (a Date or epoch ms): a hint for deadline-aware policies;
   * nothing cancels a task that misses it. At most 365 days ahead of the control node's clock.
   * @defaultValue none
   */
  deadline?: Date | number;
}

export interface TaskRequest extends SubmitOptions {
  type: string;
  payload?: unknown;
}

/**
 * One task of a {@link TaskflowClient.flow}: its `dependsOn` may name other tasks of the same
 * flow by their key, and existing tasks by ID.
 */
export type FlowTask = TaskRequest;


const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

const RESULT_CACHE_LIMIT = 100_000;

export class TaskflowClient {
  readonly clientId: string;
  readonly address: string;
  private readonly tasks: ServiceClient<typeof TaskService.method>;
  private readonly cluster: ServiceClient<typeof ClusterService.method>;
  private readonly codec: Codec;
  private readonly submits: SubmitQueue;
  /**
   * Tasks submitted before the results stream last broke whose results nobody awaited yet: their
   * result may have gone out while no stream listened, so awaiting one also asks the server.
   */
  private readonly mayHaveMissed = new Set<string>();
  private subscription: Promise<void> | undefined;
  /** True while the results stream is live, so submits skip waiting for it. */
  private subscribed = false;
  private stream: grpc.ClientReadableStream<{ results: TaskResult[] }> | undefined;
  /**
   * Tasks this client submitted that have not finished yet, with whoever awaits each (null for
   * nobody yet). One map rather than a set plus a map: two fewer hash operations per task.
   */
  private readonly unfinished = new Map<string, Waiter | Waiter[] | null>();
  /** Outcomes nobody asked for yet, oldest first. */
  private readonly outcomes = new Map<string, Outcome>();
  private closed = false;
  /** Recurring schedules of the token's tenant: create, get, list, pause, resume, delete. */
  readonly schedules: ScheduleClient;

  constructor(options: ClientOptions = {}) {
    const { target, credentials, channelOptions, channel } = controlConnection(options.address ?? CLIENT_DEFAULTS.address, options, options.channelOptions);
    this.address = target;
    this.clientId = options.clientId ?? randomUUID();
    this.codec = options.codec ?? jsonCodec;
    // Result batches and submit acknowledgements carry every task: decoded by hand into the same fields.
    this.tasks = createClient(TaskService, this.address, {
      credentials,
      channelOptions,
      channel,
      responseDecoders: { subscribeResults: decodeResults, submitTaskStream: decodeSubmitAck },
    });
    this.cluster = createClient(ClusterService, this.address, { credentials, channelOptions, channel: this.tasks.raw.getChannel() as never });
    this.schedules = new ScheduleClient(
      createClient(ScheduleService, this.address, { credentials, channelOptions, channel: this.tasks.raw.getChannel() as never }),
      (type, payload, o) => specOf(this.codec, type, payload, o) as unknown as Record<string, unknown>,
      call,
    );
    const settings = {
      clientId: this.clientId,
      maxBatch: options.maxBatchSize ?? CLIENT_DEFAULTS.maxBatchSize,
      maxInFlight: options.maxInFlightBatches ?? CLIENT_DEFAULTS.maxInFlightBatches,
      submitRetryTimeoutMs: options.submitRetryTimeoutMs ?? CLIENT_DEFAULTS.submitRetryTimeoutMs,
      followLeader: channel !== undefined,
    };
    this.submits = new SubmitQueue(this.tasks, settings, {
      subscribed: () => this.subscribed,
      ensureSubscribed: () => this.ensureSubscribed(),
      // A new task's result may already be here: it can overtake the acknowledgement.
      accepted: (id) => {
        if (!this.outcomes.has(id)) this.unfinished.set(id, null);
      },
      closed: () => this.closed,
    });
  }

  /** Submits a task; resolves with its ID once the control node has accepted it. */
  submit(type: string, payload?: unknown, options?: SubmitOptions): Promise<string> {
    if (this.closed) return Promise.reject(new TaskflowError(Code.FAILED_PRECONDITION, "the client is closed"));
    let spec: FastSpec;
    try {
      spec = specOf(this.codec, type, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<string>((resolve, reject) => this.submits.enqueue(spec, resolve, reject));
  }

  /** Submits many tasks; resolves with their IDs in order. */
  async submitMany(requests: readonly TaskRequest[]): Promise<string[]> {
    return Promise.all(requests.map((r) => this.submit(r.type, r.payload, r)));
  }

  /**
   * Submits a task graph in one call, all or none, and resolves with each task's ID by its key.
   * In a task's `dependsOn`, a key of `tasks` names that task of the flow; any other string is
   * an existing task's ID. A cycle, or an unknown ID, is refused with INVALID_ARGUMENT and
   * nothing is stored.
   *
   * @example
   * const ids = await client.flow({
   *   fetch: { type: "fetch", payload: { url } },
   *   resize: { type: "resize", dependsOn: ["fetch"] },
   *   thumbnail: { type: "thumbnail", dependsOn: ["fetch"] },
   *   publish: { type: "publish", dependsOn: ["resize", "thumbnail"] },
   * });
   * await client.result(ids.publish);
   */
  async flow<K extends string>(tasks: Readonly<Record<K, FlowTask>>): Promise<Record<K, string>> {
    if (this.closed) throw new TaskflowError(Code.FAILED_PRECONDITION, "the client is closed");
    const keys = Object.keys(tasks) as K[];
    const index = new Map<string, number>(keys.map((k, i) => [k, i]));
    const nodes = keys.map((key) => {
      const t = tasks[key];
      const local: number[] = [];
      const external: string[] = [];
      for (const dep of t.dependsOn ?? []) {
        const i = index.get(dep);
        if (i === undefined) external.push(dep);
        else local.push(i);
      }
      const spec = specOf(this.codec, t.type, t.payload, { ...t, dependsOn: external });
      return { spec, dependsOnNodes: local };
    });
    await this.ensureSubscribed();
    // A request ID makes the call safe to retry: a repeat answers the same tasks.
    const res = await call(() => this.tasks.submitFlow({ nodes, clientId: this.clientId, requestId: randomUUID() }));
    const ids = {} as Record<K, string>;
    keys.forEach((key, i) => {
      const id = res.taskIds[i]!;
      ids[key] = id;
      if (!res.deduplicated[i] && !this.outcomes.has(id)) this.unfinished.set(id, null);
    });
    return ids;
  }

  /** Submits a task and waits for its result; throws a TaskflowError if it fails or is cancelled. */
  async run<T = unknown>(type: string, payload?: unknown, options?: SubmitOptions): Promise<T> {
    const id = await this.submit(type, payload, options);
    return this.result<T>(id);
  }

  /** Waits for a task's result; throws a TaskflowError if it fails or is cancelled. */
  result<T = unknown>(taskId: string): Promise<T> {
    return this.await(taskId, true) as Promise<T>;
  }

  /** Waits for a task to finish and returns how it ended, without throwing for failures. */
  outcome<T = unknown>(taskId: string): Promise<Outcome<T>> {
    return this.await(taskId, false) as Promise<Outcome<T>>;
  }

  /** The task as the control node sees it now. */
  async get(taskId: string): Promise<Task> {
    const res = await call(() => this.tasks.getTask({ taskId }));
    return res.task!;
  }

  /** Yields the task on every change until it finishes. */
  async *watch(taskId: string, signal?: AbortSignal): AsyncGenerator<Task> {
    const call = this.tasks.watchTask({ taskId }, signal ? { signal } : {});
    try {
      for await (const msg of call as AsyncIterable<{ task?: Task }>) {
        if (msg.task) yield msg.task;
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw wireError(err);
    } finally {
      call.cancel();
    }
  }

  async cancel(taskId: string, reason = ""): Promise<Task> {
    const res = await call(() => this.tasks.cancelTask({ taskId, reason }));
    return res.task!;
  }

  /**
   * Puts failed or cancelled tasks back in the queue with a fresh attempt budget: the tasks with
   * these IDs (all or none), or those matching a filter (default: failed, newest first, at most
   * `maxTasks`). Returns the tasks retried, now queued; with `dryRun`, those that would be.
   */
  async retry(target: string | readonly string[] | BulkFilter): Promise<Task[]> {
    const req = typeof target === "string" || Array.isArray(target)
      ? { taskIds: typeof target === "string" ? [target] : [...(target as readonly string[])] }
      : { filter: filterToWire(target as BulkFilter), maxTasks: (target as BulkFilter).maxTasks ?? 0, dryRun: (target as BulkFilter).dryRun ?? false };
    const res = await call(() => this.tasks.retryTasks(req));
    if (!("dryRun" in req && req.dryRun)) {
      // This client's own retried tasks finish again on its results stream: await them afresh.
      for (const task of res.tasks) {
        if (task.clientId !== this.clientId) continue;
        this.outcomes.delete(task.id);
        if (!this.unfinished.has(task.id)) this.unfinished.set(task.id, null);
      }
    }
    return res.tasks;
  }

  /** Cancels every unfinished task matching `filter` (at least one field set), up to `maxTasks`; returns them. */
  async cancelMany(filter: BulkFilter, reason = ""): Promise<Task[]> {
    const res = await call(() => this.tasks.cancelTasks({ filter: filterToWire(filter), reason, maxTasks: filter.maxTasks ?? 0, dryRun: filter.dryRun ?? false }));
    return res.tasks;
  }

  async list(filter: { states?: TaskState[]; type?: string; clientId?: string; pageSize?: number; pageToken?: string } = {}): Promise<ListTasksResponse> {
    return call(() => this.tasks.listTasks(filter));
  }

  /**
   * The cluster's task counts, store, leadership, a summary of every worker, and one page of
   * workers in join order: `pageSize` (default 500, at most 5000) after `pageToken` (the previous
   * response's `nextPageToken`); `summaryOnly` lists none.
   */
  async clusterState(page: { pageSize?: number; pageToken?: string; summaryOnly?: boolean } = {}): Promise<GetClusterStateResponse> {
    return call(() => this.cluster.getClusterState(page));
  }

  async drainWorker(workerId: string): Promise<WorkerInfo> {
    const res = await call(() => this.cluster.drainWorker({ workerId }));
    return res.worker!;
  }

  /** Decodes a task's result bytes with this client's codec. */
  decode<T = unknown>(bytes: Uint8Array): T {
    return this.codec.decode(bytes) as T;
  }

  /** Closes the channel; waiting calls fail with CANCELLED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream?.cancel();
    const err = new TaskflowError(Code.CANCELLED, "the client was closed");
    this.submits.close(err);
    for (const w of this.unfinished.values()) {
      if (Array.isArray(w)) for (const one of w) one.reject(err);
      else w?.reject(err);
    }
    this.unfinished.clear();
    this.tasks.raw.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** result() (wantsValue) and outcome(): a cached outcome, a wait for one of ours, or a watch. */
  private await(taskId: string, wantsValue: boolean): Promise<unknown> {
    const ready = this.outcomes.get(taskId);
    if (ready) {
      this.outcomes.delete(taskId);
      return wantsValue ? settle(ready) : Promise.resolve(ready);
    }
    const current = this.unfinished.get(taskId);
    if (current !== undefined) {
      const waiting = new Promise((resolve, reject) => {
        const waiter: Waiter = { resolve, reject, wantsValue };
        if (current === null) this.unfinished.set(taskId, waiter);
        else if (Array.isArray(current)) current.push(waiter);
        else this.unfinished.set(taskId, [current, waiter]);
      });
      if (this.mayHaveMissed.delete(taskId)) void this.checkFinished(taskId);
      return waiting;
    }
    // Not ours, or its outcome was dropped from the cache: follow it on the server.
    const followed = this.followToEnd(taskId);
    return wantsValue ? followed.then(settle) : followed;
  }

  /** Opens the results stream once, before the first submit, so no result can be missed. */
  private ensureSubscribed(): Promise<void> {
    if (!this.subscription) {
      this.subscription = this.subscribe().catch((err: unknown) => {
        this.subscription = undefined;
        throw wireError(err);
      });
    }
    return this.subscription;
  }

  private subscribe(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const stream = this.tasks.subscribeResults({ clientId: this.clientId });
      this.stream = stream;
      let live = false;
      stream.on("data", (msg: { results: TaskResult[] }) => {
        if (!live) {
          live = true;
          this.subscribed = true;
          resolve();
        }
        for (const r of msg.results) this.deliver(r);
      });
      stream.on("error", (err) => {
        if (!live) reject(err);
        else if (this.stream === stream) this.resubscribe();
      });
      stream.on("end", () => {
        if (live && this.stream === stream) this.resubscribe();
      });
    });
  }

  /** The stream broke (say the control node restarted): subscribe again, then catch up on what finished meanwhile. */
  private resubscribe(): void {
    if (this.closed) return;
    this.subscription = undefined;
    this.subscribed = false;
    this.stream = undefined;
    const backoff = new Backoff();
    const retry = (reason?: string) => {
      setTimeout(() => {
        if (this.closed) return;
        this.ensureSubscribed().then(
          () => void this.catchUp(),
          (err: unknown) => retry(wireError(err).reason),
        );
      }, retryDelay(backoff, reason, this.submits.followsLeader)).unref();
    };
    retry();
  }

  private async catchUp(): Promise<void> {
    const awaited: string[] = [];
    for (const [taskId, waiting] of this.unfinished) {
      if (waiting === null) this.mayHaveMissed.add(taskId);
      else awaited.push(taskId);
    }
    for (const taskId of awaited) await this.checkFinished(taskId);
  }

  /** Asks the server whether a task of ours finished while no results stream listened. */
  private async checkFinished(taskId: string): Promise<void> {
    try {
      const task = await this.get(taskId);
      if (isFinalState(task.state) && this.unfinished.has(taskId)) this.deliver(resultFromTask(task));
    } catch {
      // It will arrive on the stream, or the caller's own deadline applies.
    }
  }

  /** Every result on this client's stream is for a task it submitted; keep it until asked for. */
  private deliver(r: TaskResultFields): void {
    const waiting = this.unfinished.get(r.taskId);
    if (this.mayHaveMissed.size) this.mayHaveMissed.delete(r.taskId);
    if (waiting) {
      this.unfinished.delete(r.taskId);
      if (Array.isArray(waiting)) {
        const outcome = outcomeOf(this.codec, r);
        for (const w of waiting) hand(w, outcome);
      } else if (waiting.wantsValue && r.state === TaskState.SUCCEEDED) {
        // The common case, result() of a success: no Outcome object is built.
        waiting.resolve(this.codec.decode(r.result));
      } else {
        hand(waiting, outcomeOf(this.codec, r));
      }
      return;
    }
    if (waiting === null) this.unfinished.delete(r.taskId);
    const outcome = outcomeOf(this.codec, r);
    this.outcomes.set(outcome.taskId, outcome);
    if (this.outcomes.size > RESULT_CACHE_LIMIT) {
      const oldest = this.outcomes.keys().next().value as string;
      this.outcomes.delete(oldest);
    }
  }

  private async followToEnd(taskId: string): Promise<Outcome> {
    for await (const task of this.watch(taskId)) {
      if (isFinalState(task.state)) return outcomeOf(this.codec, resultFromTask(task));
    }
    return outcomeOf(this.codec, resultFromTask(await this.get(taskId)));
  }

}

/** The wire spec of a submit; its payload encoded with `codec`. */
function specOf(codec: Codec, type: string, payload: unknown, o: SubmitOptions | undefined): FastSpec {
  const spec: FastSpec = {
    type,
    payload: codec.encode(payload),
    priority: o?.priority ?? 0,
    requiredLabels: o?.requiredLabels ?? NO_LABELS,
    maxAttempts: o?.maxAttempts ?? 0,
    timeoutMs: o?.timeoutMs ?? 0,
    idempotencyKey: o?.idempotencyKey ?? "",
    expectedDurationMs: o?.expectedDurationMs ?? 0,
    delayMs: o?.delayMs ? int64Ms(o.delayMs, "delayMs") : 0n,
    runAtMs: o?.runAt === undefined ? 0n : int64Ms(+o.runAt, "runAt"),
    dependsOn: o?.dependsOn?.length ? [...o.dependsOn] : NO_DEPENDENCIES,
    onDependencyFailure: o?.onDependencyFailure ? dependencyFailure(o.onDependencyFailure) : 0,
    concurrencyKey: o?.concurrencyKey ?? "",
    rateLimitKey: o?.rateLimitKey ?? "",
  };
  // Set only when given (no spread: this runs per task): most tasks have neither.
  if (o?.metadata) spec.metadata = o.metadata;
  if (o?.deadline !== undefined) spec.deadlineMs = int64Ms(+o.deadline, "deadline");
  return spec;
}

const NO_DEPENDENCIES: string[] = [];

/** The wire's `DependencyFailure` for an option value; anything else is refused here, naming the option. */
function dependencyFailure(mode: string): DependencyFailure {
  if (mode === "cancel") return DependencyFailure.CANCEL;
  if (mode === "run") return DependencyFailure.RUN_ANYWAY;
  throw new TaskflowError(Code.INVALID_ARGUMENT, `onDependencyFailure must be "cancel" or "run", got ${JSON.stringify(mode)}`);
}

/** A delay or a time in whole ms for an int64 field; anything else is refused here, naming the option. */
function int64Ms(value: number, option: string): bigint {
  if (!Number.isSafeInteger(value)) throw new TaskflowError(Code.INVALID_ARGUMENT, `${option} must be a whole number of milliseconds, got ${value}`);
  return BigInt(value);
}

/** A unary call whose failure is thrown as a TaskflowError with the reason it carried. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wireError(err);
  }
}
