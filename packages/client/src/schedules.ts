/** Recurring schedules through the SDK: `client.schedules.create/get/list/pause/resume/delete`. */
import { MissedFirings, type Schedule, type ScheduleService } from "@taskflow/proto";
import type { ServiceClient } from "@taskflow/proto/grpc";
import type { SubmitOptions } from "./requests.js";

/** What a schedule does with firings missed while the control node was down (ADR 0025). */
export type MissedFiringsPolicy = "skip" | "run-once" | "catch-up";

/** A schedule to create: an ID, the task each firing submits, and one timing (`cron` or `intervalMs`). */
export interface ScheduleOptions extends Omit<SubmitOptions, "idempotencyKey" | "delayMs" | "runAt"> {
  /** A name unique in the tenant: 1-64 letters, digits, `_ . -`, starting with a letter or digit. */
  id: string;
  /** The task type each firing submits. */
  type: string;
  /** The payload each firing's task carries, encoded with the client's codec. @defaultValue none */
  payload?: unknown;
  /** A cron expression: 5 fields, or 6 with seconds first, or a nickname (`@hourly`). Not with `intervalMs`. @defaultValue none */
  cron?: string;
  /** The IANA time zone of `cron`, such as "Europe/Paris". @defaultValue UTC */
  timezone?: string;
  /** A fixed interval in ms, at least 1000; the first firing is one interval after the create. Not with `cron`. @defaultValue none */
  intervalMs?: number;
  /** What to do with firings missed while the control node was down. @defaultValue "run-once" */
  missed?: MissedFiringsPolicy;
  /** With `missed: "catch-up"`: the most missed firings run, the latest ones (at most 1000). @defaultValue 10 */
  catchUpMax?: number;
  /** Create it paused. @defaultValue false */
  paused?: boolean;
}

const MISSED: Record<MissedFiringsPolicy, MissedFirings> = { skip: MissedFirings.SKIP, "run-once": MissedFirings.RUN_ONCE, "catch-up": MissedFirings.CATCH_UP };

/**
 * A tenant's schedules. Calls act on the token's tenant; `tenant` reaches another one's (viewer
 * tokens read, admin tokens act).
 */
export class ScheduleClient {
  /** @internal */
  constructor(
    private readonly rpc: ServiceClient<typeof ScheduleService.method>,
    private readonly spec: (type: string, payload: unknown, options: SubmitOptions) => Record<string, unknown>,
    private readonly call: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {}

  /** Creates a schedule; its first firing is the first time after now that its timing gives. */
  async create(options: ScheduleOptions): Promise<Schedule> {
    const schedule = this.toWire(options);
    return (await this.call(() => this.rpc.createSchedule({ schedule }))).schedule!;
  }

  /**
   * Replaces the definition of schedule `options.id` (template, timing, policy: give them all, as
   * to create; `paused` is ignored). Its last firing and pause stay; it fires on the new timing
   * from now.
   */
  async update(options: ScheduleOptions, tenant = ""): Promise<Schedule> {
    const schedule = this.toWire(options);
    return (await this.call(() => this.rpc.updateSchedule({ schedule, tenant }))).schedule!;
  }

  private toWire(options: ScheduleOptions) {
    const { id, type, payload, cron, timezone, intervalMs, missed, catchUpMax, paused, ...submit } = options;
    return {
      id,
      template: this.spec(type, payload, submit),
      cron: cron ?? "",
      timezone: timezone ?? "",
      intervalMs: BigInt(intervalMs ?? 0),
      missedFirings: missed ? MISSED[missed] : MissedFirings.UNSPECIFIED,
      catchUpMax: catchUpMax ?? 0,
      paused: paused ?? false,
    };
  }

  async get(id: string, tenant = ""): Promise<Schedule> {
    return (await this.call(() => this.rpc.getSchedule({ scheduleId: id, tenant }))).schedule!;
  }

  /** The tenant's schedules by ID (viewer and admin tokens: every tenant's, unless `tenant` names one). */
  async list(tenant = ""): Promise<Schedule[]> {
    return (await this.call(() => this.rpc.listSchedules({ tenant }))).schedules;
  }

  async pause(id: string, tenant = ""): Promise<Schedule> {
    return (await this.call(() => this.rpc.pauseSchedule({ scheduleId: id, tenant }))).schedule!;
  }

  /** Fires again from its next firing time after now; what the pause passed over is not made up. */
  async resume(id: string, tenant = ""): Promise<Schedule> {
    return (await this.call(() => this.rpc.resumeSchedule({ scheduleId: id, tenant }))).schedule!;
  }

  /** Deletes it; the tasks it made stay. Returns it as it was. */
  async delete(id: string, tenant = ""): Promise<Schedule> {
    return (await this.call(() => this.rpc.deleteSchedule({ scheduleId: id, tenant }))).schedule!;
  }
}
