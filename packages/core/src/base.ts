/**
 * `@taskflow/core/base`: what a client needs of core (the error type, its codes and reasons, the
 * default address, limits it checks before sending) without the config schemas. The main entry
 * loads zod and builds every schema at import, a third of the CLI's start-up; the CLI and the SDK
 * import this instead so a client command starts fast (ADR 0031, issue 13). Nothing here may
 * import `./config.js` or zod (apps/node/src/bin.test.ts checks).
 */
export { Code, Reason, TaskflowError, type TaskflowErrorOptions } from "./errors.js";
export { MAX_DELAY_MS } from "./model.js";
export { MAX_SCHEDULE_INTERVAL_MS, MIN_SCHEDULE_INTERVAL_MS } from "./schedule.js";
export { AUTH_ROLES, DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT, type AuthRole } from "./config/addresses.js";
