export { PostgresTaskStore, redactUrl, type PostgresSslOptions, type PostgresStoreStats, type PostgresTaskStoreOptions } from "./postgres-store.js";
export { SCHEMA_VERSION } from "./schema.js";
