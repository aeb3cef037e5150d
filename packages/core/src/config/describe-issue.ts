/** Config errors in words: the key, the problem and the fix, or the key meant for a misspelt one. */
import type { z } from "zod";
import { hints } from "./hints.js";

/** One schema issue as `<key>: <problem>; fix: <hint>`, or for an unknown key the closest known one. */
export function describeIssue(issue: z.core.$ZodIssue, root: z.ZodType): string {
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    return issue.keys
      .map((key) => {
        const full = path ? `${path}.${key}` : key;
        const known = knownKeys(root, issue.path);
        const guess = closest(key, known);
        const fix = guess ? `did you mean "${guess}"?` : `remove it; known keys here: ${known.join(", ")}`;
        return `unknown key "${full}": ${fix}`;
      })
      .join("\n  - ");
  }
  const where = path || "(top level)";
  // A list's items share their hints: `limits.3.rate` takes that of `limits.*.rate`.
  const hint = hints[path] ?? hints[tenantHintPath(issue.path)] ?? hints[path.replace(/\.\d+(?=\.|$)/g, ".*")];
  return `${where}: ${issue.message}${hint ? `; fix: ${hint}` : ""}`;
}

/** A tenant's name is a key of its own: `tenants.quotas.acme.burst` takes the hint of `tenants.quotas.*.burst`, a bad name that of `tenants.quotas`. */
function tenantHintPath(path: readonly PropertyKey[]): string {
  if (path[0] !== "tenants" || path[1] !== "quotas" || path.length < 3) return "";
  return path.length === 3 ? "tenants.quotas" : `tenants.quotas.*.${String(path[3])}`;
}

function knownKeys(root: z.ZodType, path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = root;
  for (const part of path) {
    // A record (tenants.quotas): every key holds the same kind of object.
    const values = recordValues(schema) ?? arrayItems(schema);
    if (values) {
      schema = values;
      continue;
    }
    const shape = objectShape(schema);
    if (!shape) return [];
    schema = shape[String(part)] as z.ZodType;
  }
  return Object.keys(objectShape(schema) ?? {});
}

function recordValues(schema: z.ZodType): z.ZodType | undefined {
  let current: unknown = schema;
  for (let i = 0; i < 5 && current; i++) {
    const def = (current as { _zod?: { def?: { type?: string; valueType?: unknown; innerType?: unknown } } })._zod?.def;
    if (def?.type === "record") return def.valueType as z.ZodType;
    current = def?.innerType;
  }
  return undefined;
}

function arrayItems(schema: z.ZodType): z.ZodType | undefined {
  let current: unknown = schema;
  for (let i = 0; i < 5 && current; i++) {
    const def = (current as { _zod?: { def?: { type?: string; element?: unknown; innerType?: unknown } } })._zod?.def;
    if (def?.type === "array") return def.element as z.ZodType;
    current = def?.innerType;
  }
  return undefined;
}

function objectShape(schema: z.ZodType): Record<string, unknown> | undefined {
  let current: unknown = schema;
  // Look through default/prefault/optional wrappers to the object inside.
  for (let i = 0; i < 5 && current; i++) {
    const def = (current as { _zod?: { def?: { shape?: Record<string, unknown>; innerType?: unknown; in?: unknown } } })._zod?.def;
    if (def?.shape) return def.shape;
    // A transform (control's derived defaults) is a pipe: its keys are those of its input.
    current = def?.innerType ?? def?.in;
  }
  return undefined;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

