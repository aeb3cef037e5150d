import "reflect-metadata";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { Code, Reason, TaskflowError, parseConfig, type Clock, type TaskflowConfigInput, type TokenEntry } from "@taskflow/core";
import { idDeriver } from "./plm.js";
import { MAX_TENANT_LABELS, Tenants } from "./tenants.js";

/** A clock tests move by hand. */
interface ManualClock extends Clock {
  t: number;
}

/** `fileTenants`: tenants of further tokens, as `auth.tokensFile` adds them to the server's. */
function tenants(input: TaskflowConfigInput, fileTenants: string[] = []): { tenants: Tenants; clock: ManualClock } {
  const clock: ManualClock = {
    t: 1_000_000,
    now() {
      return this.t;
    },
  };
  const config = parseConfig(input);
  const fromFile = fileTenants.map((tenant, i): TokenEntry => ({ hash: `sha256:${"2".repeat(64)}`, role: "client", tenant, name: `file-${i}` }));
  return { tenants: new Tenants(config, clock, { tokens: [...config.auth.tokens, ...fromFile] }), clock };
}

function refusal(fn: () => void): TaskflowError {
  try {
    fn();
  } catch (err) {
    assert.ok(TaskflowError.is(err));
    assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
    assert.equal(err.reason, Reason.QUOTA);
    return err;
  }
  return assert.fail("expected a quota refusal");
}

describe("Tenants", () => {
  describe("admit", () => {
    it("lets through everything without quotas", () => {
      const { tenants: t } = tenants({});
      const account = t.account("acme");
      t.admit(account, 1_000_000);
      t.settle(account, 1_000_000, true);
      assert.equal(account.submitted, 1_000_000);
    });

    it("refuses a submit that would pass maxUnfinishedTasks, counting reserved and unfinished tasks, naming the key", () => {
      const { tenants: t } = tenants({ tenants: { quotas: { acme: { maxUnfinishedTasks: 10 } } } });
      const acme = t.account("acme");
      acme.unfinished = 6;
      t.admit(acme, 3); // 9 held now, 3 of them reserved
      const err = refusal(() => t.admit(acme, 2));
      assert.match(err.message, /tenant acme has 9 unfinished tasks and this submit adds 2, over its quota of 10 \(tenants\.quotas\.acme\.maxUnfinishedTasks\)/);
      assert.equal(acme.refusedUnfinished, 2);
      t.admit(acme, 1);
      t.settle(acme, 3, false);
      assert.equal(acme.reserved, 1, "a failed store write gives its reservation back");
      t.admit(t.account("globex"), 100); // another tenant is not limited by acme's quota
    });

    it("refuses past submitsPerSecond and its burst, then admits again as the bucket refills", () => {
      const { tenants: t, clock } = tenants({ tenants: { defaultQuota: { submitsPerSecond: 10, burst: 20 } } });
      const acme = t.account("acme");
      t.admit(acme, 15);
      t.admit(acme, 5);
      const err = refusal(() => t.admit(acme, 1));
      assert.match(err.message, /tenant acme may submit 10 tasks per second \(tenants\.defaultQuota\.submitsPerSecond\) with bursts of 20; nothing was accepted, retry in 100 ms/);
      assert.equal(acme.refusedRate, 1);
      clock.t += 100;
      t.admit(acme, 1);
      t.admit(t.account("globex"), 20); // every tenant has its own bucket
    });

    it("refuses a batch larger than the burst, saying how to split it", () => {
      const { tenants: t } = tenants({ tenants: { quotas: { acme: { submitsPerSecond: 100, burst: 50 } } } });
      const err = refusal(() => t.admit(t.account("acme"), 51));
      assert.match(err.message, /a submit of 51 tasks is over tenant acme's burst of 50 \(tenants\.quotas\.acme\.burst\); .*split it into batches of at most 50/);
    });
  });

  describe("usage", () => {
    it("labels tenants with a quota or a token (of auth.tokens or auth.tokensFile), and folds the rest into other", () => {
      const { tenants: t } = tenants(
        {
          tenants: { quotas: { acme: {} } },
          auth: { tokens: [{ hash: `sha256:${"1".repeat(64)}`, role: "client", tenant: "globex", name: "g" }] },
        },
        ["initech"],
      );
      t.account("acme").submitted = 3;
      t.account("stranger-1").submitted = 1;
      t.account("stranger-2").unfinished = 2;
      const byLabel = Object.fromEntries(t.usage().map((u) => [u.label, u]));
      assert.deepEqual(Object.keys(byLabel).sort(), ["acme", "default", "globex", "initech", "other"]);
      assert.equal(byLabel.acme!.submitted, 3);
      assert.equal(byLabel.globex!.submitted, 0, "a labelled tenant shows before its first task");
      assert.deepEqual([byLabel.other!.submitted, byLabel.other!.unfinished], [1, 2]);
    });

    it("gives at most MAX_TENANT_LABELS tenants a label of their own", () => {
      const { tenants: t } = tenants({}, Array.from({ length: MAX_TENANT_LABELS * 2 }, (_, i) => `t${i}`));
      for (let i = 0; i < MAX_TENANT_LABELS * 2; i++) t.account(`t${i}`).submitted = 1;
      const usage = t.usage();
      assert.equal(usage.length, MAX_TENANT_LABELS + 1, "the labels plus other");
      assert.equal(usage.reduce((sum, u) => sum + u.submitted, 0), MAX_TENANT_LABELS * 2, "every task is counted somewhere");
    });
  });
});

describe("idDeriver", () => {
  it("derives different IDs for equal client and request IDs in two tenants", () => {
    const a = idDeriver("acme", "client-1", "req-1");
    const b = idDeriver("globex", "client-1", "req-1");
    assert.notEqual(a(0), b(0));
    assert.equal(a(0), idDeriver("acme", "client-1", "req-1")(0), "the same in one tenant, so a retry names the same tasks");
  });

  it("keeps the default tenant's IDs as they were before tenants (a retry across the upgrade)", () => {
    assert.equal(idDeriver("default", "c", "r")(0), idDeriverV1("c", "r"));
  });

  it("does not let a client ID that spells out another tenant collide", () => {
    assert.notEqual(idDeriver("default", "\u00ffacme\u00ffc", "r")(0), idDeriver("acme", "c", "r")(0));
  });
});

/** The derivation before tenants (client and request ID only), kept here to pin the default tenant's IDs. */
function idDeriverV1(clientId: string, requestId: string): string {
  const base = createHash("sha256").update(clientId).update("\n").update(requestId).digest().subarray(0, 16);
  base[6] = (base[6]! & 0x0f) | 0x80;
  base[8] = (base[8]! & 0x3f) | 0x80;
  const hex = base.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
