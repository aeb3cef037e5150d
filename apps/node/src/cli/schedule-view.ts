/**
 * How the CLI shows a schedule. Apart from schedule.ts because it needs @taskflow/proto's enum
 * and timestamps at load: the schedule commands import it when they run, not at `--help`.
 */
import { MissedFirings, timestampDate, type Schedule, type Timestamp } from "@taskflow/proto";
import { bytesAsJson } from "./output.js";

const MISSED_NAMES: Record<MissedFirings, string> = {
  [MissedFirings.UNSPECIFIED]: "once",
  [MissedFirings.SKIP]: "skip",
  [MissedFirings.RUN_ONCE]: "once",
  [MissedFirings.CATCH_UP]: "catch-up",
};

export function time(ts: Timestamp | undefined): string | null {
  return ts ? timestampDate(ts).toISOString() : null;
}

/** A schedule as plain JSON for `--json`. */
export function scheduleJson(s: Schedule): Record<string, unknown> {
  return {
    id: s.id,
    tenant: s.tenant,
    type: s.template?.type ?? "",
    payload: bytesAsJson(s.template?.payload ?? new Uint8Array(0)),
    cron: s.cron || null,
    timezone: s.cron ? s.timezone || "UTC" : null,
    intervalMs: s.intervalMs ? Number(s.intervalMs) : null,
    missed: MISSED_NAMES[s.missedFirings] ?? "once",
    catchUpMax: s.catchUpMax,
    paused: s.paused,
    nextFireAt: time(s.nextFireTime),
    lastFireAt: time(s.lastFireTime),
    lastTaskId: s.lastTaskId || null,
    createdAt: time(s.createdAt),
    lastError: s.lastError || null,
  };
}

export function timingText(j: Record<string, unknown>): string {
  return j["cron"] ? `cron ${j["cron"]} (${j["timezone"]})` : `every ${humanMs(j["intervalMs"] as number)}`;
}

function humanMs(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

export function scheduleText(s: Schedule): string {
  const j = scheduleJson(s);
  const lines = [
    `id:         ${j["id"]}`,
    `tenant:     ${j["tenant"]}`,
    `task type:  ${j["type"]}`,
    `timing:     ${timingText(j)}`,
    `missed:     ${j["missed"]}${j["missed"] === "catch-up" ? ` (at most ${j["catchUpMax"]})` : ""}`,
    `state:      ${j["paused"] ? "paused" : "active"}`,
    `next:       ${j["nextFireAt"] ?? "-"}`,
    `last:       ${j["lastFireAt"] ? `${j["lastFireAt"]} → task ${j["lastTaskId"]}` : "-"}`,
    `created:    ${j["createdAt"]}`,
  ];
  if (j["lastError"]) lines.push(`refused:    ${j["lastError"]} (tried again every second)`);
  return lines.join("\n");
}
