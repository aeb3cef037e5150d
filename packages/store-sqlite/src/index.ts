export { SqliteTaskStore, type SqliteStoreStats, type SqliteTaskStoreOptions } from "./sqlite-store.js";
export { SqliteScheduleStore } from "./schedule-store.js";
export { SCHEMA_VERSION } from "./schema.js";
