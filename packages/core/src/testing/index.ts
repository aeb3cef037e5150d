export * from "./store.js";
export * from "./schedule-store.js";
export * from "./policy.js";
export * from "./random.js";
export * from "./clock.js";
