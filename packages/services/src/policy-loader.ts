/**
 * Loads the scheduling policy named in `scheduler.policy`. A short name (`fifo`, `priority`,
 * `least-loaded`, `fair-share`) means a built-in package, which the caller names and resolves from its own
 * folder (`apps/node` is the one package that depends on them); any other name is an npm package
 * (or a `./relative` file) resolved from the config file's folder, the way Babel and fastify
 * resolve plugins, so an app can `npm install @acme/taskflow-policy-x` and name it. Resolution is
 * Node's own: `require.resolve`, then the ESM resolver (import-meta-resolve, the same algorithm as
 * `import.meta.resolve`, which Node 20 cannot run from another folder) for a package whose
 * `exports` only has an `import` condition.
 *
 * Every failure is a TaskflowError with a stable reason that says what was looked for and what to
 * try: `TASKFLOW_ERR_POLICY_NOT_FOUND`, `_INVALID`, `_VERSION` and `_OPTIONS`.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { resolve as esmResolve } from "import-meta-resolve";
import { CORE_VERSION, Code, Reason, TaskflowError, contractProblem, isPolicyDefinition, type PolicyDefinition } from "@taskflow/core";

/** The policies a Taskflow installation brings along, for short names in `scheduler.policy`. */
export interface BuiltInPolicies {
  /** Short names and the packages they stand for, such as `fifo` → `@taskflow/policy-fifo`. */
  readonly packages: Readonly<Record<string, string>>;
  /** A module (file URL or path) of the package that depends on them: they are resolved from it. */
  readonly resolveFrom: string;
}

const NO_BUILT_INS: BuiltInPolicies = { packages: {}, resolveFrom: import.meta.url };

interface SemverSubset {
  validRange(range: string): string | null;
  satisfies(version: string, range: string, options?: { includePrerelease?: boolean }): boolean;
}

/** semver ships no types and @types/semver is not installed; this is the part used here. */
const semver = createRequire(import.meta.url)("semver") as SemverSubset;

/** Where a policy module was found. */
interface Located {
  /** The name as written in config. */
  readonly name: string;
  /** The npm package name, or the file path for a relative name. */
  readonly packageName: string;
  readonly file: string;
  readonly builtIn: boolean;
}

/**
 * Finds, imports and checks a policy, and validates its options.
 * @param name `scheduler.policy`: a short name, a package name, or a path starting with `.`/`/`.
 * @param options `scheduler.policyOptions`, checked with the policy's `parseOptions`.
 * @param fromDir the config file's folder; package names are resolved from its `node_modules`.
 * @param builtIns the short names this installation knows. @defaultValue none
 * @returns the policy definition; create it with `definition.parseOptions(options)`.
 * @throws TaskflowError with reason POLICY_NOT_FOUND, POLICY_INVALID, POLICY_VERSION or POLICY_OPTIONS.
 */
export async function loadPolicy(name: string, options: unknown, fromDir: string, builtIns: BuiltInPolicies = NO_BUILT_INS): Promise<PolicyDefinition> {
  const located = locate(name, path.resolve(fromDir), builtIns);
  const definition = pickDefinition(await importModule(located), located);
  checkCoreVersion(definition, located);
  checkContract(definition, located);
  checkOptions(definition, options, located);
  return definition;
}

function locate(name: string, fromDir: string, builtIns: BuiltInPolicies): Located {
  const packages = builtIns.packages;
  const builtIn = Object.hasOwn(packages, name) ? packages[name] : Object.values(packages).includes(name) ? name : undefined;
  if (builtIn !== undefined) {
    try {
      return { name, packageName: builtIn, file: createRequire(builtIns.resolveFrom).resolve(builtIn), builtIn: true };
    } catch (error) {
      throw new TaskflowError(
        Code.NOT_FOUND,
        `policy "${name}": the built-in package ${builtIn} is missing from this installation of Taskflow. ` +
          `Reinstall Taskflow (npm install) so its dependencies are complete`,
        { reason: Reason.POLICY_NOT_FOUND, cause: error },
      );
    }
  }
  const isPath = name.startsWith(".") || path.isAbsolute(name);
  const packageName = isPath ? path.resolve(fromDir, name) : packageNameOf(name);
  const require = createRequire(path.join(fromDir, "noop.js"));
  let file: string | undefined;
  let failure: unknown;
  try {
    file = require.resolve(name);
  } catch (error) {
    failure = error;
    // An ESM-only package ("exports" with an "import" condition only) is invisible to
    // require.resolve: Node's ESM resolver finds it.
    if (errorCode(error) === "ERR_PACKAGE_PATH_NOT_EXPORTED") file = resolveAsImport(name, fromDir);
  }
  if (file !== undefined) return { name, packageName, file, builtIn: false };
  if (errorCode(failure) === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `policy "${name}": package ${packageName} is installed but exports no entry point for "${name}". ` +
        `A policy package must export "." (for example "exports": { ".": "./index.js" })`,
      { reason: Reason.POLICY_INVALID, cause: failure },
    );
  }
  throw notFound(name, packageName, isPath, fromDir, require, failure, Object.keys(builtIns.packages));
}

function notFound(
  name: string,
  packageName: string,
  isPath: boolean,
  fromDir: string,
  require: NodeJS.Require,
  cause: unknown,
  builtIns: readonly string[],
): TaskflowError {
  if (isPath) {
    return new TaskflowError(
      Code.NOT_FOUND,
      `policy "${name}": no file ${packageName} (resolved from ${fromDir}). ` +
        `Fix the path in scheduler.policy; relative paths start from the config file's folder`,
      { reason: Reason.POLICY_NOT_FOUND, cause },
    );
  }
  // Only the node_modules folders of fromDir and its parents: the global folders Node also
  // searches are no place to install a policy.
  const looked = (require.resolve.paths(name) ?? []).filter((dir) => path.basename(dir) === "node_modules" && fromDir.startsWith(path.dirname(dir)));
  const where = looked.length > 3 ? `${looked.slice(0, 3).join(", ")}, …` : looked.join(", ");
  const normalized = name.toLowerCase().replace(/[_\s]+/g, "-").replace(/^(@taskflow\/)?(taskflow-)?policy-/, "");
  const fix = builtIns.includes(normalized)
    ? `Did you mean the built-in "${normalized}"? Write "${normalized}" in scheduler.policy`
    : `Fix: run "npm install ${packageName}" in ${fromDir}` + (builtIns.length ? `, or use a built-in policy: ${builtIns.join(", ")}` : "");
  return new TaskflowError(
    Code.NOT_FOUND,
    `policy "${name}": package ${packageName} is not installed where the config is ` +
      `(looked from ${fromDir} in ${where || "no node_modules folders"}). ${fix}`,
    { reason: Reason.POLICY_NOT_FOUND, cause },
  );
}

async function importModule(located: Located): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(located.file).href)) as Record<string, unknown>;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const missing = errorCode(error) === "ERR_MODULE_NOT_FOUND" || errorCode(error) === "MODULE_NOT_FOUND";
    const hint = missing
      ? `A module it imports is missing; install the policy's dependencies and peer dependencies (such as @taskflow/core) next to it`
      : `Check that ${located.packageName} is a policy package built for Node ${process.versions.node}`;
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `policy "${located.name}": ${located.packageName} (${located.file}) failed to load: ${message}. ${hint}`,
      { reason: Reason.POLICY_INVALID, cause: error },
    );
  }
}

/** The default export, a named `policy` export, or the same inside a CommonJS `module.exports`. */
function pickDefinition(namespace: Record<string, unknown>, located: Located): PolicyDefinition {
  const inner = namespace["default"] as Record<string, unknown> | undefined;
  const candidates = [namespace["default"], namespace["policy"]];
  if (typeof inner === "object" && inner !== null) candidates.push(inner["default"], inner["policy"]);
  const found = candidates.find(isPolicyDefinition);
  if (found) return found;
  const fn = candidates.find((c) => typeof c === "function") !== undefined;
  throw new TaskflowError(
    Code.INVALID_ARGUMENT,
    `policy "${located.name}": ${located.packageName} (${located.file}) does not export a policy; it exports ${describeExports(namespace)}. ` +
      `A policy package's default export (or an export named "policy") must be the result of definePolicy() from @taskflow/core` +
      (fn ? `, not a function that returns it` : ""),
    { reason: Reason.POLICY_INVALID },
  );
}

function checkCoreVersion(definition: PolicyDefinition, located: Located): void {
  const range = definition.coreVersions;
  const version = versionOf(located);
  const label = version === undefined ? located.packageName : `${located.packageName}@${version}`;
  if (semver.validRange(range) === null) {
    throw new TaskflowError(
      Code.FAILED_PRECONDITION,
      `policy "${located.name}": ${label} declares coreVersions "${range}", which is not a semver range. ` +
        `Its author should set coreVersions to a range such as "^${CORE_VERSION}"`,
      { reason: Reason.POLICY_VERSION },
    );
  }
  if (!semver.satisfies(CORE_VERSION, range, { includePrerelease: true })) {
    throw new TaskflowError(
      Code.FAILED_PRECONDITION,
      `policy "${located.name}": ${label} supports @taskflow/core ${range}, but this is @taskflow/core ${CORE_VERSION}. ` +
        `Fix: install a version of ${located.packageName} made for @taskflow/core ${CORE_VERSION}` +
        (located.builtIn ? "" : ` (npm install ${located.packageName}@latest)`) +
        `, or use a Taskflow version in ${range}`,
      { reason: Reason.POLICY_VERSION },
    );
  }
}

/** A policy written for a contract version this core does not speak (a newer one) does not load. */
function checkContract(definition: PolicyDefinition, located: Located): void {
  const problem = contractProblem(definition);
  if (problem === undefined) return;
  throw new TaskflowError(Code.FAILED_PRECONDITION, `policy "${located.name}": ${located.packageName}: ${problem}`, {
    reason: Reason.POLICY_VERSION,
  });
}

function checkOptions(definition: PolicyDefinition, options: unknown, located: Located): void {
  try {
    definition.parseOptions(options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const own = `policy "${definition.name}": `;
    const detail = message.startsWith(own) ? message.slice(own.length) : message;
    throw new TaskflowError(
      Code.INVALID_ARGUMENT,
      `scheduler.policyOptions for policy "${located.name}": ${detail}`,
      { reason: Reason.POLICY_OPTIONS, cause: error },
    );
  }
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageNameOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Where `import(specifier)` from a module in `fromDir` would load from; undefined when it cannot. */
function resolveAsImport(specifier: string, fromDir: string): string | undefined {
  try {
    const url = esmResolve(specifier, pathToFileURL(path.join(fromDir, "noop.js")).href);
    return url.startsWith("file:") ? fileURLToPath(url) : undefined;
  } catch {
    return undefined;
  }
}

/** The version of the package the file belongs to, for messages; undefined for a plain file. */
function versionOf(located: Located): string | undefined {
  if (path.isAbsolute(located.packageName)) return undefined;
  let dir = path.dirname(located.file);
  for (;;) {
    const manifestPath = path.join(dir, "package.json");
    if (existsSync(manifestPath)) {
      try {
        const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { name?: unknown; version?: unknown };
        if (manifest.name === located.packageName) return typeof manifest.version === "string" ? manifest.version : undefined;
      } catch {
        return undefined;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function describeExports(namespace: Record<string, unknown>): string {
  const keys = Object.keys(namespace);
  if (keys.length === 0) return "nothing";
  return keys
    .map((key) => {
      const value = namespace[key];
      if (typeof value === "function") return `${key} (function)`;
      if (typeof value === "object" && value !== null) {
        const inner = Object.keys(value).slice(0, 5);
        return `${key} (object with ${inner.length ? `keys ${inner.join(", ")}` : "no keys"})`;
      }
      return `${key} (${typeof value} ${JSON.stringify(value)})`;
    })
    .join(", ");
}
