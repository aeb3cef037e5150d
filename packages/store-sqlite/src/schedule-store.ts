/**
 * The schedules half of the SQLite store: same file, same writer, same read connection as the
 * tasks (a firing's task and its schedule's progress share one database's fate), kept apart from
 * `SqliteTaskStore` because the two contracts change for different reasons.
 */
import type Database from "better-sqlite3";
import { decodeSchedule, encodeSchedule, type ScheduleRecord, type ScheduleStore } from "@taskflow/core";
import { toStoreError } from "./sqlite-errors.js";
import type { Writer } from "./writer.js";
import type { ScheduleWrite } from "./writes.js";

/**
 * What the schedule store borrows from its task store; each throws UNAVAILABLE (not open) while
 * the task store is closed.
 */
export interface SqliteConnections {
  /** The read connection of the calling thread. */
  reader(): Database.Database;
  /** Where writes go: schedule writes commit in order with the task groups sent before them. */
  writer(): Writer;
}

/**
 * The {@link ScheduleStore} of a `SqliteTaskStore`, as its `schedules`. Usable while that store
 * is open.
 */
export class SqliteScheduleStore implements ScheduleStore {
  /** Prepared on the first load, for the connection it was prepared on (a reopen makes a new one). */
  private loadAll: { db: Database.Database; statement: Database.Statement<[], string> } | undefined;

  constructor(private readonly connections: SqliteConnections) {}

  async loadSchedules(): Promise<ScheduleRecord[]> {
    try {
      const db = this.connections.reader();
      if (this.loadAll?.db !== db) this.loadAll = { db, statement: db.prepare<[], string>("SELECT body FROM schedules").pluck() };
      return this.loadAll.statement.all().map(decodeSchedule);
    } catch (err) {
      throw toStoreError(err, "loadSchedules");
    }
  }

  /** Committed on the writer's connection, in order with the task groups sent before it. */
  async saveSchedule(schedule: ScheduleRecord): Promise<void> {
    await this.write({ save: true, tenant: schedule.tenant, id: schedule.id, body: encodeSchedule(schedule) });
  }

  async deleteSchedule(tenant: string, id: string): Promise<boolean> {
    return (await this.write({ save: false, tenant, id })) > 0;
  }

  private async write(write: ScheduleWrite): Promise<number> {
    try {
      return await this.connections.writer().schedule(write);
    } catch (err) {
      throw toStoreError(err, write.save ? "saveSchedule" : "deleteSchedule");
    }
  }
}
