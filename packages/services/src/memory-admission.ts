/**
 * Admission control by memory (docs/adr/0021-memory-admission.md): submits are refused with
 * RESOURCE_EXHAUSTED (`TASKFLOW_ERR_MEMORY`) before queued tasks bring the control node to an
 * out-of-memory death. Memory is sampled on a timer, never per submit; between two samples the
 * tasks accepted are added as an estimate, so one large batch cannot jump past the budget.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import { inject, injectable } from "tsyringe";
import { Code, Reason, TOKENS, TaskflowError, autoTaskHeapCapacity, type Logger, type MemorySample, type MemorySampler, type TaskflowConfig, type TimerHandle, type Timers } from "@taskflow/core";

/**
 * What one queued task costs the control node beyond its payload, for the estimate between two
 * samples: a plain task kept cold measured 184–199 bytes of RSS (ΔRSS from 1 M to 3–10 M queued,
 * 16-byte payloads, memory and SQLite stores; docs/adr/0030-off-heap-queued-tasks.md), rounded up. A task
 * kept as an object (idempotency key, metadata, limits, a delay) costs ~950 bytes, as all did
 * before (issue 13); the next sample, at most `sampleIntervalMs` later, shows it.
 */
export const QUEUED_TASK_BYTES = 256;

/** Memory in use against its budget, as the metrics show it. */
export interface MemoryUse {
  readonly heapUsed: number;
  readonly heapBudget: number;
  readonly rss: number;
  readonly rssBudget: number;
  /** True while submits are refused (from crossing a budget until both fall below the resume line). */
  readonly refusing: boolean;
}

/** The process's own memory, and the host's or the cgroup's limit (read once: it does not change). */
export function processMemorySampler(): MemorySampler {
  const systemLimit = Math.min(os.totalmem(), cgroupMemoryLimit() ?? Infinity);
  return {
    sample() {
      const heap = v8.getHeapStatistics();
      return { heapUsed: heap.used_heap_size, heapLimit: heap.heap_size_limit, rss: process.memoryUsage.rss(), systemLimit };
    },
  };
}

/**
 * `control.taskHeapCapacity` as a number: `"auto"` is sized from the resident-memory budget
 * (`memoryBudget.rssBytes`, else `systemFraction` of `systemLimit`), see `autoTaskHeapCapacity`.
 */
export function taskHeapCapacityOf(config: TaskflowConfig, sample: Pick<MemorySample, "systemLimit"> = processMemorySampler().sample()): number {
  const capacity = config.control.taskHeapCapacity;
  if (capacity !== "auto") return capacity;
  const budget = config.control.memoryBudget;
  return autoTaskHeapCapacity(budget.rssBytes ?? budget.systemFraction * sample.systemLimit);
}

/** The cgroup's memory limit in bytes (v2 `memory.max`, else v1 `memory.limit_in_bytes`), or undefined when none. */
export function cgroupMemoryLimit(read: (path: string) => string = (p) => readFileSync(p, "utf8")): number | undefined {
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    let text: string;
    try {
      text = read(file).trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    // "max" (v2) or a page-rounded 2^63 (v1) mean no limit.
    return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
  }
  return undefined;
}

const MB = 1024 * 1024;
const mb = (bytes: number) => `${Math.round(bytes / MB)} MB`;

@injectable()
export class MemoryAdmission {
  private readonly budget: TaskflowConfig["control"]["memoryBudget"];
  private last: MemorySample;
  private heapBudget: number;
  private rssBudget: number;
  /** Accepted since the last sample, which the sample does not show yet. */
  private sinceTasks = 0;
  private sincePayloadBytes = 0;
  private refusing = false;
  private timer: TimerHandle | undefined;

  constructor(
    @inject(TOKENS.Config) config: TaskflowConfig,
    @inject(TOKENS.MemorySampler) private readonly sampler: MemorySampler,
    @inject(TOKENS.Timers) private readonly timers: Timers,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.budget = config.control.memoryBudget;
    this.last = sampler.sample();
    this.heapBudget = this.budget.heapBytes ?? this.budget.heapFraction * this.last.heapLimit;
    this.rssBudget = this.budget.rssBytes ?? this.budget.systemFraction * this.last.systemLimit;
    if (this.heapBudget > this.last.heapLimit) {
      logger.warn(
        { key: "control.memoryBudget.heapBytes", budget: this.heapBudget, heapLimit: this.last.heapLimit },
        `control.memoryBudget.heapBytes (${mb(this.heapBudget)}) is above the V8 heap limit (${mb(this.last.heapLimit)}): the node can run out of heap before it refuses a submit; lower it or raise --max-old-space-size`,
      );
    }
    if (this.rssBudget > this.last.systemLimit) {
      logger.warn(
        { key: "control.memoryBudget.rssBytes", budget: this.rssBudget, systemLimit: this.last.systemLimit },
        `control.memoryBudget.rssBytes (${mb(this.rssBudget)}) is above the memory this process may use (${mb(this.last.systemLimit)}): lower it`,
      );
    }
    this.update(this.last);
  }

  /** Samples every `control.memoryBudget.sampleIntervalMs`. */
  start(): void {
    this.timer ??= this.timers.setInterval(() => this.update(this.sampler.sample()), this.budget.sampleIntervalMs);
  }

  stop(): void {
    this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /**
   * Accepts `tasks` new tasks carrying `payloadBytes` in all, or throws RESOURCE_EXHAUSTED
   * (`TASKFLOW_ERR_MEMORY`) naming the budget: while refusing, or when the estimate says the
   * batch would cross a budget. Accepted tasks count toward the estimate until the next sample.
   */
  admit(tasks: number, payloadBytes: number): void {
    const heap = this.last.heapUsed + (this.sinceTasks + tasks) * QUEUED_TASK_BYTES;
    const rss = this.last.rss + (this.sinceTasks + tasks) * QUEUED_TASK_BYTES + this.sincePayloadBytes + payloadBytes;
    if (this.refusing || heap > this.heapBudget || rss > this.rssBudget) throw this.refusal(heap, rss, tasks);
    this.sinceTasks += tasks;
    this.sincePayloadBytes += payloadBytes;
  }

  /** The last sample against the budgets. */
  use(): MemoryUse {
    return { heapUsed: this.last.heapUsed, heapBudget: this.heapBudget, rss: this.last.rss, rssBudget: this.rssBudget, refusing: this.refusing };
  }

  private update(sample: MemorySample): void {
    this.last = sample;
    this.sinceTasks = 0;
    this.sincePayloadBytes = 0;
    if (this.budget.heapBytes === undefined) this.heapBudget = this.budget.heapFraction * sample.heapLimit;
    const heapShare = sample.heapUsed / this.heapBudget;
    const rssShare = sample.rss / this.rssBudget;
    if (!this.refusing && (heapShare >= 1 || rssShare >= 1)) {
      this.refusing = true;
      this.logger.warn({ heapUsed: sample.heapUsed, heapBudget: this.heapBudget, rss: sample.rss, rssBudget: this.rssBudget }, "memory budget reached (control.memoryBudget): refusing submits until memory falls");
    } else if (this.refusing && heapShare < this.budget.resumeFraction && rssShare < this.budget.resumeFraction) {
      this.refusing = false;
      this.logger.info({ heapUsed: sample.heapUsed, rss: sample.rss }, "memory below the resume line of control.memoryBudget: accepting submits again");
    }
  }

  private refusal(heap: number, rss: number, tasks: number): TaskflowError {
    const overHeap = heap > this.heapBudget || (this.refusing && this.last.heapUsed >= this.budget.resumeFraction * this.heapBudget);
    const what = overHeap
      ? `V8 heap ${mb(heap)} of a ${mb(this.heapBudget)} budget (${this.budget.heapBytes !== undefined ? "control.memoryBudget.heapBytes" : `control.memoryBudget.heapFraction ${this.budget.heapFraction} of the ${mb(this.last.heapLimit)} heap limit`})`
      : `resident memory ${mb(rss)} of a ${mb(this.rssBudget)} budget (${this.budget.rssBytes !== undefined ? "control.memoryBudget.rssBytes" : `control.memoryBudget.systemFraction ${this.budget.systemFraction} of ${mb(this.last.systemLimit)}`})`;
    const state = this.refusing ? `refusing until it falls below ${this.budget.resumeFraction} of the budget` : `the ${tasks} task(s) would cross it`;
    return new TaskflowError(
      Code.RESOURCE_EXHAUSTED,
      `the control node's memory is near its budget: ${what}; ${state}. Nothing was accepted: retry later, once workers drain the queue, or raise control.memoryBudget (and the memory it is a share of)`,
      { reason: Reason.MEMORY },
    );
  }
}
