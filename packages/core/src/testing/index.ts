export * from "./store.js";
export * from "./policy.js";
