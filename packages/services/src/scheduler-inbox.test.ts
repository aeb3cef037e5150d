/** The scheduler's inbox and the worker ports: what lower parts note, and how workers are reached. */
import "reflect-metadata";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RecordingPort, settle } from "./control-plane.test.fixture.js";
import type { WorkerEntry } from "./register.js";
import { LoopInbox } from "./scheduler-inbox.js";
import { WorkerPortDirectory } from "./worker-ports.js";

describe("LoopInbox", () => {
  it("runs one turn per burst of changes, only while driven, and hands over what changed", async () => {
    const inbox = new LoopInbox();
    let turns = 0;
    inbox.wake();
    inbox.released("w1", 1);
    await settle();
    assert.equal(turns, 0, "no turns before the scheduler drives it");
    inbox.drive(() => turns++);
    await settle();
    assert.equal(turns, 1);
    inbox.released("w1", 2);
    inbox.released("w2", 1);
    const w = {} as WorkerEntry;
    inbox.workerChanged(w);
    inbox.workerChanged(w);
    await settle();
    assert.equal(turns, 2, "one turn for the whole burst");
    assert.deepEqual([...inbox.takeFreed()], [["w1", 3], ["w2", 1]]);
    assert.deepEqual([...inbox.takeChanged()], [w]);
    assert.equal(inbox.takeFreed().size, 0);
    inbox.halt();
    inbox.wake();
    await settle();
    assert.equal(turns, 2);
  });
});

describe("WorkerPortDirectory", () => {
  it("cancels through a worker's open session and does nothing without one", () => {
    const ports = new WorkerPortDirectory();
    const port = new RecordingPort();
    const link = ports.link("w1");
    assert.equal(ports.link("w1"), link, "one link per worker");
    ports.cancel("w1", "t1", 1, "no session yet");
    link.port = port;
    ports.cancel("w1", "t1", 2, "stop");
    ports.cancel("w2", "t2", 1, "unknown worker");
    assert.deepEqual(port.cancelled, [{ taskId: "t1", epoch: 2, reason: "stop" }]);
    ports.forget("w1", link);
    assert.notEqual(ports.link("w1"), link, "a later worker of that ID gets a new link");
  });
});
