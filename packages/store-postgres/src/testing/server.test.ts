import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { describe, it } from "node:test";
import pg from "pg";
import { postgresBinDir, startTestPostgres } from "./index.js";

async function query(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("startTestPostgres", () => {
  it("finds the server binaries", () => {
    assert.ok(existsSync(`${postgresBinDir()}/initdb`));
  });

  it("starts a real server with fsync on, survives an immediate stop, and removes its folder when stopped", async () => {
    const server = await startTestPostgres();
    try {
      assert.match(server.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
      assert.deepEqual(await query(server.url, "SHOW fsync"), [{ fsync: "on" }]);
      await query(server.url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)");
      await server.crash();
      await assert.rejects(query(server.url, "SELECT 1"));
      await server.restart();
      assert.deepEqual(await query(server.url, "SELECT n FROM kept"), [{ n: 42 }]);
      assert.ok(statSync(server.dir).isDirectory());
    } finally {
      await server.stop();
    }
    assert.equal(existsSync(server.dir), false, "the folder is removed");
    await server.stop();
  });
});
