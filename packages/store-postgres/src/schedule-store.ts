/**
 * The schedules of a Postgres store: one row per (tenant, schedule ID) in `schedules`, the record
 * as one JSON text. They go through the task store's connections and leader fence, so a deposed
 * leader can no more change a schedule than a task.
 */
import { decodeSchedule, encodeSchedule, type ScheduleRecord, type ScheduleStore } from "@taskflow/core";
import type { PostgresDatabase } from "./database.js";

/**
 * The {@link ScheduleStore} in the same database as a `PostgresTaskStore`; get it as that
 * store's `schedules` (usable while the task store is open).
 */
export class PostgresScheduleStore implements ScheduleStore {
  /** @internal Made by the task store, which opens and closes the database. */
  constructor(private readonly db: PostgresDatabase) {}

  async loadSchedules(): Promise<ScheduleRecord[]> {
    const rows = await this.db.read("loadSchedules", { name: "tf_schedules", text: "SELECT body FROM schedules", values: [] });
    return rows.map((row) => decodeSchedule(row[0] as string));
  }

  async saveSchedule(schedule: ScheduleRecord): Promise<void> {
    await this.db.writeOne("saveSchedule", {
      name: "tf_save_schedule",
      text: "INSERT INTO schedules (tenant, id, body) VALUES ($1, $2, $3) ON CONFLICT (tenant, id) DO UPDATE SET body = EXCLUDED.body",
      values: [schedule.tenant, schedule.id, encodeSchedule(schedule)],
    });
  }

  async deleteSchedule(tenant: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.writeOne("deleteSchedule", { name: "tf_delete_schedule", text: "DELETE FROM schedules WHERE tenant = $1 AND id = $2", values: [tenant, id] });
    return rowCount > 0;
  }
}
