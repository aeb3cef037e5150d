#!/usr/bin/env node
/**
 * `taskflow`: run a node, talk to a cluster (submit, get, watch, cancel, retry, list, schedule, workers,
 * drain), or compare scheduling policies offline (simulate).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { AUTH_ROLES, Code, DEFAULT_CONTROL_ADDRESS, TaskflowError, type AuthRole } from "@taskflow/core/base";
import type { BulkFilter, TaskflowClient } from "@taskflow/client";
import type { Task } from "@taskflow/proto";
import { EXIT, errorLine, exitCodeFor, parseTimePoint, table } from "./cli/output.js";
import { addSimulateCommand } from "./cli/simulate.js";
import { addScheduleCommands } from "./cli/schedule.js";
import { addWorkersCommand } from "./cli/workers.js";
import { parseAtOption, parseDeadlineOption, parseDelayOption, parseDurationOption, parseInteger, parseLabel, parseMetadata, parsePayload } from "./cli/options.js";

// Start-up is most of a client command's time (issue 13, ADR 0031): this module loads commander
// and the small CLI modules only. What a command needs beyond that it imports when it runs: the
// SDK (gRPC, protobuf), the views of tasks and workers, `top`, and for `taskflow node` the
// control plane. bin.test.ts fails when one of them is imported eagerly again.
const sdk = () => import("@taskflow/client");
const taskView = () => import("./cli/task-view.js");

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

const program = new Command("taskflow")
  .description("Taskflow: a distributed task scheduler for Node.js")
  .version(version)
  .addOption(
    new Option("-a, --address <host:port>", "control node address for client commands").env("TASKFLOW_ADDRESS").default(DEFAULT_CONTROL_ADDRESS),
  )
  .addOption(
    new Option("--control <host:port,...>", "control node addresses, comma-separated (standby control nodes): commands go to the leader; overrides --address").env(
      "TASKFLOW_CONTROL",
    ),
  )
  .addOption(new Option("--token <token>", "bearer token for client commands (see `taskflow token create`)").env("TASKFLOW_TOKEN"))
  .addOption(new Option("--ca <file>", "connect with TLS, trusting this CA certificate (PEM)").env("TASKFLOW_CA"))
  .addOption(new Option("--cert <file>", "client certificate (PEM) for a node that requires one (mTLS)").env("TASKFLOW_CERT"))
  .addOption(new Option("--key <file>", "private key (PEM) of --cert").env("TASKFLOW_KEY"))
  .addOption(new Option("--tls", "connect with TLS, trusting the system's CAs (implied by --ca)").env("TASKFLOW_TLS"))
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride()
  .addHelpText(
    "after",
    `
Exit codes: 0 ok, 1 task failed or was cancelled, 2 bad usage, invalid argument or a config
            the node cannot start with, 3 not found, 4 control node unreachable, 5 other error;
            \`taskflow node\` with ha: 75 lost the leader lease (restart it: it returns as a standby).

Examples:
  $ taskflow node --config taskflow.config.json
  $ taskflow submit echo '{"hello":"world"}' --wait
  $ taskflow get <task-id>
  $ taskflow workers`,
  );

/** False while `taskflow node` runs: the hint about reaching a control node is for client commands. */
let isClientCommand = true;

interface GlobalOptions {
  address: string;
  control?: string;
  token?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tls?: boolean;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TaskflowError(Code.INVALID_ARGUMENT, `${flag}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Where client commands go: --control (TASKFLOW_CONTROL), else --address. */
function controlTarget(): string {
  const { address, control } = program.opts<GlobalOptions>();
  return control?.trim() ? control : address;
}

async function client(only?: string): Promise<TaskflowClient> {
  const { token, ca, cert, key, tls } = program.opts<GlobalOptions>();
  const address = only ?? controlTarget();
  if (Boolean(cert) !== Boolean(key)) throw new TaskflowError(Code.INVALID_ARGUMENT, "--cert and --key go together (TASKFLOW_CERT, TASKFLOW_KEY)");
  const secure = tls || ca || cert;
  const { TaskflowClient } = await sdk();
  return new TaskflowClient({
    address,
    // A command waits a little for a restarting node, not the SDK default of 30 s.
    submitRetryTimeoutMs: 5_000,
    ...(token && { token }),
    ...(secure && {
      tls: {
        ...(ca && { ca: readPem("--ca", ca) }),
        ...(cert && key && { cert: readPem("--cert", cert), key: readPem("--key", key) }),
      },
    }),
  });
}

/** The states of a task's first dependencies and dependents, for `get`; one that cannot be read shows its error's code. */
async function graphStates(c: TaskflowClient, task: Task): Promise<Map<string, string>> {
  const [{ TaskState, taskStateName, wireError }, { GRAPH_LISTED }] = await Promise.all([sdk(), taskView()]);
  const ids = [...(task.spec?.dependsOn ?? []).slice(0, GRAPH_LISTED), ...task.dependents.slice(0, GRAPH_LISTED)];
  const states = new Map<string, string>();
  await Promise.all(
    ids.map(async (id) => {
      try {
        const t = await c.get(id);
        states.set(id, t.waitingReason && t.state === TaskState.QUEUED ? `queued (${t.waitingReason})` : taskStateName(t.state));
      } catch (err) {
        states.set(id, `unknown (${wireError(err).message})`);
      }
    }),
  );
  return states;
}

function print(value: unknown, json: boolean, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);
}

program
  .command("node")
  .description("run a Taskflow node: the control role, the worker role, or both, as the config says")
  .option("-c, --config <file>", "JSON config file (see README: Config reference); default: built-in defaults")
  .action(async (opts: { config?: string }) => {
    isClientCommand = false;
    // Handlers first: a SIGTERM that follows the ready line at once must stop the node, not kill
    // it with the default action; one during startup stops it as soon as it has started.
    let stopRequested = false;
    let onSignal = () => {
      stopRequested = true;
    };
    process.once("SIGTERM", () => onSignal());
    process.once("SIGINT", () => onSignal());
    // Loaded here, not above: client commands need none of the control plane (nor reflect-metadata).
    const { runNode } = await import("./node-command.js");
    const node = await runNode(opts.config);
    await new Promise<void>((resolve) => {
      onSignal = () => void node.stop().then(resolve);
      if (stopRequested) onSignal();
    });
    process.exit(EXIT.OK);
  });

program
  .command("submit")
  .description("submit a task; prints its ID, or its result with --wait")
  .addHelpText(
    "after",
    "\nThe task belongs to the tenant of the token it is submitted with (--token or TASKFLOW_TOKEN;\n" +
      '"default" on a cluster without tokens): a tenant is never taken from the request (ADR 0013).',
  )
  .argument("<type>", "task type: the name of a handler, such as echo")
  .argument("[payload]", "JSON payload, such as '{\"hello\":\"world\"}'")
  .option("-p, --priority <n>", "higher runs first under the priority policy", parseInteger("--priority"), 0)
  .option("-w, --wait", "wait for the result and print it (exit 1 if the task fails)")
  .option("--timeout <ms>", "per-attempt timeout in ms", parseInteger("--timeout"))
  .option("--max-attempts <n>", "attempts before the task fails for good", parseInteger("--max-attempts"))
  .option("-l, --label <key=value>", "a label the worker must have (repeatable)", parseLabel)
  .option("--idempotency-key <key>", "a repeated key returns the existing task")
  .option("--delay <duration>", "delayed task: enter the queue after this long, such as 250ms, 30s, 5m, 2h or 1d (at most 365d)", parseDelayOption)
  .option("--at <time>", "delayed task: enter the queue at this ISO 8601 time, such as 2030-01-01T09:00:00Z (a past time runs now)", parseAtOption)
  .option("--depends-on <id>", "task graph: wait until this task succeeded, then run with its result (repeatable)", (id: string, previous: string[] = []) => [...previous, id])
  .addOption(new Option("--on-dependency-failure <mode>", "when a dependency fails or is cancelled: cancel this task, or run it anyway").choices(["cancel", "run"]))
  .option("--concurrency-key <key>", "at most N tasks with this key run at once, N from the cluster's concurrency config")
  .option("--rate-limit-key <key>", "the task's start takes a token of this key's bucket, from the cluster's limits config")
  .option("-m, --metadata <key=value>", "a metadata entry the handler and policies see (repeatable)", parseMetadata)
  .option("--deadline <time>", "when it should have finished, for deadline-aware policies: an ISO 8601 time or +5m from now", parseDeadlineOption)
  .option("--expected-duration <duration>", "how long it is expected to run, a hint for policies, such as 2s or 5m", parseDurationOption("--expected-duration"))
  .option("--json", "print JSON")
  .action(async (type: string, payloadText: string | undefined, opts) => {
    if (opts.delay !== undefined && opts.at !== undefined) throw new TaskflowError(Code.INVALID_ARGUMENT, "--delay and --at are exclusive: give one");
    const c = await client();
    try {
      const id = await c.submit(type, parsePayload(payloadText), {
        ...(opts.delay !== undefined && { delayMs: opts.delay }),
        ...(opts.at !== undefined && { runAt: opts.at }),
        priority: opts.priority,
        ...(opts.timeout !== undefined && { timeoutMs: opts.timeout }),
        ...(opts.maxAttempts !== undefined && { maxAttempts: opts.maxAttempts }),
        ...(opts.label && { requiredLabels: opts.label }),
        ...(opts.idempotencyKey && { idempotencyKey: opts.idempotencyKey }),
        ...(opts.dependsOn && { dependsOn: opts.dependsOn as string[] }),
        ...(opts.onDependencyFailure && { onDependencyFailure: opts.onDependencyFailure as "cancel" | "run" }),
        ...(opts.concurrencyKey && { concurrencyKey: opts.concurrencyKey }),
        ...(opts.rateLimitKey && { rateLimitKey: opts.rateLimitKey }),
        ...(opts.metadata && { metadata: opts.metadata }),
        ...(opts.deadline !== undefined && { deadline: opts.deadline }),
        ...(opts.expectedDuration !== undefined && { expectedDurationMs: opts.expectedDuration }),
      });
      if (!opts.wait) {
        print({ id }, opts.json, () => id);
        return;
      }
      const outcome = await c.outcome(id);
      if (outcome.state === "succeeded") {
        print(opts.json ? { id, state: outcome.state, result: outcome.value ?? null } : outcome.value, opts.json, () =>
          JSON.stringify(outcome.value ?? null),
        );
      } else {
        print({ id, state: outcome.state, error: outcome.error }, opts.json, () => `task ${id} ${outcome.state}: ${outcome.error}`);
        process.exitCode = EXIT.TASK_FAILED;
      }
    } finally {
      c.close();
    }
  });

program
  .command("get")
  .description("show a task: state, attempts, worker, result or error, and why it waits")
  .argument("<id>", "task ID")
  .option("--json", "print JSON")
  .action(async (id: string, opts: { json?: boolean }) => {
    const [c, { taskJson, taskText }] = await Promise.all([client(), taskView()]);
    try {
      const task = await c.get(id);
      const states = opts.json ? new Map<string, string>() : await graphStates(c, task);
      print(taskJson(task), Boolean(opts.json), () => taskText(task, states));
    } finally {
      c.close();
    }
  });

program
  .command("watch")
  .description("print a task's state changes until it finishes (exit 1 if it fails)")
  .argument("<id>", "task ID")
  .option("--json", "print one JSON object per change")
  .action(async (id: string, opts: { json?: boolean }) => {
    const [c, { TaskState, taskStateName }, { taskJson }] = await Promise.all([client(), sdk(), taskView()]);
    try {
      let last = TaskState.UNSPECIFIED;
      for await (const task of c.watch(id)) {
        last = task.state;
        const j = taskJson(task);
        const detail = j["waitingReason"] ?? j["workerId"] ?? "";
        process.stdout.write(`${opts.json ? JSON.stringify(j) : `${new Date().toISOString()}  ${taskStateName(task.state)}${detail ? `  ${detail}` : ""}`}\n`);
        if (task.state === TaskState.SUCCEEDED && !opts.json) process.stdout.write(`${JSON.stringify(j["result"])}\n`);
      }
      if (last === TaskState.FAILED || last === TaskState.CANCELLED) process.exitCode = EXIT.TASK_FAILED;
    } finally {
      c.close();
    }
  });

program
  .command("cancel")
  .description("cancel a task that has not finished, or every unfinished task matching --type/--tenant/--since/--until/--state")
  .argument("[id]", "task ID (or give filters instead)")
  .option("-r, --reason <text>", "why, kept on the task")
  .option("-t, --type <type>", "bulk: only this task type")
  .option("--tenant <name>", "bulk: only this tenant's tasks (admin tokens)")
  .option("--since <when>", "bulk: only tasks submitted since then (1h, 30m, 2d, or a date)")
  .option("--until <when>", "bulk: only tasks submitted before then (1h, 30m, 2d, or a date)")
  .addOption(new Option("-s, --state <state...>", "bulk: only these states (default all unfinished)").choices(["queued", "assigned", "running"]))
  .option("-n, --limit <n>", "bulk: at most this many (at most 10000)", parseInteger("--limit"), 1000)
  .option("-y, --yes", "bulk: do it; without --yes only print what it would cancel")
  .option("--json", "print JSON")
  .action(async (id: string | undefined, opts: BulkFlags & { reason?: string }) => {
    const filter = bulkFilter(opts, "created");
    if (id !== undefined && filter) usage("give a task ID or filters (--type, --tenant, --since, --until, --state), not both");
    if (id === undefined && !filter) usage("give a task ID, or filters (--type, --tenant, --since, --until, --state) for a bulk cancel");
    const [c, { taskJson }] = await Promise.all([client(), taskView()]);
    try {
      if (id !== undefined) {
        const task = await c.cancel(id, opts.reason ?? "");
        print(taskJson(task), Boolean(opts.json), () => `cancelled ${id}`);
        return;
      }
      const tasks = await c.cancelMany({ ...filter, maxTasks: opts.limit, dryRun: !opts.yes }, opts.reason ?? "");
      printBulk(tasks.map(taskJson), "cancel", Boolean(opts.yes), Boolean(opts.json));
    } finally {
      c.close();
    }
  });

program
  .command("retry")
  .description("put failed or cancelled tasks back in the queue with a fresh attempt budget: by ID, or every one matching filters")
  .argument("[ids...]", "task IDs (all or none are retried)")
  .option("-t, --type <type>", "bulk: only this task type")
  .option("--tenant <name>", "bulk: only this tenant's tasks (admin tokens)")
  .option("--since <when>", "bulk: only tasks that finished since then (1h, 30m, 2d, or a date)")
  .option("--until <when>", "bulk: only tasks that finished before then (1h, 30m, 2d, or a date)")
  .addOption(new Option("-s, --state <state...>", "bulk: only these states (default failed)").choices(["failed", "cancelled"]))
  .option("-n, --limit <n>", "bulk: at most this many, newest first (at most 10000)", parseInteger("--limit"), 1000)
  .option("-y, --yes", "bulk: do it; without --yes only print what it would retry")
  .option("--json", "print JSON")
  .action(async (ids: string[], opts: BulkFlags) => {
    const filter = bulkFilter(opts, "finished");
    if (ids.length > 0 && filter) usage("give task IDs or filters (--type, --tenant, --since, --until, --state), not both");
    if (ids.length === 0 && !filter) usage("give task IDs, or filters (--type, --tenant, --since, --until, --state) for a bulk retry");
    const [c, { taskJson }] = await Promise.all([client(), taskView()]);
    try {
      if (ids.length > 0) {
        const tasks = await c.retry(ids);
        print({ tasks: tasks.map(taskJson) }, Boolean(opts.json), () => tasks.map((t) => `retried ${t.id}`).join("\n"));
        return;
      }
      const tasks = await c.retry({ ...filter, maxTasks: opts.limit, dryRun: !opts.yes });
      printBulk(tasks.map(taskJson), "retry", Boolean(opts.yes), Boolean(opts.json));
    } finally {
      c.close();
    }
  });

interface BulkFlags {
  type?: string;
  tenant?: string;
  since?: string;
  until?: string;
  state?: string[];
  limit: number;
  yes?: boolean;
  json?: boolean;
}

/** The filter the bulk flags give, or undefined when none is set; `times` says which time --since/--until bound. */
function bulkFilter(opts: BulkFlags, times: "created" | "finished"): BulkFilter | undefined {
  if (!opts.type && !opts.tenant && !opts.since && !opts.until && !opts.state?.length) return undefined;
  const now = Date.now();
  const at = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const t = parseTimePoint(text, now);
    if (t === undefined) usage(`${flag} takes a duration back from now (1h, 30m, 2d) or a date (2026-01-31T12:00:00Z), got "${text}"`);
    return t;
  };
  const since = at("--since", opts.since);
  const until = at("--until", opts.until);
  return {
    ...(opts.type && { type: opts.type }),
    ...(opts.tenant && { tenant: opts.tenant }),
    ...(opts.state?.length && { states: opts.state.map((s) => STATE_VALUES.indexOf(s) + 1) }),
    ...(since !== undefined && (times === "created" ? { createdAfter: since } : { finishedAfter: since })),
    ...(until !== undefined && (times === "created" ? { createdBefore: until } : { finishedBefore: until })),
  };
}

function usage(message: string): never {
  throw new TaskflowError(Code.INVALID_ARGUMENT, message);
}

/** A bulk call's answer (its tasks as `taskJson` shows them): what it did, or with a dry run what it would do and how to do it. */
function printBulk(tasks: readonly Record<string, unknown>[], verb: "retry" | "cancel", done: boolean, json: boolean): void {
  const rows = [["ID", "TYPE", "STATE", "TENANT", "LAST ERROR"]];
  for (const t of tasks) rows.push([String(t["id"]), String(t["type"]), String(t["state"]), String(t["tenant"] ?? "-"), lastError(t)]);
  print({ [done ? (verb === "retry" ? "retried" : "cancelled") : `would${verb === "retry" ? "Retry" : "Cancel"}`]: tasks }, json, () => {
    const what = done ? `${verb === "retry" ? "retried" : "cancelled"} ${tasks.length} task(s)` : `would ${verb} ${tasks.length} task(s); run again with --yes to do it`;
    return tasks.length ? `${table(rows)}\n${what}` : what;
  });
}

/** The error a task finished with (its cancel reason for a cancelled one), cut to fit a column. */
function lastError(t: Record<string, unknown>): string {
  const e = String(t["error"] ?? "").replace(/\s+/g, " ");
  return !e || e === "null" ? "-" : e.length > 60 ? `${e.slice(0, 59)}…` : e;
}

const STATE_VALUES = ["queued", "assigned", "running", "succeeded", "failed", "cancelled"];

program
  .command("list")
  .description("list tasks, newest first")
  .addOption(new Option("-s, --state <state...>", "only these states").choices(STATE_VALUES))
  .option("-t, --type <type>", "only this task type")
  .option("--client <id>", "only tasks submitted by this client ID")
  .option("-n, --limit <n>", "tasks per page (at most 1000)", parseInteger("--limit"), 20)
  .option("--page-token <token>", "continue from a previous page")
  .option("--json", "print JSON")
  .action(async (opts) => {
    const [c, { taskJson }] = await Promise.all([client(), taskView()]);
    try {
      const page = await c.list({
        states: ((opts.state as string[] | undefined) ?? []).map((s) => STATE_VALUES.indexOf(s) + 1),
        type: opts.type ?? "",
        clientId: opts.client ?? "",
        pageSize: opts.limit,
        pageToken: opts.pageToken ?? "",
      });
      const tasks = page.tasks.map(taskJson);
      print({ tasks, nextPageToken: page.nextPageToken || null, total: Number(page.totalSize) }, Boolean(opts.json), () => {
        // Failed and cancelled tasks (the dead-letter list) show why they ended.
        const withError = tasks.some((t) => t["error"]);
        const rows = [["ID", "TYPE", "STATE", "ATTEMPT", "WORKER", "CREATED", "DUE", ...(withError ? ["LAST ERROR"] : [])]];
        for (const t of tasks) {
          const row = [String(t["id"]), String(t["type"]), String(t["state"]), String(t["attempt"]), String(t["workerId"] ?? "-"), String(t["createdAt"]), String(t["runAt"] ?? "-")];
          rows.push(withError ? [...row, lastError(t)] : row);
        }
        const more = page.nextPageToken ? `\nmore: --page-token ${page.nextPageToken}` : "";
        return `${table(rows)}\n${tasks.length} of ${page.totalSize} task(s)${more}`;
      });
    } finally {
      c.close();
    }
  });

addWorkersCommand(program, { client: () => client(), print });

program
  .command("status")
  .description("each control node's role (leader, standby), lease epoch and leader, with its store and queue")
  .option("--json", "print JSON")
  .action(async (opts: { json?: boolean }) => {
    const { controlAddresses } = await sdk();
    const nodes = await Promise.all(
      controlAddresses(controlTarget()).map(async (address) => {
        const c = await client(address);
        try {
          const state = await c.clusterState({ summaryOnly: true });
          const l = state.leadership;
          return {
            address,
            reachable: true,
            role: l?.role || "single",
            epoch: Number(l?.epoch ?? 0n),
            leader: l?.leader ?? "",
            store: state.store ? { kind: state.store.kind, writable: state.store.writable, error: state.store.error } : undefined,
            queued: Number(state.queued),
            running: Number(state.running),
            // A node older than paging sends no summary, and every worker.
            workers: state.workerSummary?.total ?? state.workers.length,
          };
        } catch (err) {
          return { address, reachable: false, error: err instanceof Error ? err.message : String(err) };
        } finally {
          c.close();
        }
      }),
    );
    if (!nodes.some((n) => n.reachable)) throw new TaskflowError(Code.UNAVAILABLE, `no control node answered: ${nodes.map((n) => `${n.address}: ${"error" in n ? n.error : ""}`).join("; ")}`);
    print(nodes, Boolean(opts.json), () => {
      const rows = [["NODE", "ROLE", "EPOCH", "LEADER", "STORE", "QUEUED", "RUNNING", "WORKERS"]];
      for (const n of nodes) {
        if (!("role" in n)) rows.push([n.address, "unreachable", "", "", "", "", "", ""]);
        else rows.push([n.address, String(n.role), String(n.epoch), n.leader || "-", n.store ? `${n.store.kind}${n.store.writable ? "" : " (cannot write)"}` : "-", String(n.queued), String(n.running), String(n.workers)]);
      }
      return table(rows);
    });
  });

program
  .command("top")
  .description("a live view of workers, queue and rates; q or Ctrl-C quits")
  .option("-i, --interval <ms>", "refresh every this many ms", parseInteger("--interval"), 1000)
  .option("--once", "print one screen (rates over one interval) and exit; no terminal needed")
  .action(async (opts: { interval: number; once?: boolean }) => {
    const [c, { renderTop, runTop, sampleOf }] = await Promise.all([client(), import("./cli/top.js")]);
    const address = controlTarget();
    try {
      if (opts.once) {
        const first = sampleOf(await c.clusterState(), Date.now());
        await new Promise((r) => setTimeout(r, Math.max(1, opts.interval)));
        const second = sampleOf(await c.clusterState(), Date.now());
        process.stdout.write(`${renderTop(second, first, { address, width: process.stdout.columns || 120, height: process.stdout.rows || 1000 })}\n`);
        return;
      }
      await runTop({ poll: () => c.clusterState(), address, intervalMs: Math.max(100, opts.interval), output: process.stdout, input: process.stdin });
    } finally {
      c.close();
    }
  });

program
  .command("drain")
  .description("stop sending tasks to a worker; it finishes running ones, then leaves")
  .argument("<worker-id>", "worker ID, as `taskflow workers` shows it")
  .option("--json", "print JSON")
  .action(async (workerId: string, opts: { json?: boolean }) => {
    const [c, { workerJson }] = await Promise.all([client(), taskView()]);
    try {
      const w = await c.drainWorker(workerId);
      print(workerJson(w), Boolean(opts.json), () => `draining ${workerId} (${w.running} task(s) running)`);
    } finally {
      c.close();
    }
  });

addSimulateCommand(program, () => {
  isClientCommand = false;
});
addScheduleCommands(program, { client, print, parsePayload, parseLabel, parseInteger });

const token = program.command("token").description("bearer tokens for a secured cluster");
token
  .command("create")
  .description("print a new random token and the auth.tokens entry (its hash) to put in the control node's config")
  .addOption(new Option("-r, --role <role>", "what the token may do").choices([...AUTH_ROLES]).makeOptionMandatory())
  .option("-t, --tenant <tenant>", "the tenant its tasks belong to", "default")
  .option("-n, --name <name>", "who holds it, shown in logs; worker IDs bind to it (default: <role>-<random>)")
  .option("--task-types <types>", "worker tokens: only these task types, comma-separated")
  .option("--json", "print JSON: { token, entry }")
  .action(async (opts: { role: AuthRole; tenant: string; name?: string; taskTypes?: string; json?: boolean }) => {
    const { createToken, hashToken } = await import("@taskflow/services/auth");
    const secret = createToken();
    const entry = {
      hash: hashToken(secret),
      role: opts.role,
      tenant: opts.tenant,
      name: opts.name ?? `${opts.role}-${secret.slice(4, 12)}`,
      ...(opts.taskTypes && { taskTypes: opts.taskTypes.split(",").map((t) => t.trim()).filter(Boolean) }),
    };
    print({ token: secret, entry }, Boolean(opts.json), () =>
      [
        `token (give it to the ${opts.role}; shown once, not stored anywhere): ${secret}`,
        `add to auth.tokens in the control node's config:`,
        JSON.stringify(entry),
      ].join("\n"),
    );
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    // A usage error is a TaskflowError already: only another error needs the SDK to read it.
    const e = TaskflowError.is(err) ? err : (await sdk()).wireError(err);
    const hint = isClientCommand && e.code === Code.UNAVAILABLE ? ` (is a control node running at ${controlTarget()}?)` : "";
    process.stderr.write(`taskflow: ${errorLine(e, isClientCommand)}${hint}\n`);
    process.exitCode = exitCodeFor(e);
  }
}
