export { ProcessLifecycleManager, backoffMs, type LiveTask, type PlmHooks } from "./plm.js";
export { MainScheduler } from "./scheduler.js";
export { WorkerRegister, type HelloInfo, type OutgoingAssignment, type RegisterHooks, type WorkerEntry, type WorkerSessionPort } from "./register.js";
export { ControlServer, toStatus } from "./server.js";
export { MemoryTaskStore } from "./memory-store.js";
export { LocalEventBus } from "./events.js";
export { validateSpec } from "./validation.js";
export { loadPolicy, type BuiltInPolicies } from "./policy-loader.js";
export {
  ANONYMOUS,
  Authenticator,
  ROLES_BY_METHOD,
  createToken,
  hashToken,
  type AuthFailure,
  type AuthFailureEvent,
  type Principal,
  type ServerSecurity,
  type TlsMaterial,
} from "./auth.js";
