import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig, tenantQuota } from "./config.js";
import { configError } from "./config/config-error.test.fixture.js";

describe("config", () => {
  describe("tenants", () => {
    it("has no quotas by default", () => {
      const q = tenantQuota(parseConfig({}), "default");
      assert.equal(q.maxUnfinishedTasks, 0);
      assert.equal(q.submitsPerSecond, 0);
    });

    it("takes a tenant's own keys and the rest from defaultQuota, naming where each came from", () => {
      const config = parseConfig({
        tenants: {
          defaultQuota: { maxUnfinishedTasks: 100, submitsPerSecond: 50 },
          quotas: { acme: { maxUnfinishedTasks: 10 }, globex: { submitsPerSecond: 5, burst: 20 } },
        },
      });
      assert.deepEqual(tenantQuota(config, "acme"), {
        maxUnfinishedTasks: 10,
        submitsPerSecond: 50,
        burst: 50,
        maxUnfinishedTasksKey: "tenants.quotas.acme.maxUnfinishedTasks",
        submitsPerSecondKey: "tenants.defaultQuota.submitsPerSecond",
        burstKey: "tenants.defaultQuota.submitsPerSecond",
      });
      const globex = tenantQuota(config, "globex");
      assert.equal(globex.maxUnfinishedTasks, 100);
      assert.equal(globex.maxUnfinishedTasksKey, "tenants.defaultQuota.maxUnfinishedTasks");
      assert.deepEqual([globex.submitsPerSecond, globex.burst, globex.burstKey], [5, 20, "tenants.quotas.globex.burst"]);
      assert.equal(tenantQuota(config, "unlisted").maxUnfinishedTasks, 100);
      assert.equal(tenantQuota(config, "toString").maxUnfinishedTasks, 100, "no inherited object keys");
    });

    it("gives a burst of one second's worth, at least 1", () => {
      const config = parseConfig({ tenants: { quotas: { slow: { submitsPerSecond: 0.5 }, fast: { submitsPerSecond: 200 } } } });
      assert.equal(tenantQuota(config, "slow").burst, 1);
      assert.equal(tenantQuota(config, "fast").burst, 200);
    });

    it("names the key and the fix for a bad value", () => {
      const message = configError({ tenants: { quotas: { acme: { maxUnfinishedTasks: -1 } } } });
      assert.match(message, /tenants\.quotas\.acme\.maxUnfinishedTasks: .*; fix: use a whole number of tasks such as 10000, or 0 for no limit/);
    });

    it("suggests the key meant for an unknown one inside a tenant's quota", () => {
      assert.match(configError({ tenants: { quotas: { acme: { maxUnfinishedTask: 5 } } } }), /unknown key "tenants\.quotas\.acme\.maxUnfinishedTask": did you mean "maxUnfinishedTasks"\?/);
      assert.match(configError({ tenants: { defaults: {} } }), /unknown key "tenants\.defaults": remove it; known keys here: defaultQuota, quotas/);
    });

    it("refuses a tenant name that could not be a metric label", () => {
      assert.match(configError({ tenants: { quotas: { "a b": {} } } }), /tenants\.quotas\.a b: .*; fix: name tenants with 1-64 letters, digits, _ \. or -/);
      assert.match(configError({ auth: { tokens: [{ hash: `sha256:${"0".repeat(64)}`, role: "client", tenant: "x\ny", name: "n" }] } }), /auth\.tokens\.0\.tenant/);
    });

    it("refuses a burst without a rate, naming the keys to set", () => {
      assert.match(
        configError({ tenants: { quotas: { acme: { burst: 10 } } } }),
        /tenants\.quotas\.acme\.burst: has no effect without a submitsPerSecond; fix: set tenants\.quotas\.acme\.submitsPerSecond \(or tenants\.defaultQuota\.submitsPerSecond\), or remove the burst/,
      );
      assert.match(configError({ tenants: { defaultQuota: { burst: 10 } } }), /tenants\.defaultQuota\.burst: has no effect/);
      parseConfig({ tenants: { defaultQuota: { submitsPerSecond: 5 }, quotas: { acme: { burst: 10 } } } });
    });
  });
});
