/**
 * Read-only copies for the views handed to policies: a policy that writes to what it is shown
 * must not change the node (issue 14: `worker.taskTypes.delete` once stopped a node serving a
 * type). Frozen plain objects for maps, and a Set-like with no mutators for sets.
 */

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/** A frozen copy of a string map; the same frozen empty object when it has no keys. */
export function frozenRecord(source: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
  if (source === undefined) return EMPTY;
  if (Object.isFrozen(source)) return source;
  for (const _ in source) return Object.freeze({ ...source });
  return EMPTY;
}

/**
 * A read-only set: `has`, `size` and iteration like a `Set`, but no `add`, `delete` or `clear`
 * (calling them is a TypeError, in strict mode or not), and its contents live in a private field
 * no policy can reach. `instanceof Set` is false on purpose.
 */
class ReadonlyStringSet implements ReadonlySet<string> {
  readonly #values: Set<string>;
  constructor(values: Iterable<string>) {
    this.#values = new Set(values);
    Object.freeze(this);
  }
  get size(): number {
    return this.#values.size;
  }
  has(value: string): boolean {
    return this.#values.has(value);
  }
  forEach(callback: (value: string, value2: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const v of this.#values) callback.call(thisArg, v, v, this);
  }
  entries(): SetIterator<[string, string]> {
    return this.#values.entries();
  }
  keys(): SetIterator<string> {
    return this.#values.keys();
  }
  values(): SetIterator<string> {
    return this.#values.values();
  }
  [Symbol.iterator](): SetIterator<string> {
    return this.#values.values();
  }
  get [Symbol.toStringTag](): string {
    return "ReadonlySet";
  }
  toJSON(): string[] {
    return [...this.#values];
  }
}
Object.freeze(ReadonlyStringSet.prototype);

/** A read-only copy of a set of strings (see {@link ReadonlyStringSet}); an existing one is returned as is. */
export function readonlySet(values: Iterable<string>): ReadonlySet<string> {
  return values instanceof ReadonlyStringSet ? values : new ReadonlyStringSet(values);
}

/** True for a set made by {@link readonlySet}. */
export function isReadonlySet(value: unknown): value is ReadonlySet<string> {
  return value instanceof ReadonlyStringSet;
}
