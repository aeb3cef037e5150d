/** For config tests: the message of the error `parseConfig` throws for `raw`, checked to be a config error. */
import assert from "node:assert/strict";
import { parseConfig } from "../config.js";
import { Code, Reason, TaskflowError } from "../errors.js";

export function configError(raw: unknown): string {
  try {
    parseConfig(raw, "test.json");
  } catch (err) {
    assert.ok(TaskflowError.is(err));
    assert.equal(err.code, Code.INVALID_ARGUMENT);
    assert.equal(err.reason, Reason.CONFIG);
    return err.message;
  }
  return assert.fail("expected a config error");
}
