import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { advertisedAddress, parseConfig } from "../config.js";
import { configError } from "./config-error.test.fixture.js";

const postgres = { kind: "postgres", url: "postgres://taskflow@db:5432/taskflow" } as const;

describe("config: ha (standby control nodes)", () => {
  it("is off by default, with a 10 s lease", () => {
    const config = parseConfig({});
    assert.equal(config.ha.enabled, false);
    assert.equal(config.ha.leaseTtlMs, 10_000);
    assert.equal(config.ha.advertiseAddress, undefined);
  });

  it("needs the Postgres store, naming the key and the fix", () => {
    const message = configError({ ha: { enabled: true } });
    assert.match(message, /ha\.enabled: needs store\.kind "postgres" \(got "memory"\)/);
    assert.match(message, /fix: set store\.kind to "postgres"/);
  });

  it("needs the control role", () => {
    assert.match(configError({ roles: ["worker"], store: postgres, ha: { enabled: true } }), /ha\.enabled: only means something on a node with the "control" role; fix: add "control"/);
  });

  it("needs an advertised address when the node binds a wildcard or port 0", () => {
    for (const control of [{ host: "0.0.0.0", port: 50051 }, { host: "127.0.0.1", port: 0 }]) {
      const message = configError({ control, store: postgres, ha: { enabled: true }, insecure: true });
      assert.match(message, /ha\.advertiseAddress: required when control\.host is a wildcard or control\.port is 0/);
      assert.match(message, /fix: give the host:port clients and workers reach this node at/);
    }
  });

  it("refuses an address without a port, and a lease too short to renew", () => {
    assert.match(configError({ store: postgres, ha: { enabled: true, advertiseAddress: "control-a" } }), /ha\.advertiseAddress/);
    assert.match(configError({ store: postgres, ha: { enabled: true, leaseTtlMs: 100 } }), /ha\.leaseTtlMs/);
  });

  it("advertises control.host:control.port unless told otherwise", () => {
    assert.equal(advertisedAddress(parseConfig({ store: postgres, ha: { enabled: true }, control: { port: 6000 } })), "127.0.0.1:6000");
    assert.equal(advertisedAddress(parseConfig({ store: postgres, ha: { enabled: true }, control: { host: "::1", port: 6000 } })), "[::1]:6000");
    const config = parseConfig({ store: postgres, control: { host: "0.0.0.0" }, ha: { enabled: true, advertiseAddress: "control-a.internal:50051" }, insecure: true });
    assert.equal(advertisedAddress(config), "control-a.internal:50051");
  });
});
