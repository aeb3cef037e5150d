/** Result delivery: watchers until final, subscribers per (tenant, client ID). */
import "reflect-metadata";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig, type TaskOutcome, type TaskRecord } from "@taskflow/core";
import { FakeClock } from "@taskflow/core/testing";
import { ResultDelivery } from "./result-delivery.js";
import { Tenants } from "./tenants.js";

const rec = (id: string, state: TaskRecord["state"]) => ({ id, state }) as TaskRecord;
const outcome = (taskId: string): TaskOutcome => ({ taskId, state: "succeeded", result: undefined, error: "", attempt: 1, workerId: "w1" });
const tenants = new Tenants(parseConfig({}), new FakeClock(), { tokens: [] });
const acme = tenants.account("acme");
const globex = tenants.account("globex");

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
    it("hands each (tenant, client)'s batch to that tenant's client's subscribers only", () => {
      const d = new ResultDelivery();
      const got: string[] = [];
      const off = d.subscribeResults(acme, "c1", (o) => got.push(...o.map((x) => `acme/c1:${x.taskId}`)));
      d.subscribeResults(acme, "c2", (o) => got.push(...o.map((x) => `acme/c2:${x.taskId}`)));
      d.subscribeResults(globex, "c1", (o) => got.push(...o.map((x) => `globex/c1:${x.taskId}`)));
      assert.equal(d.wantsOutcomes(acme, "c1"), true);
      assert.equal(d.wantsOutcomes(acme, "c3"), false);
      assert.equal(d.wantsOutcomes(globex, "c2"), false, "another tenant's client ID is not this one's");
      d.deliver(
        new Map([
          [acme, new Map([["c1", [outcome("a")]], ["c2", [outcome("b")]], ["c3", [outcome("c")]]])],
          [globex, new Map([["c1", [outcome("d")]]])],
        ]),
      );
      assert.deepEqual(got, ["acme/c1:a", "acme/c2:b", "globex/c1:d"]);
      off();
      off();
      assert.equal(d.wantsOutcomes(acme, "c1"), false, "unsubscribing twice is harmless");
      assert.equal(d.wantsOutcomes(globex, "c1"), true);
    });

    it("keeps a newer subscriber when an older one of the same client unsubscribes late", () => {
      const d = new ResultDelivery();
      const off = d.subscribeResults(acme, "late", () => {});
      off();
      d.subscribeResults(acme, "late", () => {});
      off();
      assert.equal(d.wantsOutcomes(acme, "late"), true);
    });
  });
});
