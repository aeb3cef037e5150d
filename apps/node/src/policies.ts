/**
 * The scheduling policies this installation brings along. apps/node is the one package that
 * depends on them: the services load a policy by name and know none of them.
 */
import type { BuiltInPolicies } from "@taskflow/services";

/** Short names in `scheduler.policy` and the packages they stand for, resolved from here. */
export const BUILT_IN_POLICIES: BuiltInPolicies = Object.freeze({
  packages: Object.freeze({
    fifo: "@taskflow/policy-fifo",
    priority: "@taskflow/policy-priority",
    "least-loaded": "@taskflow/policy-least-loaded",
    "fair-share": "@taskflow/policy-fair-share",
  }),
  resolveFrom: import.meta.url,
});
