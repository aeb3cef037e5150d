/**
 * The scheduling-policy plugin contract, after the Kubernetes scheduling framework cut down to
 * what a task scheduler needs:
 *
 * - **QueueSort** (`taskKey`): the order of the task heap. One ordering per scheduler.
 * - **Filter** (`filter`): can this worker take this task? The scheduler already checks the task
 *   type, the required labels and a free slot; a policy adds its own rules on top.
 * - **Score** (`workerKey`): the order of the worker heap; the scheduler tries workers with the
 *   smallest key first and takes the first that passes the filters.
 * - **Reassign** (`onRequeue`): what happens to a task taken back from a lost worker.
 *
 * Expected outcomes ("this worker does not fit") are returned, never thrown. A policy sees a
 * narrow, read-only view of tasks and workers and a {@link PolicyContext}, never the container.
 *
 * Keys are plain numbers so they fit the fixed-size records of the shared-memory heaps; ties
 * in the task heap break by submission order (FIFO), in the worker heap by insertion order.
 */
import { Code, Reason, TaskflowError } from "./errors.js";

/** What a policy may read of a task. */
export interface PolicyTask {
  readonly id: string;
  readonly type: string;
  readonly priority: number;
  /** Submission order across the cluster. */
  readonly seq: number;
  /** 1 on the first run, raised on every reassignment or retry. */
  readonly attempt: number;
  /** Epoch milliseconds of submission. */
  readonly createdAt: number;
  /** Epoch milliseconds when it (re)entered the queue. */
  readonly enqueuedAt: number;
  readonly requiredLabels: Readonly<Record<string, string>>;
  readonly expectedDurationMs: number;
}

/** What a policy may read of a worker. */
export interface PolicyWorker {
  readonly id: string;
  readonly host: string;
  readonly slots: number;
  readonly running: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly taskTypes: ReadonlySet<string>;
  /** A counter value from the last assignment to this worker; 0 if none yet. Smaller = longer ago. */
  readonly lastAssignedSeq: number;
  /** Order in which workers joined. */
  readonly joinSeq: number;
}

/** The outcome of a filter: fits, or does not with a reason a user can read in `get`. */
export type FilterResult = { readonly fits: true } | { readonly fits: false; readonly reason: string };

export const FITS: FilterResult = Object.freeze({ fits: true });
export function doesNotFit(reason: string): FilterResult {
  return { fits: false, reason };
}

/** What the scheduler gives a policy: narrow on purpose. */
export interface PolicyContext {
  /** Milliseconds since the epoch; tests can drive it. */
  now(): number;
  readonly logger: PolicyLogger;
}

export interface PolicyLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** What a policy decides for a task taken back from a lost worker. */
export interface RequeueDecision {
  /** The priority it goes back with. Default: unchanged. */
  readonly priority?: number;
}

/** A running scheduling policy. Only `taskKey` and `workerKey` are required. */
export interface SchedulingPolicy {
  /** The policy's name, as in config. */
  readonly name: string;
  /**
   * The task heap's key: the smallest key is scheduled first. Computed once when the task enters
   * the queue (on submit and on requeue), so it must not depend on the current time; express
   * aging as an offset of the enqueue time instead (see policy-priority).
   */
  taskKey(task: PolicyTask): number;
  /**
   * The worker heap's key: the scheduler tries the worker with the smallest key first. Computed
   * again whenever the worker's load changes, in O(log n) through the heap.
   */
  workerKey(worker: PolicyWorker): number;
  /** Extra rules on top of the built-in type, label and free-slot checks. Default: fits. */
  filter?(task: PolicyTask, worker: PolicyWorker): FilterResult;
  /** Called when a task goes back to the queue after its worker was lost. Default: unchanged. */
  onRequeue?(task: PolicyTask): RequeueDecision | undefined;
  /** Called once when the scheduler stops. */
  close?(): void;
}

/** A policy package's default export: a factory with a name, a supported core range and an options parser. */
export interface PolicyDefinition<Options = unknown> {
  readonly kind: "taskflow.policy";
  readonly name: string;
  /** A semver range of `@taskflow/core` versions the policy supports, for example `^0.1.0`. */
  readonly coreVersions: string;
  /** Validates raw options from config and applies defaults; throws a TaskflowError naming the key. */
  parseOptions(raw: unknown): Options;
  create(options: Options, context: PolicyContext): SchedulingPolicy;
}

export interface DefinePolicyInit<Options extends object> {
  name: string;
  coreVersions: string;
  /** Every accepted option key with its default; any other key is rejected. */
  defaults: Options;
  /** Checks one option's value; return an error message to reject it. */
  validate?: (options: Options) => string | undefined;
  create(options: Options, context: PolicyContext): SchedulingPolicy;
}

/**
 * Defines a policy with its name, supported core versions and options. Options are checked
 * against `defaults`: unknown keys and values of another type are rejected with a TaskflowError
 * (`TASKFLOW_ERR_POLICY_OPTIONS`) that names the key.
 */
export function definePolicy<Options extends object>(init: DefinePolicyInit<Options>): PolicyDefinition<Options> {
  const parseOptions = (raw: unknown): Options => {
    if (raw === undefined || raw === null) return { ...init.defaults };
    if (typeof raw !== "object" || Array.isArray(raw)) {
      throw optionsError(init.name, `options must be an object, got ${describe(raw)}`);
    }
    const out: Record<string, unknown> = { ...(init.defaults as Record<string, unknown>) };
    const known = Object.keys(init.defaults);
    for (const [key, value] of Object.entries(raw)) {
      if (!known.includes(key)) {
        const list = known.length ? known.join(", ") : "none";
        throw optionsError(init.name, `unknown option "${key}" (known options: ${list})`);
      }
      const expected = typeof (init.defaults as Record<string, unknown>)[key];
      if (typeof value !== expected) {
        throw optionsError(init.name, `option "${key}" must be a ${expected}, got ${describe(value)}`);
      }
      out[key] = value;
    }
    const problem = init.validate?.(out as Options);
    if (problem) throw optionsError(init.name, problem);
    return out as Options;
  };
  return Object.freeze({
    kind: "taskflow.policy" as const,
    name: init.name,
    coreVersions: init.coreVersions,
    parseOptions,
    create: init.create,
  });
}

/** True for a value that looks like a policy definition (also from another copy of core). */
export function isPolicyDefinition(value: unknown): value is PolicyDefinition {
  const v = value as Partial<PolicyDefinition> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    v.kind === "taskflow.policy" &&
    typeof v.name === "string" &&
    typeof v.coreVersions === "string" &&
    typeof v.parseOptions === "function" &&
    typeof v.create === "function"
  );
}

function optionsError(policy: string, message: string): TaskflowError {
  return new TaskflowError(Code.INVALID_ARGUMENT, `policy "${policy}": ${message}`, {
    reason: Reason.POLICY_OPTIONS,
  });
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  return `${typeof value} ${JSON.stringify(value)}`;
}
