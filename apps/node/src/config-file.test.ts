import "reflect-metadata";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { Code, TaskflowError, configSchema, parseConfig, type TaskStore } from "@taskflow/core";
import { makeTaskRecord } from "@taskflow/core/testing";
import { create } from "@bufbuild/protobuf";
import { TaskSchema, TaskState, timestampFromMs } from "@taskflow/proto";
import { MAX_HEAP_CAPACITY } from "@taskflow/shm-heap";
import { taskHeapCapacityOf } from "@taskflow/services";
import { EXIT, MAX_PRINTED_JSON_DEPTH, bytesAsJson, exitCodeFor } from "./cli/output.js";
import { taskText } from "./cli/task-view.js";
import { loadConfigFile } from "./config-file.js";
import { createStore } from "./control.js";
import { postgresOpenError } from "./postgres-config.js";
import { loadHandlers } from "./handlers.js";
import { prettyLine } from "./logger.js";
import { heapCreateError } from "./startup-errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "taskflow-node-unit-"));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("loadConfigFile", () => {
  it("applies defaults and resolves relative to the file's folder", () => {
    const loaded = loadConfigFile(file("ok.json", JSON.stringify({ worker: { processes: 3 } })));
    assert.equal(loaded.config.worker.processes, 3);
    assert.equal(loaded.config.control.port, 50051);
    assert.equal(loaded.baseDir, dir);
  });

  it("names the key and the fix for a bad value", () => {
    assert.throws(
      () => loadConfigFile(file("bad.json", JSON.stringify({ liveness: { heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 500 } }))),
      (err: TaskflowError) => err.reason === "TASKFLOW_ERR_CONFIG" && /liveness\.heartbeatTimeoutMs \(500\) must be larger/.test(err.message),
    );
  });

  it("refuses a default timeout longer than a timer can hold, with the largest it takes", () => {
    assert.throws(
      () => loadConfigFile(file("timeout.json", JSON.stringify({ control: { defaultTimeoutMs: 2_147_483_647 } }))),
      (err: TaskflowError) => err.reason === "TASKFLOW_ERR_CONFIG" && /control\.defaultTimeoutMs: .*fix: use a timeout in ms from 0 \(none\) to 2000000000/.test(err.message),
    );
    assert.equal(loadConfigFile(file("timeout-max.json", JSON.stringify({ control: { defaultTimeoutMs: 2_000_000_000 } }))).config.control.defaultTimeoutMs, 2_000_000_000);
  });

  it("says when the file is missing or not JSON", () => {
    assert.throws(() => loadConfigFile(path.join(dir, "missing.json")), /it does not exist/);
    assert.throws(() => loadConfigFile(file("broken.json", "{")), /is not valid JSON/);
  });
});

describe("loadHandlers", () => {
  it("loads the built-in examples when no module is named", async () => {
    const handlers = await loadHandlers(undefined);
    assert.deepEqual(Object.keys(handlers).sort(), ["cpu", "echo", "fail", "noop", "sleep"]);
    assert.deepEqual(await handlers["echo"]!({ x: 1 }, {} as never), { x: 1 });
  });

  it("rejects modules without handlers, with the fix", async () => {
    await assert.rejects(loadHandlers(file("none.mjs", "export const x = 1;")), /exports no handlers/);
    await assert.rejects(loadHandlers(file("notfn.mjs", "export default { a: 1 };")), /a is not a function/);
    await assert.rejects(loadHandlers(path.join(dir, "nope.mjs")), /cannot load worker\.handlers module/);
    const ok = await loadHandlers(file("mine.mjs", "export default { hi: (p) => 'hi ' + p };"));
    assert.equal(await ok["hi"]!("you", {} as never), "hi you");
  });
});

describe("the example handlers", () => {
  const signal = () => ({ signal: new AbortController().signal }) as never;

  it("fail a sleep or cpu task whose ms is not a whole number of ms, naming the field", async () => {
    const handlers = await loadHandlers(undefined);
    for (const type of ["sleep", "cpu"]) {
      for (const ms of ["abc", -5, 1.5, "100", 2 ** 31, [1], true]) {
        assert.throws(
          () => handlers[type]!({ ms }, signal()),
          (err: TaskflowError) => err.code === Code.INVALID_ARGUMENT && new RegExp(`^${type}: payload\\.ms must be a whole number of milliseconds from 0 to 2147483647, got `).test(err.message),
          `${type} {"ms": ${JSON.stringify(ms)}}`,
        );
      }
      for (const payload of ["abc", 5, [1, 2]]) {
        assert.throws(() => handlers[type]!(payload, signal()), /the payload must be a JSON object such as \{"ms": …\} or empty/, `${type} ${JSON.stringify(payload)}`);
      }
    }
  });

  it("sleep for the ms given, or the default when there is none", async () => {
    const handlers = await loadHandlers(undefined);
    assert.deepEqual(await handlers["sleep"]!({ ms: 0 }, signal()), { slept: 0 });
    assert.deepEqual(await handlers["sleep"]!({ ms: 20, other: "keys are fine" }, signal()), { slept: 20 });
    const aborted = AbortSignal.abort(new Error("stopped"));
    await assert.rejects(Promise.resolve(handlers["sleep"]!(null, { signal: aborted } as never)), /stopped/);
    assert.ok(((handlers["cpu"]!({ ms: 5 }, signal())) as { turns: number }).turns > 0);
  });

  it("fail with the message asked for, and refuse a message that is not a string", async () => {
    const handlers = await loadHandlers(undefined);
    assert.throws(() => handlers["fail"]!({ message: "nope" }, signal()), /^Error: nope$/);
    assert.throws(() => handlers["fail"]!(undefined, signal()), /this task always fails/);
    assert.throws(
      () => handlers["fail"]!({ message: 5 }, signal()),
      (err: TaskflowError) => err.code === Code.INVALID_ARGUMENT && err.message === "fail: payload.message must be a string, got 5",
    );
  });
});

describe("exitCodeFor", () => {
  it("maps status codes to the documented exit codes", () => {
    assert.equal(exitCodeFor(new TaskflowError(Code.INVALID_ARGUMENT, "x")), EXIT.USAGE);
    assert.equal(exitCodeFor(new TaskflowError(Code.NOT_FOUND, "x")), EXIT.NOT_FOUND);
    assert.equal(exitCodeFor(new TaskflowError(Code.UNAVAILABLE, "x")), EXIT.UNAVAILABLE);
    assert.equal(exitCodeFor(new TaskflowError(Code.ABORTED, "x", { reason: "TASKFLOW_ERR_TASK_FAILED" })), EXIT.TASK_FAILED);
    assert.equal(exitCodeFor(new Error("boom")), EXIT.ERROR);
  });
});

describe("prettyLine", () => {
  it("turns a pino JSON line into a short readable one", () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 12, 34, 56, 789), pid: 1, msg: "worker is dead", workerId: "w1", tasks: 3 });
    assert.equal(prettyLine(line), "12:34:56.789 WARN  worker is dead  workerId=w1 tasks=3\n");
    assert.equal(prettyLine("not json\n"), "not json\n");
  });
});

describe("control.maxReceiveMessageBytes", () => {
  it("defaults to 8 MiB, or to the largest payload plus its overhead when that is more", () => {
    assert.equal(parseConfig({}).control.maxReceiveMessageBytes, 8 * 1024 * 1024);
    assert.equal(parseConfig({ control: { maxPayloadBytes: 16 * 1024 * 1024 } }).control.maxReceiveMessageBytes, 16 * 1024 * 1024 + 65536);
    assert.equal(parseConfig({ control: { maxReceiveMessageBytes: 5 * 1024 * 1024 } }).control.maxReceiveMessageBytes, 5 * 1024 * 1024);
  });

  it("refuses a limit a task with the largest payload would not fit in, with the fix", () => {
    assert.throws(
      () => parseConfig({ control: { maxPayloadBytes: 4 * 1024 * 1024, maxReceiveMessageBytes: 4 * 1024 * 1024 } }),
      /control\.maxReceiveMessageBytes \(4194304\) must be at least control\.maxPayloadBytes \(4194304\) \+ 65536.*fix: /,
    );
  });

  it("still suggests a close key inside control", () => {
    assert.throws(() => parseConfig({ control: { maxRecieveMessageBytes: 1 } }), /did you mean "maxReceiveMessageBytes"/);
  });
});

describe("control.taskHeapCapacity and control.workerHeapCapacity", () => {
  it("take the heap's real range: up to 2^24 records, what its handles address", () => {
    assert.equal(MAX_HEAP_CAPACITY, 2 ** 24);
    for (const key of ["taskHeapCapacity", "workerHeapCapacity"] as const) {
      assert.equal(parseConfig({ control: { [key]: MAX_HEAP_CAPACITY } }).control[key], MAX_HEAP_CAPACITY);
      assert.throws(
        () => parseConfig({ control: { [key]: MAX_HEAP_CAPACITY + 1 } }),
        (err: TaskflowError) =>
          err.reason === "TASKFLOW_ERR_CONFIG" && err.message.includes(`control.${key}:`) && err.message.includes("from 1 to 16777216"),
      );
    }
  });

  it("default to a task capacity sized from memory and 131072 workers", () => {
    const { control } = parseConfig({});
    assert.equal(control.taskHeapCapacity, "auto");
    assert.equal(control.workerHeapCapacity, 131072);
  });

  it('"auto" gives one task per KiB of the resident-memory budget, in steps of 65536, within the heap\'s range', () => {
    const GiB = 1024 ** 3;
    const auto = parseConfig({});
    assert.equal(taskHeapCapacityOf(auto, { systemLimit: 4 * GiB }), 51 * 65_536, "0.8 of 4 GiB is 3,355,443 KiB: 51 steps of 65536");
    assert.equal(taskHeapCapacityOf(auto, { systemLimit: 24 * GiB }), MAX_HEAP_CAPACITY, "capped at 2^24 on a big host");
    assert.equal(taskHeapCapacityOf(auto, { systemLimit: 32 * 1024 ** 2 }), 65_536, "never below 65536");
    const budgeted = parseConfig({ control: { memoryBudget: { rssBytes: 2 * GiB } } });
    assert.equal(taskHeapCapacityOf(budgeted, { systemLimit: 24 * GiB }), 2 * 1024 * 1024, "rssBytes, when set, is the budget");
    assert.equal(taskHeapCapacityOf(parseConfig({ control: { taskHeapCapacity: 1000 } }), { systemLimit: 24 * GiB }), 1000, "a number is kept");
    assert.throws(() => parseConfig({ control: { taskHeapCapacity: "big" } }), (err: TaskflowError) => err.message.includes("control.taskHeapCapacity:") && err.message.includes('"auto"'));
  });

  it("a heap the host cannot allocate is a config error naming the key, its size and the fix", () => {
    const err = heapCreateError(new RangeError("Array buffer allocation failed"), "control.taskHeapCapacity", MAX_HEAP_CAPACITY, "sab");
    assert.equal(err.code, Code.FAILED_PRECONDITION);
    assert.equal(err.reason, "TASKFLOW_ERR_CONFIG");
    assert.equal(
      err.message,
      'control.taskHeapCapacity: cannot allocate a heap of 16777216 records (739 MB, control.heapBacking "sab"): Array buffer allocation failed; fix: lower control.taskHeapCapacity, or give this node more memory',
    );
  });
});

describe("the README's config reference", () => {
  /** Every leaf key of the schema, walked through defaults and optionals (records are leaves). */
  function keys(schema: unknown, prefix = ""): string[] {
    let s = schema as { _zod: { def: { type: string; innerType?: unknown; in?: unknown; shape?: Record<string, unknown> } } };
    while (["default", "prefault", "optional", "pipe"].includes(s._zod.def.type)) s = (s._zod.def.type === "pipe" ? s._zod.def.in : s._zod.def.innerType) as typeof s;
    const shape = s._zod.def.type === "object" ? s._zod.def.shape : undefined;
    if (!shape) return [prefix];
    return Object.entries(shape).flatMap(([k, v]) => keys(v, prefix ? `${prefix}.${k}` : k));
  }

  it("documents every config key", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    const all = keys(configSchema);
    assert.ok(all.length > 30, `walked the schema: ${all.length} keys`);
    const missing = all.filter((k) => !readme.includes(`| \`${k}\` |`));
    assert.deepEqual(missing, [], "keys without a row in README's config reference");
  });
});

describe("createStore", () => {
  it("passes the store options on: the memory store's cap", async () => {
    const { tasks: store } = await createStore(parseConfig({ store: { kind: "memory", maxFinishedTasks: 2 } }), dir);
    const now = Date.now();
    await store.insert([1, 2, 3, 4].map((seq) => makeTaskRecord({ seq, state: "succeeded", finishedAt: now })));
    await store.purgeFinished(0);
    assert.equal((await store.list({})).totalSize, 2, "kept the 2 newest finished tasks");
  });

  it("passes the store options on: SQLite's group commit delay", async () => {
    const config = parseConfig({ store: { kind: "sqlite", path: "db/tasks.db", groupCommitMaxDelayMs: 200 } });
    const store = (await createStore(config, dir)).tasks as unknown as TaskStore & { stats(): { commits: number } };
    await store.open();
    try {
      // Two writes in different ticks, well within the delay: one transaction.
      const first = store.insert([makeTaskRecord({ seq: 1 })]);
      await new Promise((r) => setImmediate(r));
      await Promise.all([first, store.insert([makeTaskRecord({ seq: 2 })])]);
      assert.equal(store.stats().commits, 1);
    } finally {
      await store.close();
    }
  });

  it("finds each store's schedules: the memory store keeps them itself, SQLite in its schedules part", async () => {
    const memory = await createStore(parseConfig({ store: { kind: "memory" } }), dir);
    assert.equal(memory.schedules, memory.tasks);
    const sqlite = await createStore(parseConfig({ store: { kind: "sqlite", path: "db/schedules-of.db" } }), dir);
    await sqlite.tasks.open();
    try {
      assert.notEqual(sqlite.schedules, sqlite.tasks);
      assert.deepEqual(await sqlite.schedules.loadSchedules(), []);
    } finally {
      await sqlite.tasks.close();
    }
  });
});

describe("taskText", () => {
  it("shows when a task was created, started and finished", () => {
    const at = timestampFromMs;
    const text = taskText(
      create(TaskSchema, { id: "t1", spec: { type: "sleep" }, state: TaskState.SUCCEEDED, attempt: 1, epoch: 1n, createdAt: at(1_000), startedAt: at(2_500), finishedAt: at(4_000) }),
    );
    assert.match(text, /^created: {3}1970-01-01T00:00:01\.000Z$/m);
    assert.match(text, /^started: {3}1970-01-01T00:00:02\.500Z$/m);
    assert.match(text, /^finished: {2}1970-01-01T00:00:04\.000Z$/m);
  });
});

describe("bytesAsJson", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

  it("gives JSON nested up to the limit as a value, deeper JSON as its text", () => {
    assert.deepEqual(JSON.stringify(bytesAsJson(bytes(nested(MAX_PRINTED_JSON_DEPTH)))), nested(MAX_PRINTED_JSON_DEPTH));
    assert.equal(bytesAsJson(bytes(nested(MAX_PRINTED_JSON_DEPTH + 1))), nested(MAX_PRINTED_JSON_DEPTH + 1));
    assert.equal(bytesAsJson(bytes(`{"a":${nested(100_000)}}`)), `{"a":${nested(100_000)}}`);
  });

  it("does not count brackets inside strings, escaped quotes included", () => {
    const text = JSON.stringify({ s: `\\" ${"[".repeat(1000)}`, t: ["{{{", "\\"] });
    assert.deepEqual(bytesAsJson(bytes(text)), JSON.parse(text));
  });

  it("gives text that is not JSON as it is, and no bytes as null", () => {
    assert.equal(bytesAsJson(bytes("not json [")), "not json [");
    assert.equal(bytesAsJson(new Uint8Array(0)), null);
  });
});

describe("store.kind postgres", () => {
  it("needs store.url, and says so with the fix", () => {
    assert.throws(() => parseConfig({ store: { kind: "postgres" } }), /store\.url: required with store\.kind "postgres"; fix: use a URL such as "postgres:\/\//);
  });

  it("refuses a url that is not a postgres:// URL, naming the key", () => {
    assert.throws(() => parseConfig({ store: { kind: "postgres", url: "mysql://db/x" } }), /store\.url: must be a postgres:\/\/user@host:port\/database URL; fix: /);
  });

  it("refuses TLS parameters in the url beside store.ssl, and half a client certificate", () => {
    assert.throws(
      () => parseConfig({ store: { kind: "postgres", url: "postgres://u@h/db?sslmode=require", ssl: { ca: "ca.pem" } } }),
      /store\.url: has TLS parameters .* fix: remove them from store\.url and keep store\.ssl/,
    );
    assert.throws(() => parseConfig({ store: { kind: "postgres", url: "postgres://u@h/db", ssl: { cert: "c.pem" } } }), /store\.ssl\.key: required with store\.ssl\.cert/);
  });

  it("applies the defaults", () => {
    const { store } = parseConfig({ store: { kind: "postgres", url: "postgres://u@h/db", ssl: {} } });
    assert.equal(store.poolSize, 8);
    assert.equal(store.schema, "taskflow");
    assert.equal(store.ssl?.rejectUnauthorized, true);
  });

  it("names store.ssl.ca when its file cannot be read", async () => {
    const config = parseConfig({ store: { kind: "postgres", url: "postgres://u@127.0.0.1:1/db", ssl: { ca: "no-such-ca.pem" } } });
    await assert.rejects(createStore(config, dir), (err: unknown) => {
      assert.ok(TaskflowError.is(err));
      assert.equal(err.code, Code.FAILED_PRECONDITION);
      assert.match(err.message, /^store\.ssl\.ca: cannot read .*no-such-ca\.pem: no such file or folder.*; fix: give the path of a readable PEM file/);
      return true;
    });
  });

  it("says which key to fix when no server answers, without the password", async () => {
    const config = parseConfig({ store: { kind: "postgres", url: "postgres://taskflow:secret@127.0.0.1:1/db" } });
    const { tasks: store } = await createStore(config, dir);
    assert.equal(store.kind, "postgres");
    const err = await store.open().then(
      () => assert.fail("opened a store on port 1"),
      (e: unknown) => postgresOpenError(e, config.store.url!),
    );
    assert.equal(err.code, Code.FAILED_PRECONDITION);
    assert.match(err.message, /^store\.url: cannot open the Postgres store at postgres:\/\/taskflow:\*\*\*@127\.0\.0\.1:1\/db: .*ECONNREFUSED.*; fix: start the server or correct the host and port/);
    assert.doesNotMatch(err.message, /secret/);
  });
});
