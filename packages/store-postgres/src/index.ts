export { PostgresTaskStore } from "./postgres-store.js";
export { PostgresScheduleStore } from "./schedule-store.js";
export { redactUrl, type PostgresSslOptions, type PostgresStoreStats, type PostgresTaskStoreOptions } from "./connection.js";
export { PostgresLeaderLease, type ElectionInfo, type LeaseHandlers, type LeaseState, type PostgresLeaderLeaseOptions } from "./lease.js";
export { SCHEMA_VERSION } from "./schema.js";
