/**
 * The client's results: one `SubscribeResults` stream per client carries the result of every
 * task it submitted, and this keeps them until asked for (or hands them to whoever awaits them).
 * When the stream breaks (the control node restarts, a standby takes over) it subscribes again
 * and asks the server about the tasks whose result may have gone out meanwhile.
 */
import type * as grpc from "@grpc/grpc-js";
import { TaskState, type Task, type TaskResult, type TaskService } from "@taskflow/proto";
import type { ServiceClient } from "@taskflow/proto/grpc";
import { Code, TaskflowError } from "@taskflow/core/base";
import type { Codec } from "./codec.js";
import { Backoff, retryDelay, type RetryCause } from "./backoff.js";
import { call, wireError } from "./errors.js";
import { hand, isFinalState, outcomeOf, resultFromTask, settle, type Outcome, type TaskResultFields, type Waiter } from "./outcome.js";

const RESULT_CACHE_LIMIT = 100_000;

/** Failures of a call that may succeed when tried again. */
const TRANSIENT = new Set<number>([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED, Code.ABORTED]);

export interface ResultSettings {
  clientId: string;
  codec: Codec;
  /** Several control addresses: resubscribing after a broken stream waits less (see `retryDelay`). */
  followLeader: boolean;
}

export class ResultStream {
  /**
   * Tasks submitted before the results stream last broke whose results nobody awaited yet: their
   * result may have gone out while no stream listened, so awaiting one also asks the server.
   */
  private readonly mayHaveMissed = new Set<string>();
  /**
   * How many times a live results stream broke. A submit remembers it when it goes out: a task
   * acknowledged after a break may have finished while no stream listened, even when the break
   * came before the acknowledgement (and so before `catchUp` knew the task).
   */
  private breaks = 0;
  private subscription: Promise<void> | undefined;
  /** True while the results stream is live, so submits skip waiting for it. */
  private live = false;
  private stream: grpc.ClientReadableStream<{ results: TaskResult[] }> | undefined;
  /**
   * Tasks this client submitted that have not finished yet, with whoever awaits each (null for
   * nobody yet). One map rather than a set plus a map: two fewer hash operations per task.
   */
  private readonly unfinished = new Map<string, Waiter | Waiter[] | null>();
  /** Outcomes nobody asked for yet, oldest first. */
  private readonly outcomes = new Map<string, Outcome>();
  private closed = false;

  constructor(
    private readonly tasks: ServiceClient<typeof TaskService.method>,
    private readonly settings: ResultSettings,
  ) {}

  /** True while the results stream is live. */
  get subscribed(): boolean {
    return this.live;
  }

  /** Counts the breaks of the live results stream; see {@link accepted}. */
  get streamBreaks(): number {
    return this.breaks;
  }

  /**
   * A new task of this client was accepted: its result will come on the stream (it may already
   * have). `sentAt` is {@link streamBreaks} when its submit went out: if the stream broke since,
   * its result may have gone out while no stream listened, so awaiting it also asks the server.
   */
  accepted(taskId: string, sentAt: number): void {
    if (this.outcomes.has(taskId)) return;
    this.unfinished.set(taskId, null);
    if (sentAt !== this.breaks) this.mayHaveMissed.add(taskId);
  }

  /** A task of this client was retried: it finishes again on the stream, so it is awaited afresh. */
  retried(taskId: string): void {
    this.outcomes.delete(taskId);
    if (!this.unfinished.has(taskId)) this.unfinished.set(taskId, null);
  }

  /** result() (wantsValue) and outcome(): a cached outcome, a wait for one of ours, or a watch. */
  await(taskId: string, wantsValue: boolean): Promise<unknown> {
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
  ensureSubscribed(): Promise<void> {
    if (!this.subscription) {
      this.subscription = this.subscribe().catch((err: unknown) => {
        this.subscription = undefined;
        throw wireError(err);
      });
    }
    return this.subscription;
  }

  /** Stops the stream and fails every wait with `err`. */
  close(err: TaskflowError): void {
    this.closed = true;
    this.stream?.cancel();
    for (const w of this.unfinished.values()) {
      if (Array.isArray(w)) for (const one of w) one.reject(err);
      else w?.reject(err);
    }
    this.unfinished.clear();
  }

  private subscribe(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const stream = this.tasks.subscribeResults({ clientId: this.settings.clientId });
      this.stream = stream;
      let live = false;
      stream.on("data", (msg: { results: TaskResult[] }) => {
        if (!live) {
          live = true;
          this.live = true;
          resolve();
        }
        for (const r of msg.results) this.deliver(r);
      });
      stream.on("error", (err) => {
        if (!live) reject(err);
        else if (this.stream === stream) this.resubscribe();
      });
      stream.on("end", () => {
        // Ended before it was live (a node closing as we subscribed): a failure to subscribe,
        // retried like one, rather than a subscription that never settles, and every submit
        // waiting on it.
        if (!live) reject(new TaskflowError(Code.UNAVAILABLE, "the control node ended the results stream before it was live"));
        else if (this.stream === stream) this.resubscribe();
      });
    });
  }

  /** The stream broke (say the control node restarted): subscribe again, then catch up on what finished meanwhile. */
  private resubscribe(): void {
    if (this.closed) return;
    this.breaks++;
    this.subscription = undefined;
    this.live = false;
    this.stream = undefined;
    const backoff = new Backoff();
    const retry = (cause?: RetryCause) => {
      setTimeout(() => {
        if (this.closed) return;
        this.ensureSubscribed().then(
          () => void this.catchUp(),
          (err: unknown) => retry(wireError(err)),
        );
      }, retryDelay(backoff, cause, this.settings.followLeader)).unref();
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

  /**
   * Asks the server whether a task of ours finished while no results stream listened. A failure
   * the server may not give next time (unreachable, overloaded: a failover, thousands of awaits at
   * once) is retried while someone awaits the task: its result will not come on the stream.
   */
  private async checkFinished(taskId: string, backoff?: Backoff): Promise<void> {
    try {
      const task = await getTask(this.tasks, taskId);
      if (isFinalState(task.state) && this.unfinished.has(taskId)) this.deliver(resultFromTask(task));
    } catch (err) {
      const e = wireError(err);
      if (this.closed || !this.unfinished.get(taskId) || !TRANSIENT.has(e.code)) return;
      const next = backoff ?? new Backoff();
      setTimeout(() => void this.checkFinished(taskId, next), retryDelay(next, e, this.settings.followLeader)).unref();
    }
  }

  /** Every result on this client's stream is for a task it submitted; keep it until asked for. */
  private deliver(r: TaskResultFields): void {
    const codec = this.settings.codec;
    const waiting = this.unfinished.get(r.taskId);
    if (this.mayHaveMissed.size) this.mayHaveMissed.delete(r.taskId);
    if (waiting) {
      this.unfinished.delete(r.taskId);
      if (Array.isArray(waiting)) {
        const outcome = outcomeOf(codec, r);
        for (const w of waiting) hand(w, outcome);
      } else if (waiting.wantsValue && r.state === TaskState.SUCCEEDED) {
        // The common case, result() of a success: no Outcome object is built.
        waiting.resolve(codec.decode(r.result));
      } else {
        hand(waiting, outcomeOf(codec, r));
      }
      return;
    }
    if (waiting === null) this.unfinished.delete(r.taskId);
    const outcome = outcomeOf(codec, r);
    this.outcomes.set(outcome.taskId, outcome);
    if (this.outcomes.size > RESULT_CACHE_LIMIT) {
      const oldest = this.outcomes.keys().next().value as string;
      this.outcomes.delete(oldest);
    }
  }

  private async followToEnd(taskId: string): Promise<Outcome> {
    const codec = this.settings.codec;
    for await (const task of watchTask(this.tasks, taskId)) {
      if (isFinalState(task.state)) return outcomeOf(codec, resultFromTask(task));
    }
    return outcomeOf(codec, resultFromTask(await getTask(this.tasks, taskId)));
  }
}

/** The task as the control node sees it now. */
export async function getTask(tasks: ServiceClient<typeof TaskService.method>, taskId: string): Promise<Task> {
  const res = await call(() => tasks.getTask({ taskId }));
  return res.task!;
}

/** Yields the task on every change until it finishes (or `signal` aborts). */
export async function* watchTask(tasks: ServiceClient<typeof TaskService.method>, taskId: string, signal?: AbortSignal): AsyncGenerator<Task> {
  const stream = tasks.watchTask({ taskId }, signal ? { signal } : {});
  try {
    for await (const msg of stream as AsyncIterable<{ task?: Task }>) {
      if (msg.task) yield msg.task;
    }
  } catch (err) {
    if (signal?.aborted) return;
    throw wireError(err);
  } finally {
    stream.cancel();
  }
}
