/**
 * The client SDK: submit tasks, await or watch their results, cancel, list.
 *
 * Fast by default: `submit` calls made in the same tick are sent as one `SubmitTasks` batch
 * (`submit-queue.ts`), and results arrive on one `SubscribeResults` stream per client
 * (`results.ts`), so no unary call is made per task.
 */
import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { Code, TaskflowError } from "@taskflow/core/base";
import {
  ClusterService,
  ScheduleService,
  TaskService,
  type GetClusterStateResponse,
  type ListTasksResponse,
  type Task,
  type TaskState,
  type WorkerInfo,
} from "@taskflow/proto";
import { decodeResults, decodeSubmitAck, type FastSpec } from "@taskflow/proto/fast";
import { createClient, type ServiceClient } from "@taskflow/proto/grpc";
import { jsonCodec, type Codec } from "./codec.js";
import { controlConnection, type ConnectionOptions } from "./connection.js";
import { call } from "./errors.js";
import { CLIENT_DEFAULTS } from "./defaults.js";
import { retryUnavailable, type UnavailableRetry } from "./backoff.js";
import { SubmitQueue } from "./submit-queue.js";
import { ScheduleClient } from "./schedules.js";
import { ResultStream, getTask } from "./results.js";
import { filterToWire, flowNodes, specOf, type BulkFilter, type FlowTask, type SubmitOptions, type TaskRequest } from "./requests.js";
import type { AwaitOptions, Outcome } from "./outcome.js";


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
   * How long a submit (and a `flow`) keeps trying while the control node cannot be reached (it
   * restarts, say, or fails over), in ms. Retries carry the same request ID, so a retry never
   * creates a second task; past this the call fails with UNAVAILABLE. @defaultValue 30000
   */
  submitRetryTimeoutMs?: number;
}

export class TaskflowClient {
  readonly clientId: string;
  readonly address: string;
  private readonly tasks: ServiceClient<typeof TaskService.method>;
  private readonly cluster: ServiceClient<typeof ClusterService.method>;
  private readonly codec: Codec;
  private readonly submits: SubmitQueue;
  /** This client's results stream, and every task of it not finished yet or whose result nobody asked for yet. */
  private readonly results: ResultStream;
  private closed = false;
  /** How flow() retries while the control node cannot be reached: as submits do. */
  private readonly submitRetry: UnavailableRetry;
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
    const followLeader = channel !== undefined;
    const results = new ResultStream(this.tasks, { clientId: this.clientId, codec: this.codec, followLeader });
    this.results = results;
    const settings = {
      clientId: this.clientId,
      maxBatch: options.maxBatchSize ?? CLIENT_DEFAULTS.maxBatchSize,
      maxInFlight: options.maxInFlightBatches ?? CLIENT_DEFAULTS.maxInFlightBatches,
      submitRetryTimeoutMs: options.submitRetryTimeoutMs ?? CLIENT_DEFAULTS.submitRetryTimeoutMs,
      followLeader,
    };
    this.submitRetry = { timeoutMs: settings.submitRetryTimeoutMs, following: followLeader, closed: () => this.closed };
    this.submits = new SubmitQueue(this.tasks, settings, {
      subscribed: () => results.subscribed,
      ensureSubscribed: () => results.ensureSubscribed(),
      // A new task's result may already be here: it can overtake the acknowledgement.
      streamBreaks: () => results.streamBreaks,
      accepted: (id, sentAt) => results.accepted(id, sentAt),
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
    const nodes = flowNodes(this.codec, tasks, keys);
    const request = { nodes, clientId: this.clientId, requestId: randomUUID() };
    let sentAt: number | undefined;
    // A request ID makes the call safe to retry: a repeat answers the same tasks (on the new
    // leader too, after a failover), so UNAVAILABLE is retried as a submit is.
    const res = await retryUnavailable(async () => {
      await this.results.ensureSubscribed();
      // When it first went out: a later break may have hidden a result (see ResultStream.accepted).
      sentAt ??= this.results.streamBreaks;
      return call(() => this.tasks.submitFlow(request));
    }, this.submitRetry);
    const ids = {} as Record<K, string>;
    keys.forEach((key, i) => {
      const id = res.taskIds[i]!;
      ids[key] = id;
      if (!res.deduplicated[i]) this.results.accepted(id, sentAt!);
    });
    return ids;
  }

  /** Submits a task and waits for its result; throws a TaskflowError if it fails or is cancelled. */
  async run<T = unknown>(type: string, payload?: unknown, options?: SubmitOptions): Promise<T> {
    const id = await this.submit(type, payload, options);
    return this.result<T>(id);
  }

  /**
   * Waits for a task's result; throws a TaskflowError if it fails or is cancelled. Waits through
   * restarts and failovers of the control node, until the client closes or `options.signal` aborts.
   */
  result<T = unknown>(taskId: string, options?: AwaitOptions): Promise<T> {
    return this.results.await(taskId, true, options?.signal) as Promise<T>;
  }

  /** Waits for a task to finish and returns how it ended, without throwing for failures; waits as {@link result} does. */
  outcome<T = unknown>(taskId: string, options?: AwaitOptions): Promise<Outcome<T>> {
    return this.results.await(taskId, false, options?.signal) as Promise<Outcome<T>>;
  }

  /** The task as the control node sees it now. */
  get(taskId: string): Promise<Task> {
    return getTask(this.tasks, taskId);
  }

  /**
   * Yields the task on every change until it finishes, or until `signal` aborts. A watch broken
   * by a restart or a failover of the control node is opened again on the leader (with backoff,
   * until `signal` aborts or the client is closed); a state already yielded is not yielded again.
   */
  watch(taskId: string, signal?: AbortSignal): AsyncGenerator<Task> {
    return this.results.watch(taskId, signal);
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
    const mark = this.results.retryStarted();
    try {
      const res = await call(() => this.tasks.retryTasks(req));
      if (!("dryRun" in req && req.dryRun)) {
        // This client's own retried tasks finish again on its results stream: await them afresh.
        for (const task of res.tasks) if (task.clientId === this.clientId) this.results.retried(task.id, mark);
      }
      return res.tasks;
    } finally {
      this.results.retryEnded();
    }
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
    const err = new TaskflowError(Code.CANCELLED, "the client was closed");
    this.results.close(err);
    this.submits.close(err);
    this.tasks.raw.close();
  }
}
