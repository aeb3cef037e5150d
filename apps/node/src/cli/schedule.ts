/** `taskflow schedule create|list|get|pause|resume|delete`: recurring schedules (ADR 0025). */
import { type Command, InvalidArgumentError, Option } from "commander";
import { Code, MAX_SCHEDULE_INTERVAL_MS, MIN_SCHEDULE_INTERVAL_MS, TaskflowError } from "@taskflow/core/base";
import type { MissedFiringsPolicy, TaskflowClient } from "@taskflow/client";
import { parseDelay, table } from "./output.js";

/** What the schedule commands use of bin.ts. */
export interface ScheduleCommandDeps {
  /** A connected client; async because the client (gRPC, protobuf) is loaded when a command runs. */
  client(): Promise<TaskflowClient>;
  print(value: unknown, json: boolean, text: () => string): void;
  parsePayload(text: string | undefined): unknown;
  parseLabel(value: string, previous?: Record<string, string>): Record<string, string>;
  parseInteger(name: string): (value: string) => number;
}

const MISSED_FLAG: Record<string, MissedFiringsPolicy> = { skip: "skip", once: "run-once", "catch-up": "catch-up" };

function parseEvery(value: string): number {
  const ms = parseDelay(value);
  if (ms === undefined) throw new InvalidArgumentError("--every is a whole number with a unit: 30s, 5m, 2h or 1d.");
  if (ms < MIN_SCHEDULE_INTERVAL_MS || ms > MAX_SCHEDULE_INTERVAL_MS) throw new InvalidArgumentError("--every is 1s … 365d.");
  return ms;
}

/** Adds `schedule` and its subcommands to `program`. */
export function addScheduleCommands(program: Command, deps: ScheduleCommandDeps): void {
  const { client, print } = deps;
  const run = async <T>(fn: (c: TaskflowClient) => Promise<T>): Promise<T> => {
    const c = await client();
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  };
  const schedule = program
    .command("schedule")
    .description("recurring schedules: each firing submits one task (cron with a time zone, or a fixed interval)")
    .addHelpText(
      "after",
      `
Each firing submits one task with the idempotency key schedule:<id>:<firing ms>, so a firing
repeated after a control node restart makes no second task. The tasks' client ID is
schedule:<id>: \`taskflow list --client schedule:<id>\` lists them.

Examples:
  $ taskflow schedule create nightly-report report.build '{"format":"pdf"}' --cron "0 2 * * *" --tz Europe/Paris
  $ taskflow schedule create heartbeat ping --every 30s --missed skip
  $ taskflow schedule list
  $ taskflow schedule pause nightly-report`,
    );

  const definition = (name: "create" | "update", description: string) =>
    schedule
      .command(name)
      .description(description)
      .argument("<id>", name === "create" ? "a name unique in your tenant: letters, digits, _ . - (at most 64)" : "schedule ID")
      .argument("<type>", "the task type each firing submits (a handler's name)")
      .argument("[payload]", "JSON payload of each firing's task, such as '{\"n\":1}'")
      .option("--cron <expr>", 'cron expression: 5 fields (min hour day month weekday), 6 with seconds first, or @hourly/@daily/…, such as "*/5 * * * *"')
      .option("--tz <zone>", "IANA time zone of --cron, such as Europe/Paris (default UTC)")
      .option("--every <duration>", "fixed interval instead of --cron: 30s, 5m, 2h, 1d (at least 1s); first firing one interval from now", parseEvery)
      .addOption(
        new Option("--missed <policy>", "firings missed while the control node was down: skip them, run once for all, or catch up (one each, at most --catch-up-max)")
          .choices(["skip", "once", "catch-up"])
          .default("once"),
      )
      .option("--catch-up-max <n>", "with --missed catch-up: at most this many missed firings run, the latest (default 10, at most 1000)", deps.parseInteger("--catch-up-max"))
      .option("-p, --priority <n>", "the tasks' priority (higher runs first under the priority policy)", deps.parseInteger("--priority"), 0)
      .option("--timeout <ms>", "the tasks' per-attempt timeout in ms", deps.parseInteger("--timeout"))
      .option("--max-attempts <n>", "the tasks' attempts before they fail for good", deps.parseInteger("--max-attempts"))
      .option("-l, --label <key=value>", "a label the worker must have (repeatable)", deps.parseLabel)
      .option("--json", "print JSON");

  for (const [name, description] of [
    ["create", "create a schedule; prints it with its next firing time"],
    ["update", "replace a schedule's task, timing and missed-firings policy (give them all, as to create); it fires on the new timing from now"],
  ] as const) {
    const command = definition(name, description);
    if (name === "create") command.option("--paused", "create it paused (resume starts it)");
    else command.option("--tenant <name>", "another tenant's schedule (admin tokens)");
    command.action(async (id: string, type: string, payloadText: string | undefined, opts) => {
      if (opts.cron === undefined && opts.every === undefined) throw new TaskflowError(Code.INVALID_ARGUMENT, "give --cron <expr> (with --tz <zone>) or --every <duration>");
      if (opts.cron !== undefined && opts.every !== undefined) throw new TaskflowError(Code.INVALID_ARGUMENT, "--cron and --every are exclusive: give one");
      if (opts.tz !== undefined && opts.cron === undefined) throw new TaskflowError(Code.INVALID_ARGUMENT, "--tz goes with --cron");
      const options = {
        id,
        type,
        payload: deps.parsePayload(payloadText),
        ...(opts.cron !== undefined && { cron: opts.cron, timezone: opts.tz ?? "" }),
        ...(opts.every !== undefined && { intervalMs: opts.every }),
        missed: MISSED_FLAG[opts.missed as string]!,
        ...(opts.catchUpMax !== undefined && { catchUpMax: opts.catchUpMax }),
        paused: Boolean(opts.paused),
        priority: opts.priority,
        ...(opts.timeout !== undefined && { timeoutMs: opts.timeout }),
        ...(opts.maxAttempts !== undefined && { maxAttempts: opts.maxAttempts }),
        ...(opts.label && { requiredLabels: opts.label }),
      };
      const done = await run((c) => (name === "create" ? c.schedules.create(options) : c.schedules.update(options, opts.tenant ?? "")));
      const { scheduleJson, scheduleText } = await import("./schedule-view.js");
      print(scheduleJson(done), Boolean(opts.json), () => scheduleText(done));
    });
  }

  schedule
    .command("list")
    .description("list schedules with their timing and NEXT FIRING (viewer and admin tokens: every tenant's)")
    .option("--tenant <name>", "only this tenant's (viewer and admin tokens)")
    .option("--json", "print JSON")
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      const list = await run((c) => c.schedules.list(opts.tenant ?? ""));
      const { scheduleJson, timingText } = await import("./schedule-view.js");
      const items = list.map(scheduleJson);
      print({ schedules: items }, Boolean(opts.json), () => {
        if (items.length === 0) return "no schedules";
        const tenants = new Set(items.map((s) => s["tenant"])).size > 1;
        const rows = [[...(tenants ? ["TENANT"] : []), "ID", "TYPE", "TIMING", "MISSED", "STATE", "NEXT FIRING", "LAST TASK"]];
        for (const s of items) {
          rows.push([
            ...(tenants ? [String(s["tenant"])] : []),
            String(s["id"]),
            String(s["type"]),
            timingText(s),
            String(s["missed"]),
            s["paused"] ? "paused" : s["lastError"] ? "refused" : "active",
            String(s["nextFireAt"] ?? "-"),
            String(s["lastTaskId"] ?? "-"),
          ]);
        }
        return `${table(rows)}\n${items.length} schedule(s)`;
      });
    });

  for (const [name, description] of [
    ["get", "show a schedule: timing, policy, next and last firing, and why its last firing was refused"],
    ["pause", "stop a schedule's firings until resume"],
    ["resume", "fire again from the next firing time after now (the paused time is not made up)"],
    ["delete", "delete a schedule; the tasks it made stay"],
  ] as const) {
    schedule
      .command(name)
      .description(description)
      .argument("<id>", "schedule ID")
      .option("--tenant <name>", "another tenant's schedule (admin tokens; viewers for get)")
      .option("--json", "print JSON")
      .action(async (id: string, opts: { tenant?: string; json?: boolean }) => {
        const s = await run((c) => c.schedules[name](id, opts.tenant ?? ""));
        const { scheduleJson, scheduleText, time } = await import("./schedule-view.js");
        print(scheduleJson(s), Boolean(opts.json), () => (name === "get" ? scheduleText(s) : `${name === "delete" ? "deleted" : `${name}d`} ${id}${name === "resume" ? `; next firing ${time(s.nextFireTime)}` : ""}`));
      });
  }
}
