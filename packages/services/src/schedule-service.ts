/**
 * The ScheduleService's gRPC handlers: transport only (decode, check the caller's tenant, call
 * the Schedules part, encode). The control server adds them with its own `unary` wrapper, which
 * maps every error to its status.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, TENANT_NAME_PATTERN, TaskflowError, type MissedPolicy, type ScheduleRecord } from "@taskflow/core";
import { MissedFirings, ScheduleSchema, type Schedule, type ScheduleService } from "@taskflow/proto";
import type { ServiceHandlers } from "@taskflow/proto/grpc";
import type * as grpc from "@grpc/grpc-js";
import { tenantOf, type Principal } from "./auth.js";
import { specFromWire, specToWire } from "./convert.js";
import type { ScheduleInput, Schedules } from "./schedules.js";
import { invalid } from "./validation.js";

const MISSED_FROM_WIRE: ReadonlyMap<MissedFirings, MissedPolicy> = new Map([
  [MissedFirings.UNSPECIFIED, "run-once"],
  [MissedFirings.SKIP, "skip"],
  [MissedFirings.RUN_ONCE, "run-once"],
  [MissedFirings.CATCH_UP, "catch-up"],
]);
const MISSED_TO_WIRE: Readonly<Record<MissedPolicy, MissedFirings>> = { skip: MissedFirings.SKIP, "run-once": MissedFirings.RUN_ONCE, "catch-up": MissedFirings.CATCH_UP };

function ts(ms: number): Timestamp | undefined {
  return ms ? timestampFromMs(ms) : undefined;
}

export function scheduleToWire(s: ScheduleRecord): Schedule {
  return create(ScheduleSchema, {
    id: s.id,
    tenant: s.tenant,
    template: specToWire(s.template),
    cron: s.cron,
    timezone: s.timezone,
    intervalMs: BigInt(s.intervalMs),
    missedFirings: MISSED_TO_WIRE[s.missed],
    catchUpMax: s.catchUpMax,
    paused: s.paused,
    nextFireTime: ts(s.nextFireAt),
    lastFireTime: ts(s.lastFireAt),
    lastTaskId: s.lastTaskId,
    createdAt: ts(s.createdAt),
    lastError: s.lastError,
  });
}

/** A create's input; INVALID_ARGUMENT naming the field for what the wire type cannot refuse. */
export function scheduleInputFromWire(s: Schedule | undefined): ScheduleInput {
  if (!s) throw invalid("schedule is required");
  if (!s.template) throw invalid("schedule.template is required: the task each firing submits (its type at least)");
  const missed = MISSED_FROM_WIRE.get(s.missedFirings);
  if (!missed) throw invalid(`schedule.missed_firings has an unknown value ${s.missedFirings}`);
  // uint64 on the wire: a value past 2^53 stays past the limit as a number, and is refused.
  return {
    id: s.id,
    template: specFromWire(s.template),
    cron: s.cron,
    timezone: s.timezone,
    intervalMs: Number(s.intervalMs),
    missed,
    catchUpMax: s.catchUpMax,
    paused: s.paused,
  };
}

/**
 * The tenant a call acts on: the caller's own, or (viewers and admins, whom the role table
 * already limits to what they may call) the one the request names.
 */
function tenantFor(principal: Principal, requested: string): string {
  const own = tenantOf(principal);
  if (!requested || requested === own) return own;
  if (principal.role === "client") throw new TaskflowError(Code.PERMISSION_DENIED, `tenant ${requested} is for admin and viewer tokens; a client token acts on its own tenant's schedules only`);
  if (!TENANT_NAME_PATTERN.test(requested)) throw invalid(`tenant "${requested.slice(0, 80)}" must be 1-64 letters, digits, _ . or -`);
  return requested;
}

type Unary = <Req, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) => grpc.handleUnaryCall<Req, Res>;

/** The handlers; `unary` is the server's (errors to statuses), `principalOf` its authenticator's. */
export function scheduleHandlers(
  schedules: Pick<Schedules, "create" | "get" | "list" | "pause" | "resume" | "delete" | "update">,
  principalOf: (call: { metadata: grpc.Metadata }) => Principal,
  unary: Unary,
): ServiceHandlers<typeof ScheduleService.method> {
  const one = (s: ScheduleRecord) => ({ schedule: scheduleToWire(s) });
  return {
    createSchedule: unary(async (req, call) => one(await schedules.create(scheduleInputFromWire(req.schedule), tenantOf(principalOf(call))))),
    getSchedule: unary((req, call) => one(schedules.get(req.scheduleId, tenantFor(principalOf(call), req.tenant)))),
    listSchedules: unary((req, call) => {
      const principal = principalOf(call);
      const tenant = principal.role === "client" || req.tenant ? tenantFor(principal, req.tenant) : null;
      return { schedules: schedules.list(tenant).map(scheduleToWire) };
    }),
    pauseSchedule: unary(async (req, call) => one(await schedules.pause(req.scheduleId, tenantFor(principalOf(call), req.tenant)))),
    resumeSchedule: unary(async (req, call) => one(await schedules.resume(req.scheduleId, tenantFor(principalOf(call), req.tenant)))),
    deleteSchedule: unary(async (req, call) => one(await schedules.delete(req.scheduleId, tenantFor(principalOf(call), req.tenant)))),
    updateSchedule: unary(async (req, call) => one(await schedules.update(scheduleInputFromWire(req.schedule), tenantFor(principalOf(call), req.tenant)))),
  };
}
