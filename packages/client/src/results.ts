/**
 * The client's results: one `SubscribeResults` stream per client carries the result of every
 * task it submitted, and this keeps them until asked for (or hands them to whoever awaits them).
 * When the stream breaks (the control node restarts, a standby takes over) it subscribes again
 * and asks the server about the tasks whose result may have gone out meanwhile.
 */
import { setMaxListeners } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { TaskState, type Task, type TaskResult, type TaskService } from "@taskflow/proto";
import type { ServiceClient } from "@taskflow/proto/grpc";
import { Code, TaskflowError } from "@taskflow/core/base";
import type { Codec } from "./codec.js";
import { Backoff, retryDelay, type RetryCause } from "./backoff.js";
import { call, isTransient, wireError } from "./errors.js";
import { abortedWait, hand, isFinalState, outcomeOf, resultFromTask, settle, type Outcome, type TaskResultFields, type Waiter } from "./outcome.js";
import { followTask, type WatchSettings } from "./watch.js";

const RESULT_CACHE_LIMIT = 100_000;

/** What {@link ResultStream.retried} needs to know of the results stream when a RetryTasks call went out. */
export interface RetryMark {
  /** {@link ResultStream.streamBreaks} then. */
  breaks: number;
  /** Whether the results stream was live then. */
  live: boolean;
}

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
  /**
   * Awaits of tasks followed on the server (see {@link followToEnd}), by task: a task this client
   * submitted can be one (deduplicated by the server, say a resent batch the first send made), and
   * then its result comes on the results stream too, maybe before the watch sees it end.
   */
  private readonly following = new Map<string, Set<(outcome: Outcome) => void>>();
  private closed = false;
  /** True once the results stream was live: until then no result of ours can have come or gone out to it. */
  private everLive = false;
  /** RetryTasks calls in flight, and the tasks whose result came meanwhile (see {@link retried}). */
  private retrying = 0;
  private readonly arrivedWhileRetrying = new Set<string>();
  /**
   * Aborted by `close`: stops the watches of tasks followed on the server. Each follow listens to
   * it while it lasts, so many at once are normal: no listener limit, no leak warning.
   */
  private readonly closing = (() => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  private readonly watchSettings: WatchSettings;

  constructor(
    private readonly tasks: ServiceClient<typeof TaskService.method>,
    private readonly settings: ResultSettings,
  ) {
    this.watchSettings = { followLeader: settings.followLeader, closed: () => this.closed };
  }

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

  /** Call as a RetryTasks call goes out; pair with {@link retryEnded}, and pass the mark to {@link retried}. */
  retryStarted(): RetryMark {
    this.retrying++;
    return { breaks: this.breaks, live: this.live };
  }

  retryEnded(): void {
    if (--this.retrying === 0) this.arrivedWhileRetrying.clear();
  }

  /**
   * A task of this client was retried (the call went out at `mark`): it finishes again on the
   * stream, so it is awaited afresh. Its new result may already have come (it can overtake the
   * reply, and then it cannot be told from the old one), or gone out while no stream listened
   * (a break during the call): then awaiting it also asks the server, as for a submit. Without a
   * results stream yet, its result comes nowhere: awaiting it follows it on the server.
   */
  retried(taskId: string, mark: RetryMark): void {
    this.outcomes.delete(taskId);
    if (!this.everLive) return;
    const waiting = this.unfinished.get(taskId);
    if (waiting === undefined) this.unfinished.set(taskId, null);
    const missed = this.arrivedWhileRetrying.has(taskId) || !mark.live || !this.live || mark.breaks !== this.breaks;
    if (!missed) return;
    if (waiting) void this.checkFinished(taskId);
    else this.mayHaveMissed.add(taskId);
  }

  /** Yields the task on every change until it finishes, following it across restarts and failovers. */
  watch(taskId: string, signal?: AbortSignal): AsyncGenerator<Task> {
    return followTask(this.tasks, taskId, this.watchSettings, signal);
  }

  /**
   * result() (wantsValue) and outcome(): a cached outcome, a wait for one of ours, or a watch;
   * until `signal` aborts.
   */
  await(taskId: string, wantsValue: boolean, signal?: AbortSignal): Promise<unknown> {
    const ready = this.outcomes.get(taskId);
    if (ready) {
      this.outcomes.delete(taskId);
      return wantsValue ? settle(ready) : Promise.resolve(ready);
    }
    if (signal?.aborted) return Promise.reject(abortedWait(taskId, signal));
    const current = this.unfinished.get(taskId);
    if (current !== undefined) {
      const waiting = new Promise((resolve, reject) => {
        const waiter: Waiter = signal ? this.abortable(taskId, { resolve, reject, wantsValue }, signal) : { resolve, reject, wantsValue };
        if (current === null) this.unfinished.set(taskId, waiter);
        else if (Array.isArray(current)) current.push(waiter);
        else this.unfinished.set(taskId, [current, waiter]);
      });
      if (this.mayHaveMissed.delete(taskId)) void this.checkFinished(taskId);
      return waiting;
    }
    // Not ours, or its outcome was dropped from the cache: follow it on the server.
    const followed = this.followToEnd(taskId, signal);
    return wantsValue ? followed.then(settle) : followed;
  }

  /**
   * `waiter`, taken off the task's waiters and rejected when `signal` aborts first. The task stays
   * ours: its result still comes, and is kept for a later await.
   */
  private abortable(taskId: string, waiter: Waiter, signal: AbortSignal): Waiter {
    const stop = () => {
      const current = this.unfinished.get(taskId);
      if (current === wrapped) this.unfinished.set(taskId, null);
      else if (Array.isArray(current)) {
        const rest = current.filter((w) => w !== wrapped);
        this.unfinished.set(taskId, rest.length === 1 ? rest[0]! : rest.length ? rest : null);
      }
      waiter.reject(abortedWait(taskId, signal));
    };
    const wrapped: Waiter = {
      wantsValue: waiter.wantsValue,
      resolve: (v) => {
        signal.removeEventListener("abort", stop);
        waiter.resolve(v);
      },
      reject: (e) => {
        signal.removeEventListener("abort", stop);
        waiter.reject(e);
      },
    };
    signal.addEventListener("abort", stop, { once: true });
    return wrapped;
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
    this.closing.abort();
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
          this.everLive = true;
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
      if (this.closed || !this.unfinished.get(taskId) || !isTransient(e.code)) return;
      const next = backoff ?? new Backoff();
      setTimeout(() => void this.checkFinished(taskId, next), retryDelay(next, e, this.settings.followLeader)).unref();
    }
  }

  /** Every result on this client's stream is for a task it submitted; keep it until asked for. */
  private deliver(r: TaskResultFields): void {
    const codec = this.settings.codec;
    const waiting = this.unfinished.get(r.taskId);
    if (this.mayHaveMissed.size) this.mayHaveMissed.delete(r.taskId);
    const followers = this.following.size ? this.following.get(r.taskId) : undefined;
    if (followers) {
      // Followed on the server and heard here first: the watch may not report the end (yet).
      this.following.delete(r.taskId);
      const outcome = outcomeOf(codec, r);
      for (const follower of followers) follower(outcome);
    }
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
    if (this.retrying) this.arrivedWhileRetrying.add(r.taskId);
    if (followers) return;
    const outcome = outcomeOf(codec, r);
    this.outcomes.set(outcome.taskId, outcome);
    if (this.outcomes.size > RESULT_CACHE_LIMIT) {
      const oldest = this.outcomes.keys().next().value as string;
      this.outcomes.delete(oldest);
    }
  }

  /**
   * Follows a task that is not ours (or whose outcome left the cache) on the server until it
   * finishes, `signal` aborts, or the client closes; a result of it on the results stream ends
   * the wait too (and the watch).
   */
  private async followToEnd(taskId: string, signal?: AbortSignal): Promise<Outcome> {
    const heardHere = new AbortController();
    let followers = this.following.get(taskId);
    if (!followers) this.following.set(taskId, (followers = new Set()));
    const heard: { outcome?: Outcome } = {};
    const hear = (outcome: Outcome) => {
      heard.outcome = outcome;
      heardHere.abort();
    };
    followers.add(hear);
    const stop = AbortSignal.any(signal ? [this.closing.signal, heardHere.signal, signal] : [this.closing.signal, heardHere.signal]);
    try {
      for await (const task of followTask(this.tasks, taskId, this.watchSettings, stop)) {
        if (isFinalState(task.state)) return outcomeOf(this.settings.codec, resultFromTask(task));
      }
    } finally {
      followers.delete(hear);
      if (!followers.size && this.following.get(taskId) === followers) this.following.delete(taskId);
    }
    if (heard.outcome) return heard.outcome;
    if (signal?.aborted && !this.closed) throw abortedWait(taskId, signal);
    throw new TaskflowError(Code.CANCELLED, "the client was closed");
  }
}

/** The task as the control node sees it now. */
export async function getTask(tasks: ServiceClient<typeof TaskService.method>, taskId: string): Promise<Task> {
  const res = await call(() => tasks.getTask({ taskId }));
  return res.task!;
}
