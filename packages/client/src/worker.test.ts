import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { WorkerService, type Heartbeat, type Hello, type SessionRequest } from "@taskflow/proto";
import { addService } from "@taskflow/proto/grpc";
import { jsonCodec } from "./codec.js";
import { TaskflowWorker } from "./worker.js";
import { UnrecoverableError } from "./errors.js";
import type { HeldResult } from "./worker-options.js";

/** One worker session as the control node saw it. */
interface Session {
  hello: Hello;
  heartbeats: Heartbeat[];
  ended: boolean;
  call: grpc.ServerDuplexStream<SessionRequest, unknown>;
}

/**
 * A control node played by the test: it welcomes, assigns what the test says, records every
 * heartbeat, and confirms stored results (or breaks the session) only when told to.
 */
class ScriptedControl {
  readonly server = new grpc.Server();
  readonly sessions: Session[] = [];
  address = "";
  /** False plays a control node older than ResultsStored: its welcome does not offer it. */
  storesResults = true;

  async start(): Promise<void> {
    addService(this.server, WorkerService, {
      session: (call: grpc.ServerDuplexStream<SessionRequest, unknown>) => {
        let session: Session | undefined;
        call.on("data", (msg: SessionRequest) => {
          if (msg.kind.case === "hello") {
            session = { hello: msg.kind.value, heartbeats: [], ended: false, call };
            this.sessions.push(session);
            call.write({ kind: { case: "welcome", value: { workerId: msg.kind.value.workerId, heartbeatIntervalMs: 50, storesResults: this.storesResults } } });
          } else if (msg.kind.case === "heartbeat") {
            session!.heartbeats.push(msg.kind.value);
          }
        });
        call.on("end", () => {
          if (session) session.ended = true;
          call.end();
        });
        call.on("error", () => {});
      },
    } as never);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  get last(): Session {
    return this.sessions.at(-1)!;
  }

  assign(session: Session, taskId: string, payload: unknown, { epoch = 1n, type = "echo", timeoutMs = 0 } = {}): void {
    session.call.write({
      kind: { case: "assign", value: { assignments: [{ taskId, epoch, type, payload: jsonCodec.encode(payload), attempt: 1, timeoutMs }] } },
    });
  }

  stored(session: Session, seqs: bigint[]): void {
    session.call.write({ kind: { case: "stored", value: { seqs } } });
  }

  /** Ends the session with UNAVAILABLE, as a control node that went away would. */
  breakSession(session: Session): void {
    session.call.emit("error", { code: grpc.status.UNAVAILABLE, details: "control node went away" });
  }

  /** Heartbeats of `session` that carried results, as [seq, task IDs]. */
  static withResults(session: Session): [bigint, string[]][] {
    return session.heartbeats.filter((h) => h.results.length).map((h) => [h.seq, h.results.map((r) => r.taskId)]);
  }
}

async function until<T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("TaskflowWorker", () => {
  const control = new ScriptedControl();
  before(() => control.start());
  after(() => control.server.forceShutdown());

  const newWorker = (workerId: string, extra: Partial<ConstructorParameters<typeof TaskflowWorker>[0]> = {}) =>
    new TaskflowWorker({ address: control.address, workerId, handlers: { echo: (p: unknown) => p }, maxReconnectDelayMs: 50, ...extra });

  describe("held results", () => {
    it("numbers heartbeats with results 1, 2, 3 per session, 0 without, and resends unconfirmed ones after a break", async () => {
      const worker = newWorker("held-1");
      await worker.start();
      try {
        const first = control.last;
        control.assign(first, "a", "A");
        await until(() => (ScriptedControl.withResults(first).length === 1 ? true : undefined), "a's result");
        control.assign(first, "b", "B");
        await until(() => (ScriptedControl.withResults(first).length === 2 ? true : undefined), "b's result");
        assert.deepEqual(ScriptedControl.withResults(first), [[1n, ["a"]], [2n, ["b"]]]);
        await until(() => (first.heartbeats.some((h) => h.results.length === 0 && h.seq === 0n) ? true : undefined), "a periodic heartbeat");
        assert.ok(first.heartbeats.filter((h) => h.results.length === 0).every((h) => h.seq === 0n), "a heartbeat without results has seq 0");
        assert.equal(worker.held, 2);
        // Only b's heartbeat is confirmed; then the control node goes away.
        control.stored(first, [2n]);
        await until(() => (worker.held === 1 ? true : undefined), "b forgotten");
        control.breakSession(first);
        const second = await until(() => (control.sessions.length === 2 ? control.last : undefined), "a new session");
        assert.deepEqual(second.hello.running.map((r) => [r.taskId, r.epoch]), [["a", 1n]], "hello lists the unconfirmed result");
        await until(() => (ScriptedControl.withResults(second).length === 1 ? true : undefined), "a's result again");
        assert.deepEqual(ScriptedControl.withResults(second), [[1n, ["a"]]], "numbering starts again in the new session");
        const resent = second.heartbeats.find((h) => h.results.length)!.results[0]!;
        assert.deepEqual(jsonCodec.decode(resent.result), "A");
        assert.equal(resent.ok, true);
        control.assign(second, "c", "C");
        await until(() => (ScriptedControl.withResults(second).length === 2 ? true : undefined), "c's result");
        // Confirmations may come out of order and several at once.
        control.stored(second, [2n, 1n]);
        await until(() => (worker.held === 0 ? true : undefined), "everything confirmed");
      } finally {
        await worker.stop(1000);
      }
    });

    it("forgets results once sent to a control node whose welcome does not offer ResultsStored", async () => {
      control.storesResults = false;
      const worker = newWorker("old-control");
      try {
        await worker.start();
        const session = control.last;
        control.assign(session, "o", "O");
        await until(() => (ScriptedControl.withResults(session).length === 1 ? true : undefined), "o's result");
        assert.deepEqual(ScriptedControl.withResults(session), [[0n, ["o"]]], "no seq: nothing to confirm");
        assert.equal(worker.held, 0, "nothing waits for a confirmation that never comes");
      } finally {
        control.storesResults = true;
        await worker.stop(1000);
      }
    });

    it("fails the attempt of a handler whose result cannot be encoded, sync or async, and keeps running", async () => {
      const worker = newWorker("unencodable", { handlers: { big: () => 1n, bigLater: async () => 2n, echo: (p: unknown) => p } });
      await worker.start();
      try {
        const session = control.last;
        control.assign(session, "s", null, { type: "big" });
        control.assign(session, "a", null, { type: "bigLater" });
        control.assign(session, "ok", "fine");
        const results = await until(() => {
          const all = session.heartbeats.flatMap((h) => h.results);
          return all.length === 3 ? all : undefined;
        }, "three results");
        const byId = new Map(results.map((r) => [r.taskId, r]));
        for (const id of ["s", "a"]) {
          assert.equal(byId.get(id)!.ok, false);
          assert.match(byId.get(id)!.error, /result cannot be encoded: .*BigInt/);
        }
        assert.equal(byId.get("ok")!.ok, true);
      } finally {
        await worker.stop(1000);
      }
    });

    it("marks the result of a handler that threw UnrecoverableError, sync or async, and only that one", async () => {
      const worker = newWorker("unrecoverable", {
        handlers: {
          now: () => {
            throw new UnrecoverableError("bad input");
          },
          later: async () => {
            throw new UnrecoverableError("bad input, later");
          },
          retry: async () => {
            throw new Error("try again");
          },
        },
      });
      await worker.start();
      try {
        const session = control.last;
        control.assign(session, "n", null, { type: "now" });
        control.assign(session, "l", null, { type: "later" });
        control.assign(session, "r", null, { type: "retry" });
        const results = await until(() => {
          const all = session.heartbeats.flatMap((h) => h.results);
          return all.length === 3 ? all : undefined;
        }, "three results");
        const byId = new Map(results.map((r) => [r.taskId, r]));
        assert.deepEqual([byId.get("n")!.unrecoverable, byId.get("n")!.error], [true, "bad input"]);
        assert.deepEqual([byId.get("l")!.unrecoverable, byId.get("l")!.error], [true, "bad input, later"]);
        assert.deepEqual([byId.get("r")!.unrecoverable, byId.get("r")!.error], [false, "try again"]);
        for (const r of results) assert.equal(r.ok, false);
      } finally {
        await worker.stop(1000);
      }
    });

    it("stop() waits for the confirmation of what it sent, and only then ends the session", async () => {
      const worker = newWorker("held-2");
      await worker.start();
      const session = control.last;
      control.assign(session, "x", 1);
      await until(() => (ScriptedControl.withResults(session).length === 1 ? true : undefined), "x's result");
      let stopped = false;
      const stopping = worker.stop(5000).then(() => (stopped = true));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(stopped, false, "stop() waits for the confirmation");
      assert.equal(session.ended, false, "the session stays open meanwhile");
      control.stored(session, [1n]);
      const t0 = Date.now();
      await stopping;
      assert.ok(Date.now() - t0 < 1000, "then it stops at once");
      assert.equal(session.ended, true);
      assert.equal(worker.held, 0);
    });

    it("stop() reconnects to hand over results a broken session did not confirm", async () => {
      const worker = newWorker("held-3");
      await worker.start();
      const first = control.last;
      control.assign(first, "y", 2);
      await until(() => (ScriptedControl.withResults(first).length === 1 ? true : undefined), "y's result");
      const stopping = worker.stop(5000);
      control.breakSession(first);
      const second = await until(() => (control.sessions.length && control.last !== first ? control.last : undefined), "a new session");
      assert.deepEqual(second.hello.running.map((r) => r.taskId), ["y"]);
      await until(() => (ScriptedControl.withResults(second).length === 1 ? true : undefined), "y's result again");
      assert.ok(second.heartbeats.some((h) => h.draining), "it says it takes no new work");
      control.stored(second, [1n]);
      await stopping;
      assert.equal(worker.held, 0);
    });

    it("stop() gives up waiting after its grace", async () => {
      const worker = newWorker("held-4");
      await worker.start();
      const session = control.last;
      control.assign(session, "z", 3);
      await until(() => (ScriptedControl.withResults(session).length === 1 ? true : undefined), "z's result");
      const t0 = Date.now();
      await worker.stop(300);
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 2000, `stopped after its grace (${took} ms)`);
      assert.equal(worker.held, 1, "the unconfirmed result is still held");
    });

    it("holds heldResults from an earlier incarnation: lists them in hello, sends them after the welcome, reports them stored", async () => {
      const rescued: HeldResult[] = [
        { taskId: "r1", epoch: 4n, ok: true, result: jsonCodec.encode({ v: 1 }), error: "" },
        { taskId: "r2", epoch: 7n, ok: false, result: new Uint8Array(0), error: "blocked the event loop for 1000 ms" },
      ];
      const held: HeldResult[] = [];
      const stored: HeldResult[] = [];
      const worker = newWorker("held-5", { heldResults: rescued, hooks: { resultHeld: (r) => held.push(r), resultsStored: (rs) => stored.push(...rs) } });
      assert.deepEqual(held, rescued, "they are held from the start");
      await worker.start();
      try {
        const session = control.last;
        assert.deepEqual(session.hello.running.map((r) => [r.taskId, r.epoch]), [["r1", 4n], ["r2", 7n]]);
        await until(() => (ScriptedControl.withResults(session).length === 1 ? true : undefined), "the rescued results");
        const hb = session.heartbeats.find((h) => h.results.length)!;
        assert.equal(hb.seq, 1n);
        assert.deepEqual(hb.results.map((r) => [r.taskId, r.epoch, r.ok, r.error]), [["r1", 4n, true, ""], ["r2", 7n, false, "blocked the event loop for 1000 ms"]]);
        control.stored(session, [1n]);
        await until(() => (stored.length === 2 ? true : undefined), "resultsStored");
        assert.equal(stored[0], rescued[0], "the very objects it was given");
        assert.equal(stored[1], rescued[1]);
      } finally {
        await worker.stop(1000);
      }
    });
  });

  describe("abortGraceMs", () => {
    it("reports a handler that ignores its abort past the grace, and not one that stops", async () => {
      const ignored: [string, string, number][] = [];
      const worker = newWorker("abort-1", {
        abortGraceMs: 100,
        handlers: {
          // Never settles, whatever its signal says.
          hang: () => new Promise(() => {}),
          polite: (_p: unknown, { signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error))),
        },
        hooks: { handlerIgnoredAbort: (taskId, type, graceMs) => ignored.push([taskId, type, graceMs]) },
      });
      await worker.start();
      try {
        const session = control.last;
        control.assign(session, "h", null, { type: "hang", timeoutMs: 50 });
        control.assign(session, "p", null, { type: "polite", timeoutMs: 50 });
        await until(() => (ScriptedControl.withResults(session).flatMap(([, ids]) => ids).length === 2 ? true : undefined), "both timed out");
        const errors = session.heartbeats.flatMap((h) => h.results.map((r) => [r.taskId, r.error]));
        assert.deepEqual(errors.sort(), [["h", "timed out after 50 ms"], ["p", "timed out after 50 ms"]]);
        assert.deepEqual(ignored, [], "not before the grace");
        await until(() => (ignored.length ? true : undefined), "the report");
        await new Promise((r) => setTimeout(r, 150));
        assert.deepEqual(ignored, [["h", "hang", 100]]);
      } finally {
        await worker.stop(300);
      }
    });
  });
});
