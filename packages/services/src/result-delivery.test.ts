/** Result delivery: watchers until final, subscribers per client ID. */
import "reflect-metadata";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TaskOutcome, TaskRecord } from "@taskflow/core";
import { ResultDelivery } from "./result-delivery.js";

const rec = (id: string, state: TaskRecord["state"]) => ({ id, state }) as TaskRecord;
const outcome = (taskId: string): TaskOutcome => ({ taskId, state: "succeeded", result: undefined, error: "", attempt: 1, workerId: "w1" });

describe("ResultDelivery", () => {
  describe("changed", () => {
    it("tells a task's watchers of every change, and forgets them after the final one", () => {
      const d = new ResultDelivery();
      const seen: string[] = [];
      d.watch("a", (t) => seen.push(`1:${t.state}`));
      const off = d.watch("a", (t) => seen.push(`2:${t.state}`));
      d.changed(rec("a", "running"));
      off();
      d.changed(rec("a", "succeeded"));
      d.changed(rec("a", "succeeded"));
      d.changed(rec("b", "running"));
      assert.deepEqual(seen, ["1:running", "2:running", "1:succeeded"]);
    });
  });

  describe("deliver", () => {
    it("hands each client's batch to that client's subscribers only", () => {
      const d = new ResultDelivery();
      const got: string[] = [];
      const off = d.subscribeResults("c1", (o) => got.push(...o.map((x) => `c1:${x.taskId}`)));
      d.subscribeResults("c2", (o) => got.push(...o.map((x) => `c2:${x.taskId}`)));
      assert.equal(d.wantsOutcomes("c1"), true);
      assert.equal(d.wantsOutcomes("c3"), false);
      d.deliver(new Map([["c1", [outcome("a")]], ["c2", [outcome("b")]], ["c3", [outcome("c")]]]));
      assert.deepEqual(got, ["c1:a", "c2:b"]);
      off();
      off();
      assert.equal(d.wantsOutcomes("c1"), false, "unsubscribing twice is harmless");
    });

    it("keeps a newer subscriber when an older one of the same client unsubscribes late", () => {
      const d = new ResultDelivery();
      const off = d.subscribeResults("c1", () => {});
      off();
      d.subscribeResults("c1", () => {});
      off();
      assert.equal(d.wantsOutcomes("c1"), true);
    });
  });
});
