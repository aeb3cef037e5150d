/** Loads a handlers module: its default export or its `handlers` export, an object of functions. */
import { pathToFileURL } from "node:url";
import { Code, Reason, TaskflowError } from "@taskflow/core";
import type { HandlerMap } from "@taskflow/client";

export async function loadHandlers(file: string | undefined): Promise<HandlerMap> {
  if (!file) return (await import("./examples/handlers.js")).handlers;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `cannot load worker.handlers module ${file}: ${(err as Error).message}; fix: point worker.handlers at a .js/.mjs file (relative to the config file)`,
      { reason: Reason.HANDLERS, cause: err },
    );
  }
  const candidate = (mod["handlers"] ?? mod["default"]) as unknown;
  if (typeof candidate !== "object" || candidate === null) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `worker.handlers module ${file} exports no handlers; fix: \`export default { myType: async (payload) => result }\``,
      { reason: Reason.HANDLERS },
    );
  }
  const entries = Object.entries(candidate);
  const bad = entries.filter(([, fn]) => typeof fn !== "function").map(([k]) => k);
  if (entries.length === 0 || bad.length) {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      entries.length === 0
        ? `worker.handlers module ${file} exports an empty handlers object; fix: add at least one task type`
        : `worker.handlers module ${file}: ${bad.join(", ")} ${bad.length > 1 ? "are" : "is"} not a function`,
      { reason: Reason.HANDLERS },
    );
  }
  return candidate as HandlerMap;
}
