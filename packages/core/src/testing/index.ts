export * from "./store.js";
export * from "./policy.js";
export * from "./random.js";
