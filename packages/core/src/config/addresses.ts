/**
 * Config constants a client needs (the CLI, the SDK), kept apart from the schemas so that reading
 * them does not load zod: `@taskflow/core/base` re-exports them (ADR 0031, the CLI's start-up).
 */

/** The control node's default host and port: the config's defaults, and the SDK's and CLI's address. */
export const DEFAULT_CONTROL_HOST = "127.0.0.1";
export const DEFAULT_CONTROL_PORT = 50051;
/** `DEFAULT_CONTROL_HOST:DEFAULT_CONTROL_PORT`, where clients and workers look unless told otherwise. */
export const DEFAULT_CONTROL_ADDRESS = `${DEFAULT_CONTROL_HOST}:${DEFAULT_CONTROL_PORT}`;

/** Roles a bearer token can have; see {@link ROLES_BY_METHOD} in the services for what each may call. */
export const AUTH_ROLES = ["client", "worker", "viewer", "admin"] as const;
export type AuthRole = (typeof AUTH_ROLES)[number];
