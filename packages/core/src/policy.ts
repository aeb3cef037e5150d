/**
 * The scheduling-policy plugin contract (version 2), after the Kubernetes scheduling framework
 * cut down to what a task scheduler needs (docs/adr/0004-policy-contract.md says why each exists):
 *
 * - **QueueSort** (`taskKey`): the order of the task heap. One ordering per scheduler.
 * - **Filter** (`filter`): can this worker take this task? The scheduler already checks the task
 *   type, the required labels and a free slot; a policy adds its own rules on top.
 * - **Score** (`workerKey`, and the bounded `score`): the order of the worker heap; with `score`,
 *   the scheduler takes the first {@link SCORE_CANDIDATES} workers that pass the filters and
 *   picks the one with the highest score for this task.
 * - **Reserve/PostBind** (`onAssigned`, `onFinished`): a stateful policy hears what ran, so it can
 *   say "serve the tenant that ran least".
 * - **Reassign** (`onRequeue`): what happens to a task taken back from a lost worker.
 *
 * Expected outcomes ("this worker does not fit") are returned, never thrown. A policy sees
 * deeply read-only views of tasks and workers and a {@link PolicyContext}, never the container.
 *
 * Keys are plain numbers so they fit the fixed-size records of the shared-memory heaps; ties
 * in the task heap break by submission order (FIFO), in the worker heap by insertion order.
 */
import { Code, Reason, TaskflowError } from "./errors.js";

/**
 * The version of the contract this core speaks. A definition declares the version it was written
 * for in {@link PolicyDefinition.contract}; one without it is a version 1 policy.
 */
export const POLICY_CONTRACT_VERSION = 2;
/** Contract versions this core loads: 1 (no attributes, no hooks; still valid) and 2. */
export const SUPPORTED_POLICY_CONTRACTS: readonly number[] = Object.freeze([1, 2]);

/**
 * How many feasible workers `score` is asked about per task: the first ones, in worker-key order,
 * that pass the built-in checks and the filter. Bounded so a pick costs O(K log n), not O(n).
 */
export const SCORE_CANDIDATES = 8;
/** Scores range from 0 to this; the highest wins, ties go to the smaller worker key. */
export const MAX_SCORE = 100;

/** What a policy may read of a task. Deeply read-only: frozen, as are its maps. */
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
  /** The tenant it belongs to: its submitter's credential's, `"default"` without authentication. (v2) */
  readonly tenant: string;
  /** The submitting client's ID; "" when it gave none. (v2) */
  readonly clientId: string;
  /** Free-form string attributes given at submission; empty when none. (v2) */
  readonly metadata: Readonly<Record<string, string>>;
  /** When the task should have finished, epoch ms; 0 = no deadline. (v2) */
  readonly deadline: number;
}

/** What a policy may read of a worker. Deeply read-only: frozen, `taskTypes` a read-only copy. */
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

/**
 * Why a task left a worker's hands (or the queue), for {@link SchedulingPolicy.onFinished}:
 * it finished (`succeeded`, `failed`, `cancelled`), or its attempt ended and it goes back to the
 * queue (`requeued`: a retry, a lost or draining worker, a timeout).
 */
export type PolicyOutcome = "succeeded" | "failed" | "cancelled" | "requeued";

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
   * aging as an offset of the enqueue time instead (see policy-priority). It may depend on the
   * policy's own state (fair share does), but calling it again for the same enqueue (same `id`
   * and `enqueuedAt`) must give the same key.
   */
  taskKey(task: PolicyTask): number;
  /**
   * The worker heap's key: the scheduler tries the worker with the smallest key first. Computed
   * again whenever the worker's load changes, in O(log n) through the heap.
   */
  workerKey(worker: PolicyWorker): number;
  /** Extra rules on top of the built-in type, label and free-slot checks. Default: fits. */
  filter?(task: PolicyTask, worker: PolicyWorker): FilterResult;
  /**
   * How well this worker suits this task, 0 to {@link MAX_SCORE} (higher is better), for
   * placement that depends on the task (Kubernetes' Score). Asked about at most
   * {@link SCORE_CANDIDATES} workers that passed the filters, tried in worker-key order; the
   * highest score wins, ties go to the smaller worker key. Without it the first feasible worker
   * wins. A value outside 0..100 or not finite counts as 0. (v2)
   */
  score?(task: PolicyTask, worker: PolicyWorker): number;
  /**
   * The scheduler gave `task` to `worker`. For stateful policies; state must be rebuildable
   * from a replay (see {@link SchedulingPolicy.onFinished}). After a restart the scheduler calls
   * it, before serving, for every task recovered as assigned or running, in `seq` order; its
   * worker may not have reconnected yet, so `worker` then holds only the ID (no slots, labels or
   * types). (v2)
   */
  onAssigned?(task: PolicyTask, worker: PolicyWorker): void;
  /**
   * A task the policy was told about left a worker's hands, or was cancelled while queued.
   * Hook state must depend only on the tasks the scheduler holds (queued or on a worker), never
   * on finished history, the clock or randomness: a restart rebuilds it from the replay of
   * `onAssigned` alone, and the conformance kit checks that the rebuilt state decides as the
   * live one did. (v2)
   */
  onFinished?(task: PolicyTask, outcome: PolicyOutcome): void;
  /**
   * True when the order of the queue matters more than keeping workers' buffers full: the
   * scheduler then hands a worker only as many tasks as it has free slots, never its prefetch,
   * so every start is the policy's decision at that moment (fair share sets it). Costs a round
   * trip per task start on busy workers (docs/adr/0022-fair-share.md has the figure). (v2)
   * @defaultValue false
   */
  readonly lateBinding?: boolean;
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
  /**
   * The contract version it was written for; absent means 1. The loader refuses a version this
   * core does not know ({@link SUPPORTED_POLICY_CONTRACTS}) with `TASKFLOW_ERR_POLICY_VERSION`.
   * `definePolicy` sets it to the version of the core it comes from.
   */
  readonly contract?: number;
  /** Validates raw options from config and applies defaults; throws a TaskflowError naming the key. */
  parseOptions(raw: unknown): Options;
  create(options: Options, context: PolicyContext): SchedulingPolicy;
}

/**
 * An options schema a policy may give instead of type checks by example, such as a zod schema
 * (`z.object({...}).strict()`): anything with a `safeParse` of this shape. Its issues become
 * `TASKFLOW_ERR_POLICY_OPTIONS` errors naming the option's path.
 */
export interface PolicyOptionsSchema<Options> {
  safeParse(raw: unknown):
    | { success: true; data: Options }
    | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

export interface DefinePolicyInit<Options extends object> {
  name: string;
  coreVersions: string;
  /**
   * Every accepted option key with its default; any other key is rejected. A value must have
   * its default's type: a number, a string, a boolean, an array, or a plain object
   * (never an array or `null`).
   */
  defaults: Options;
  /**
   * A schema for the whole options object (a zod schema works), applied after the defaults and
   * the checks by example; what it returns is the options `create` gets.
   * @defaultValue none
   */
  schema?: PolicyOptionsSchema<Options>;
  /** Checks the options' values together; return an error message to reject them. */
  validate?: (options: Options) => string | undefined;
  /** @defaultValue {@link POLICY_CONTRACT_VERSION} */
  contract?: number;
  create(options: Options, context: PolicyContext): SchedulingPolicy;
}

/**
 * Defines a policy with its name, supported core versions and options. Options are checked
 * against `defaults` (and `schema`, when given): unknown keys and values of another type are
 * rejected with a TaskflowError (`TASKFLOW_ERR_POLICY_OPTIONS`) that names the key. Options are
 * handed to `create` frozen.
 */
export function definePolicy<Options extends object>(init: DefinePolicyInit<Options>): PolicyDefinition<Options> {
  const defaults = init.defaults as Record<string, unknown>;
  const parseOptions = (raw: unknown): Options => {
    if (raw !== undefined && raw !== null && (typeof raw !== "object" || Array.isArray(raw))) {
      throw optionsError(init.name, `options must be an object, got ${describe(raw)}`);
    }
    const out: Record<string, unknown> = structuredClone(defaults);
    const known = Object.keys(defaults);
    for (const [key, value] of Object.entries((raw ?? {}) as object)) {
      if (!known.includes(key)) {
        const list = known.length ? known.join(", ") : "none";
        throw optionsError(init.name, `unknown option "${key}" (known options: ${list})`);
      }
      const expected = kindOf(defaults[key]);
      const got = kindOf(value);
      if (got !== expected) throw optionsError(init.name, `option "${key}" must be ${article(expected)}, got ${describe(value)}`);
      out[key] = value;
    }
    let options = out as Options;
    if (init.schema) {
      const parsed = init.schema.safeParse(options);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue && issue.path.length ? `option "${issue.path.map(String).join(".")}"` : "options";
        throw optionsError(init.name, `${where}: ${issue?.message ?? "invalid"}`);
      }
      options = parsed.data;
    }
    const problem = init.validate?.(options);
    if (problem) throw optionsError(init.name, problem);
    return deepFreeze(options);
  };
  return Object.freeze({
    kind: "taskflow.policy" as const,
    name: init.name,
    coreVersions: init.coreVersions,
    contract: init.contract ?? POLICY_CONTRACT_VERSION,
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
    (v.contract === undefined || typeof v.contract === "number") &&
    typeof v.parseOptions === "function" &&
    typeof v.create === "function"
  );
}

/**
 * Why this core cannot load a definition's contract version, or undefined when it can. The
 * message names the policy and both versions.
 */
export function contractProblem(definition: Pick<PolicyDefinition, "name" | "contract">): string | undefined {
  const version = definition.contract ?? 1;
  if (SUPPORTED_POLICY_CONTRACTS.includes(version)) return undefined;
  const newer = Number.isInteger(version) && version > POLICY_CONTRACT_VERSION;
  return (
    `policy "${definition.name}" is written for policy contract version ${String(version)}, ` +
    `but this @taskflow/core loads versions ${SUPPORTED_POLICY_CONTRACTS.join(" and ")}` +
    (newer ? `; upgrade Taskflow, or install a version of the policy made for contract ${POLICY_CONTRACT_VERSION}` : "")
  );
}

type OptionKind = "number" | "string" | "boolean" | "array" | "object" | "null" | "undefined" | "function" | "bigint" | "symbol";

function kindOf(value: unknown): OptionKind {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value as OptionKind;
}

function article(kind: OptionKind): string {
  return kind === "array" || kind === "object" ? `an ${kind}` : `a ${kind}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
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
