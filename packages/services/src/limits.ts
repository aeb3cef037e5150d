/**
 * Rate and concurrency limits (config `limits` and `concurrency`, ADR 0026), enforced where the
 * cluster's only scheduler pops tasks. A task that fits a rule is bound to it when it enters the
 * table: to a token bucket (a start takes a token) and to a per-key count of tasks with a worker.
 * A popped task its bucket or key cannot serve now is parked in that bucket's or key's FIFO, out
 * of the heap, so it holds back none of the tasks behind it; it goes back into the heap, at its
 * old place in policy order, when a token is due (one timer per bucket with waiters, through the
 * injected Timers) or a task of its key leaves its worker. A task released this way carries what
 * it was released for (the token or the slot), so a newcomer cannot overtake it.
 *
 * Counting is exact across every path, because it follows the task, not the worker: a slot is
 * taken at admission and given back when the task leaves its worker's hands (finish, failure,
 * cancel, requeue of a lost or draining worker, a retry's backoff) — each once, by flag.
 */
import { inject, injectable } from "tsyringe";
import {
  TOKENS,
  TokenBucket,
  globPattern,
  parseRate,
  rateBurst,
  type Clock,
  type SchedulerInbox,
  type TaskflowConfig,
  type TimerHandle,
  type Timers,
} from "@taskflow/core";
import { type LiveTask, type TaskTable } from "./task-table.js";

/** A bucket or a key with the tasks parked on it, in the order they were popped. */
class Waiters {
  private items: LiveTask[] = [];
  private head = 0;
  /** Tasks still waiting (cancelled ones leave their entry behind, skipped when reached). */
  count = 0;

  push(live: LiveTask): void {
    this.items.push(live);
    this.count++;
  }

  /** The first task still waiting on `owner`, taken out; undefined when none. */
  shift(owner: RateBucket | ConcurrencyKey): LiveTask | undefined {
    while (this.head < this.items.length) {
      const live = this.items[this.head++]!;
      if (live.limits?.waitingOn === owner) {
        this.count--;
        this.compact();
        return live;
      }
    }
    this.items = [];
    this.head = 0;
    return undefined;
  }

  private compact(): void {
    if (this.count === 0) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** One token bucket: of a rule, for one value of what it matches (one per key for `rateLimitKey`). */
export interface RateBucket {
  readonly id: string;
  /** For why-waiting: "rate limit <label> <rate>". */
  readonly label: string;
  readonly rate: string;
  readonly bucket: TokenBucket;
  readonly waiters: Waiters;
  timer: TimerHandle | undefined;
  /** Live tasks bound to it; a bucket no task is bound to, and full again, is dropped. */
  refs: number;
}

/** One concurrency key: of a rule, for one value of what it matches. */
export interface ConcurrencyKey {
  readonly id: string;
  /** For why-waiting: "concurrency key <label> at its limit …". */
  readonly label: string;
  readonly max: number;
  /** Tasks holding a slot: with a worker, or released from the FIFO and on their way to one. */
  held: number;
  readonly waiters: Waiters;
  refs: number;
}

/** A task's limits, set when it enters the table; `LiveTask.limits` is undefined for a task no rule fits. */
export interface TaskLimits {
  readonly bucket: RateBucket | undefined;
  readonly key: ConcurrencyKey | undefined;
  /** Holds one of its key's slots. */
  slot: boolean;
  /** Holds a token for its next start. */
  token: boolean;
  /** The bucket or key it is parked on, if any. */
  waitingOn: RateBucket | ConcurrencyKey | undefined;
}

/** A rule's match, compiled: a field absent from the rule is undefined here. */
interface Matcher {
  type: RegExp | undefined;
  key: RegExp | undefined;
  tenant: RegExp | undefined;
  /** Words for why-waiting: "key" when the rule names the task's key. */
  noun: string;
}

interface RateRule extends Matcher {
  rate: string;
  perSecond: number;
  burst: number;
}

interface ConcurrencyRule extends Matcher {
  max: number;
}

/** What the limits use of the task table, and nothing more. */
type Tasks = Pick<TaskTable, "park" | "unpark">;

@injectable()
export class Limits {
  /** False when the config has no rule: then no task is ever bound, and the hot path pays one branch. */
  readonly active: boolean;
  private readonly rateRules: RateRule[];
  private readonly concurrencyRules: ConcurrencyRule[];
  private readonly buckets = new Map<string, RateBucket>();
  private readonly keys = new Map<string, ConcurrencyKey>();
  /** Sweep unused buckets when there are more than this many (doubles with the live ones). */
  private sweepAt = 1024;
  private closed = false;
  /** Tasks parked by a limit now. */
  private parked = 0;

  constructor(
    @inject(TOKENS.Config) config: TaskflowConfig,
    @inject(TOKENS.TaskTable) private readonly table: Tasks,
    @inject(TOKENS.SchedulerInbox) private readonly inbox: SchedulerInbox,
    @inject(TOKENS.Clock) private readonly clock: Clock,
    @inject(TOKENS.Timers) private readonly timers: Timers,
  ) {
    this.rateRules = config.limits.map((r) => ({
      ...matcher(r.match.type, r.match.rateLimitKey, r.match.tenant, "rate limit"),
      rate: r.rate.trim(),
      perSecond: parseRate(r.rate)!,
      burst: rateBurst(r),
    }));
    this.concurrencyRules = config.concurrency.map((r) => ({
      ...matcher(r.match.type, r.match.concurrencyKey, r.match.tenant, r.match.concurrencyKey ? "concurrency key" : "concurrency limit"),
      max: r.max,
    }));
    this.active = this.rateRules.length > 0 || this.concurrencyRules.length > 0;
  }

  /** Tasks a rate or concurrency limit holds back now (queued, out of the heap), for monitoring. */
  get waiting(): number {
    return this.parked;
  }

  /** Buckets and keys in use, for tests and monitoring. */
  get sizes(): { buckets: number; keys: number } {
    return { buckets: this.buckets.size, keys: this.keys.size };
  }

  /** A task entered the table: binds it to the first rate rule and the first concurrency rule that fit, if any. */
  bind(live: LiveTask): void {
    if (!this.active) return;
    const rec = live.rec;
    let bucket: RateBucket | undefined;
    let key: ConcurrencyKey | undefined;
    for (let i = 0; i < this.rateRules.length; i++) {
      const rule = this.rateRules[i]!;
      const values = fit(rule, rec.type, rec.rateLimitKey, rec.tenant);
      if (!values) continue;
      bucket = this.bucketOf(i, rule, values);
      break;
    }
    for (let i = 0; i < this.concurrencyRules.length; i++) {
      const rule = this.concurrencyRules[i]!;
      const values = fit(rule, rec.type, rec.concurrencyKey, rec.tenant);
      if (!values) continue;
      key = this.keyOf(i, rule, values);
      break;
    }
    if (!bucket && !key) return;
    live.limits = { bucket, key, slot: false, token: false, waitingOn: undefined };
  }

  /**
   * After a restart, a task that was with a worker (waiting to be re-adopted) holds its key's
   * slot at once, even past the limit: it may well be running.
   */
  recovered(live: LiveTask): void {
    const l = live.limits;
    if (!l?.key || l.slot) return;
    l.slot = true;
    l.key.held++;
  }

  /**
   * The scheduler popped `live`: true when its limits let it start now (it then holds its slot
   * and token); else it is parked on the key or bucket that holds it back, and false.
   */
  admit(live: LiveTask): boolean {
    const l = live.limits!;
    const key = l.key;
    if (key && !l.slot) {
      // Waiters first: a newcomer never overtakes a task parked before it.
      if (key.held >= key.max || key.waiters.count > 0) {
        this.park(live, l, key, this.keyReason(key));
        return false;
      }
      key.held++;
      l.slot = true;
    }
    const bucket = l.bucket;
    if (bucket && !l.token) {
      const now = this.clock.now();
      if (bucket.waiters.count > 0 || !bucket.bucket.take(1, now)) {
        this.park(live, l, bucket, this.bucketReason(bucket, now));
        if (!bucket.timer) this.arm(bucket, now);
        return false;
      }
      l.token = true;
    }
    return true;
  }

  /** The task was given to a worker: its token is spent (its slot stays until it leaves the worker). */
  assigned(live: LiveTask): void {
    live.limits!.token = false;
  }

  /** The task left its worker's hands without finishing (requeued: lost worker, hand-back, retry backoff): frees its slot. */
  left(live: LiveTask): void {
    const l = live.limits!;
    if (l.slot && l.key) this.freeSlot(l);
  }

  /** The task finished (or was cancelled): frees its slot, leaves any FIFO, and unbinds. */
  finished(live: LiveTask): void {
    const l = live.limits!;
    if (l.waitingOn) {
      l.waitingOn.waiters.count--;
      l.waitingOn = undefined;
      this.parked--;
    }
    if (l.slot && l.key) this.freeSlot(l);
    if (l.key && --l.key.refs === 0 && l.key.held === 0) this.keys.delete(l.key.id);
    if (l.bucket) l.bucket.refs--;
  }

  /** Why a parked task waits, as of now ("rate limit email 100/s, next token in 8 ms"); undefined when no limit holds it. */
  waitingReason(live: LiveTask): string | undefined {
    const on = live.limits?.waitingOn;
    if (!on) return undefined;
    return "bucket" in on ? this.bucketReason(on, this.clock.now()) : this.keyReason(on);
  }

  stop(): void {
    this.closed = true;
    for (const bucket of this.buckets.values()) {
      this.timers.clear(bucket.timer);
      bucket.timer = undefined;
    }
  }

  private park(live: LiveTask, l: TaskLimits, on: RateBucket | ConcurrencyKey, reason: string): void {
    l.waitingOn = on;
    on.waiters.push(live);
    this.parked++;
    this.table.park(live, reason);
  }

  private freeSlot(l: TaskLimits): void {
    const key = l.key!;
    l.slot = false;
    key.held--;
    let released = false;
    while (key.held < key.max && key.waiters.count > 0) {
      const next = key.waiters.shift(key);
      if (!next) break;
      const nl = next.limits!;
      nl.waitingOn = undefined;
      this.parked--;
      nl.slot = true;
      key.held++;
      this.table.unpark(next);
      released = true;
    }
    if (released) this.inbox.wake();
    if (key.refs === 0 && key.held === 0) this.keys.delete(key.id);
  }

  private arm(bucket: RateBucket, now: number): void {
    bucket.timer = this.timers.setTimeout(() => this.fire(bucket), Math.max(1, bucket.bucket.waitMs(1, now)));
  }

  /** A token is due: as many waiters as there are tokens go back into the heap, each holding one. */
  private fire(bucket: RateBucket): void {
    bucket.timer = undefined;
    if (this.closed) return;
    const now = this.clock.now();
    let released = false;
    while (bucket.waiters.count > 0 && bucket.bucket.available(now) >= 1) {
      const next = bucket.waiters.shift(bucket);
      if (!next) break;
      bucket.bucket.take(1, now);
      const nl = next.limits!;
      nl.waitingOn = undefined;
      this.parked--;
      nl.token = true;
      this.table.unpark(next);
      released = true;
    }
    if (released) this.inbox.wake();
    if (bucket.waiters.count > 0) this.arm(bucket, now);
  }

  private bucketOf(index: number, rule: RateRule, values: string[]): RateBucket {
    const id = `${index}\u0000${values.join("\u0000")}`;
    let bucket = this.buckets.get(id);
    if (!bucket) {
      if (this.buckets.size >= this.sweepAt) this.sweep();
      const now = this.clock.now();
      bucket = { id, label: values.join(" "), rate: rule.rate, bucket: new TokenBucket(rule.perSecond, rule.burst, now), waiters: new Waiters(), timer: undefined, refs: 0 };
      this.buckets.set(id, bucket);
    }
    bucket.refs++;
    return bucket;
  }

  private keyOf(index: number, rule: ConcurrencyRule, values: string[]): ConcurrencyKey {
    const id = `${index}\u0000${values.join("\u0000")}`;
    let key = this.keys.get(id);
    if (!key) {
      key = { id, label: `${rule.noun} ${values.join(" ")}`, max: rule.max, held: 0, waiters: new Waiters(), refs: 0 };
      this.keys.set(id, key);
    }
    key.refs++;
    return key;
  }

  /**
   * Drops buckets no task is bound to and that have refilled: a new bucket for the same key
   * would start full too, so nothing changes but memory. Amortised: the threshold doubles.
   */
  private sweep(): void {
    const now = this.clock.now();
    for (const [id, b] of this.buckets) {
      if (b.refs === 0 && b.waiters.count === 0 && b.bucket.available(now) >= b.bucket.burst) this.buckets.delete(id);
    }
    this.sweepAt = Math.max(1024, this.buckets.size * 2);
  }

  private bucketReason(bucket: RateBucket, now: number): string {
    return `rate limit ${bucket.label} ${bucket.rate}, next token in ${Math.max(1, bucket.bucket.waitMs(1, now))} ms`;
  }

  private keyReason(key: ConcurrencyKey): string {
    return `${key.label} at its limit ${key.max} (${key.held} running)`;
  }
}

function matcher(type: string | undefined, key: string | undefined, tenant: string | undefined, noun: string): Matcher {
  return { type: type === undefined ? undefined : globPattern(type), key: key === undefined ? undefined : globPattern(key), tenant: tenant === undefined ? undefined : globPattern(tenant), noun };
}

/** The values a rule matched (its bucket's or key's identity), or undefined when it does not fit. */
function fit(rule: Matcher, type: string, key: string | undefined, tenant: string): string[] | undefined {
  const values: string[] = [];
  if (rule.key) {
    if (!key || !rule.key.test(key)) return undefined;
    values.push(key);
  }
  if (rule.type) {
    if (!rule.type.test(type)) return undefined;
    values.push(type);
  }
  if (rule.tenant) {
    if (!rule.tenant.test(tenant)) return undefined;
    values.push(tenant);
  }
  return values;
}
