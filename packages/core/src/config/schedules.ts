/** The `schedules` section: recurring schedules of the control role (ADR 0025). */
import { z } from "zod";

export const schedulesSchema = z.strictObject({
  /**
   * How late a firing may be reached and still run as on time, in ms. A firing time further in
   * the past when the control node gets to it (it was down, or stalled) is a missed firing, and
   * the schedule's missed-firings policy (skip, run once, catch up) decides what runs for it. At
   * least 100: a timer always fires a little late, and below that `skip` would drop on-time firings.
   * @defaultValue 1000
   */
  missedAfterMs: z.number().int().min(100).max(86_400_000).default(1000),
  /**
   * Most schedules the cluster holds, every tenant together; a create past it gets
   * RESOURCE_EXHAUSTED. Every schedule lives in the control node's memory.
   * @defaultValue 10000
   */
  maxSchedules: z.number().int().min(1).max(1_000_000).default(10_000),
});
