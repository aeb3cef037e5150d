/**
 * The Worker Index through the Register, on the in-process control plane: pages in join order
 * with each worker once while workers join and leave between pages, summary counts by state and
 * load, and GetClusterState's paging fields (defaults, limits, bad tokens).
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { Code, TaskflowError } from "@taskflow/core";
import { create } from "@bufbuild/protobuf";
import { GetClusterStateRequestSchema } from "@taskflow/proto";
import { DEFAULT_WORKER_PAGE, MAX_WORKER_PAGE, clusterWorkers } from "./cluster-state.js";
import { settle, spec, startControlPlane, type TestControlPlane } from "./control-plane.test.fixture.js";

let cp: TestControlPlane | undefined;
afterEach(async () => {
  await cp?.stop();
  cp = undefined;
});

function ids(page: { entries: { record: { id: string } }[] }): string[] {
  return page.entries.map((e) => e.record.id);
}

describe("WorkerIndex", () => {
  describe("page", () => {
    it("lists workers in join order, each once, while others join and leave between pages", async () => {
      cp = await startControlPlane();
      for (let i = 0; i < 5; i++) cp.join(`w${i}`, ["echo"]);
      const first = cp.workers.page(0, 2);
      assert.deepEqual(ids(first), ["w0", "w1"]);
      // Between pages: one already listed leaves (drained, idle) and comes back as a new join, one
      // not yet listed leaves, and one joins.
      cp.register.drain("w0");
      cp.register.disconnected(cp.entry("w0"), cp.entry("w0").link.port!, "test");
      cp.join("w0", ["echo"]);
      cp.register.drain("w3");
      cp.register.disconnected(cp.entry("w3"), cp.entry("w3").link.port!, "test");
      cp.join("w5", ["echo"]);
      const seen = [...ids(first)];
      let after = first.after;
      while (after) {
        const page = cp.workers.page(after, 2);
        seen.push(...ids(page));
        after = page.after;
      }
      assert.deepEqual(seen, ["w0", "w1", "w2", "w4", "w0", "w5"], "w3 left before its page; w0 rejoined at the end");
      assert.equal(new Set(seen.slice(1)).size, seen.length - 1, "none twice but the one that rejoined");
    });

    it("gives no token on the last page, and an empty first page with no workers", async () => {
      cp = await startControlPlane();
      assert.deepEqual(cp.workers.page(0, 10), { entries: [], after: 0 });
      cp.join("a", ["echo"]);
      cp.join("b", ["echo"]);
      assert.equal(cp.workers.page(0, 2).after, 0, "exactly full: nothing more");
      assert.notEqual(cp.workers.page(0, 1).after, 0);
    });
  });

  describe("summary", () => {
    it("counts workers by state, their slots and load, and those with a free slot", async () => {
      cp = await startControlPlane();
      cp.join("w1", ["echo"], 2);
      cp.join("w2", ["echo"], 3);
      const w3 = cp.join("w3", ["other"], 1);
      await cp.plm.submit([spec("echo")], "c1");
      await settle();
      cp.register.drain("w2");
      cp.register.disconnected(cp.entry("w3"), w3, "network");
      await settle(); // the scheduler takes them out of the worker heap on its next turn
      assert.deepEqual(cp.workers.summary(), {
        total: 3,
        alive: 1,
        suspect: 0,
        draining: 1,
        disconnected: 1,
        slots: 6,
        running: 1,
        free: 1,
        oldestHeartbeat: cp.entry("w1").record.lastHeartbeat,
      });
    });
  });
});

describe("clusterWorkers", () => {
  const req = (init: { pageSize?: number; pageToken?: string; summaryOnly?: boolean }) => create(GetClusterStateRequestSchema, init);

  it("pages with the default size, follows next_page_token to the end, and always sends the summary", async () => {
    cp = await startControlPlane({ config: { control: { workerHeapCapacity: 2000 } } });
    for (let i = 0; i < DEFAULT_WORKER_PAGE + 3; i++) cp.join(`w${i}`, ["echo"], 1);
    const first = clusterWorkers(cp.workers, req({}));
    assert.equal(first.workers.length, DEFAULT_WORKER_PAGE);
    assert.equal(first.workerSummary.total, DEFAULT_WORKER_PAGE + 3);
    assert.equal(first.workerSummary.slots, BigInt(DEFAULT_WORKER_PAGE + 3));
    const second = clusterWorkers(cp.workers, req({ pageToken: first.nextPageToken }));
    assert.deepEqual(
      second.workers.map((w) => w.workerId),
      [`w${DEFAULT_WORKER_PAGE}`, `w${DEFAULT_WORKER_PAGE + 1}`, `w${DEFAULT_WORKER_PAGE + 2}`],
    );
    assert.equal(second.nextPageToken, "");
    const summary = clusterWorkers(cp.workers, req({ summaryOnly: true }));
    assert.deepEqual([summary.workers.length, summary.nextPageToken, summary.workerSummary.alive], [0, "", DEFAULT_WORKER_PAGE + 3]);
  });

  it("refuses a page past the maximum and a token it did not give out, with INVALID_ARGUMENT", async () => {
    cp = await startControlPlane();
    const refused = (init: Parameters<typeof req>[0], message: RegExp) =>
      assert.throws(
        () => clusterWorkers(cp!.workers, req(init)),
        (err: unknown) => TaskflowError.is(err) && err.code === Code.INVALID_ARGUMENT && message.test(err.message),
      );
    refused({ pageSize: MAX_WORKER_PAGE + 1 }, /page_size is 5001; at most 5000 workers a page/);
    refused({ pageToken: "abc" }, /page_token "abc" is not one this node gave out/);
    refused({ pageToken: "w0" }, /page_token "w0" is not one/);
    assert.equal(clusterWorkers(cp.workers, req({ pageSize: MAX_WORKER_PAGE })).workers.length, 0);
  });
});
