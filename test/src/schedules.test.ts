/**
 * Recurring schedules end to end (ADR 0025): a control node on the SQLite store and a worker
 * node with real worker processes. A schedule every second fires tasks that run; a kill -9 of
 * the control node in the middle: every firing time gets one task across the restart (catch up),
 * or the outage's firings are dropped (skip), and no firing time ever gets two. Then the raw
 * wire contract (a protobuf client, not the SDK): every bad input answers INVALID_ARGUMENT naming
 * its field, another tenant's schedule NOT_FOUND; and the CLI. The key path (create, fire, list,
 * a restart) runs on the Postgres store too, as a leader whose schedule writes are fenced.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TaskflowClient, TaskState } from "@taskflow/client";
import { MissedFirings, ScheduleService, type Schedule, type Task } from "@taskflow/proto";
import { createClient } from "@taskflow/proto/grpc";
import { cli, code, eventually, freePort, startNode, tempDir, type StartedNode } from "./harness.js";
import { scrape, value } from "./prometheus.js";
import { startTestPostgres, type TestPostgres } from "@taskflow/store-postgres/testing";

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

/** Every task of a schedule (its client ID), oldest first. */
async function tasksOf(client: TaskflowClient, id: string): Promise<Task[]> {
  const out: Task[] = [];
  let pageToken = "";
  do {
    const page = await client.list({ clientId: `schedule:${id}`, pageSize: 1000, pageToken });
    out.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out.reverse();
}

/** The firing times of a schedule's tasks, asserting that none has two tasks. */
async function firingTimes(client: TaskflowClient, id: string): Promise<number[]> {
  const tasks = await tasksOf(client, id);
  const times = tasks.map((t) => ms(t.scheduledAt));
  for (const t of tasks) assert.equal(t.scheduleId, id);
  assert.equal(new Set(times).size, times.length, `one task per firing time of ${id}: ${times.join(", ")}`);
  return times.sort((a, b) => a - b);
}

describe("a schedule every second on a real cluster (SQLite store)", () => {
  let port: number;
  const dir = tempDir("taskflow-schedules-control-");
  let control: StartedNode;
  let workers: StartedNode;
  const controlConfig = () => ({ roles: ["control" as const], control: { port }, store: { kind: "sqlite" as const, path: "tasks.db" } });
  before(async () => {
    port = await freePort();
    control = await startNode(controlConfig(), { dir });
    workers = await startNode({ roles: ["worker"], worker: { processes: 1, slots: 8, controlAddress: `127.0.0.1:${port}` } });
  });
  after(async () => {
    await workers.stop();
    await control.stop();
  });

  it("fires one task per second, and the tasks run on the workers", async () => {
    const client = new TaskflowClient({ address: control.address });
    try {
      const created = await client.schedules.create({ id: "every-second", type: "echo", payload: { from: "schedule" }, intervalMs: 1000 });
      const t0 = ms(created.createdAt);
      assert.equal(ms(created.nextFireTime), t0 + 1000);
      const done = await eventually(async () => {
        const tasks = await tasksOf(client, "every-second");
        return tasks.filter((t) => t.state === TaskState.SUCCEEDED).length >= 3 ? tasks : undefined;
      }, 60_000, "three firings to succeed");
      await client.schedules.pause("every-second");
      for (const t of done.slice(0, 3)) {
        assert.equal(t.spec!.idempotencyKey, `schedule:every-second:${ms(t.scheduledAt)}`);
        assert.equal((ms(t.scheduledAt) - t0) % 1000, 0, "on the interval's grid");
        assert.ok(ms(t.createdAt) >= ms(t.scheduledAt), "not submitted before its firing time");
      }
      assert.deepEqual(await client.result(done[0]!.id), { from: "schedule" });
      const times = await firingTimes(client, "every-second");
      assert.deepEqual(times.slice(0, 3), [t0 + 1000, t0 + 2000, t0 + 3000]);
      const got = await client.schedules.get("every-second");
      assert.equal(got.paused, true);
      assert.equal(ms(got.lastFireTime), times.at(-1));
      const metrics = await scrape(control.metricsUrl!);
      assert.equal(value(metrics, "taskflow_schedules", { state: "paused" }), 1);
      assert.equal(value(metrics, "taskflow_schedules", { state: "active" }), 0);
      assert.equal(value(metrics, "taskflow_schedule_firings_total"), times.length);
    } finally {
      client.close();
    }
  });

  it("fires once per tick across a kill -9 of the control node: catch up fills the outage, skip drops it, none fires twice", async () => {
    let client = new TaskflowClient({ address: control.address, submitRetryTimeoutMs: 30_000 });
    const catchUp = await client.schedules.create({ id: "catch-up", type: "echo", intervalMs: 1000, missed: "catch-up", catchUpMax: 1000 });
    const skip = await client.schedules.create({ id: "skip", type: "echo", intervalMs: 1000, missed: "skip" });
    await eventually(async () => ((await tasksOf(client, "catch-up")).length >= 2 && (await tasksOf(client, "skip")).length >= 2 ? true : undefined), 60_000, "two firings of each before the kill");
    client.close();

    await control.kill9();
    const killedAt = Date.now();
    // The outage itself: at least 3 s of firing times pass while no control node runs.
    await new Promise((r) => setTimeout(r, 3000));
    control = await startNode(controlConfig(), { dir });
    const restartedAt = Date.now();
    client = new TaskflowClient({ address: control.address });
    try {
      // Two firings after the restart, then stop them so the lists hold still.
      await eventually(async () => {
        const [a, b] = [await client.schedules.get("catch-up"), await client.schedules.get("skip")];
        return ms(a.lastFireTime) >= restartedAt + 1000 && ms(b.lastFireTime) >= restartedAt + 1000 ? true : undefined;
      }, 60_000, "both schedules to fire after the restart");
      await client.schedules.pause("catch-up");
      await client.schedules.pause("skip");

      const t0 = ms(catchUp.createdAt);
      const caught = await firingTimes(client, "catch-up");
      const expected = Array.from({ length: (caught.at(-1)! - t0) / 1000 }, (_, i) => t0 + 1000 * (i + 1));
      assert.deepEqual(caught, expected, "catch up: every second from the first firing to the last has exactly one task");
      assert.ok(caught.some((t) => t > killedAt && t < restartedAt), "ticks of the outage are among them");

      const skipped = await firingTimes(client, "skip");
      const s0 = ms(skip.createdAt);
      for (const t of skipped) assert.equal((t - s0) % 1000, 0);
      const gaps = skipped.slice(1).map((t, i) => t - skipped[i]!);
      assert.ok(gaps.some((g) => g > 1000), `skip dropped the outage's missed firings: ${gaps.join(", ")}`);

      // Every task of both runs on the workers, which reconnected on their own.
      await eventually(async () => {
        const all = [...(await tasksOf(client, "catch-up")), ...(await tasksOf(client, "skip"))];
        return all.every((t) => t.state === TaskState.SUCCEEDED) ? true : undefined;
      }, 90_000, "every scheduled task to succeed");
      // The schedules themselves came back from the store as they were.
      const listed = await client.schedules.list();
      assert.deepEqual(listed.map((s) => s.id), ["catch-up", "every-second", "skip"]);
      assert.equal(listed.find((s) => s.id === "catch-up")!.missedFirings, MissedFirings.CATCH_UP);
    } finally {
      client.close();
    }
  });
});

describe("schedules on the Postgres store (a leader with ha.enabled: every schedule write fenced)", () => {
  let pg: TestPostgres;
  let port: number;
  let control: StartedNode | undefined;
  let workers: StartedNode | undefined;
  const controlConfig = () => ({
    roles: ["control" as const],
    control: { port },
    store: { kind: "postgres" as const, url: pg.url, schema: "e2e_schedules" },
    ha: { enabled: true, leaseTtlMs: 2000 },
  });
  before(async () => {
    pg = await startTestPostgres();
    port = await freePort();
    control = await startNode(controlConfig(), { timeoutMs: 60_000 });
    workers = await startNode({ roles: ["worker"], worker: { processes: 1, slots: 4, controlAddress: `127.0.0.1:${port}` } });
  });
  after(async () => {
    await workers?.stop();
    await control?.stop();
    await pg?.stop();
  });

  it("creates, fires and lists a schedule, and keeps it across a restart of the control node", async () => {
    // A node with ha.enabled serves once it is elected (a standby answers UNAVAILABLE until then).
    let client = new TaskflowClient({ address: control!.address });
    let created: Schedule;
    try {
      created = await eventually(
        () => client.schedules.create({ id: "pg-every-second", type: "echo", payload: { from: "postgres" }, intervalMs: 1000 }).catch(() => undefined),
        30_000,
        "the node to lead and take the schedule",
      );
      const t0 = ms(created.createdAt);
      const done = await eventually(async () => {
        const tasks = await tasksOf(client, "pg-every-second");
        return tasks.filter((t) => t.state === TaskState.SUCCEEDED).length >= 2 ? tasks : undefined;
      }, 60_000, "two firings to succeed");
      assert.deepEqual(await client.result(done[0]!.id), { from: "postgres" });
      assert.deepEqual((await firingTimes(client, "pg-every-second")).slice(0, 2), [t0 + 1000, t0 + 2000]);
      const listed = await client.schedules.list();
      assert.deepEqual(listed.map((s) => [s.id, s.intervalMs, s.paused]), [["pg-every-second", 1000n, false]]);
      assert.ok(ms(listed[0]!.lastFireTime) >= t0 + 2000, "its progress is kept");
    } finally {
      client.close();
    }

    // A clean restart: the schedule comes back from Postgres and fires on, once per tick.
    assert.equal(await control!.stop(), 0);
    const stoppedAt = Date.now();
    control = await startNode(controlConfig(), { timeoutMs: 60_000 });
    client = new TaskflowClient({ address: control.address });
    try {
      await eventually(async () => {
        const s = await client.schedules.get("pg-every-second").catch(() => undefined);
        return s && ms(s.lastFireTime) > stoppedAt ? true : undefined;
      }, 60_000, "the schedule to fire after the restart");
      await client.schedules.pause("pg-every-second");
      const times = await firingTimes(client, "pg-every-second");
      const t0 = ms(created.createdAt);
      for (const t of times) assert.equal((t - t0) % 1000, 0, "on the interval's grid");
      assert.ok(times.some((t) => t > stoppedAt), "fired after the restart");
      assert.equal((await client.schedules.get("pg-every-second")).paused, true);
      assert.equal((await client.schedules.delete("pg-every-second")).id, "pg-every-second");
      assert.deepEqual(await client.schedules.list(), []);
    } finally {
      client.close();
    }
  });
});

const sha = (token: string) => `sha256:${createHash("sha256").update(token).digest("hex")}`;
const tok = (name: string) => `tfk_test_${name}_${Math.random().toString(36).slice(2)}`;
const T = { a: tok("a"), b: tok("b"), viewer: tok("viewer"), admin: tok("admin") };
const tokens = [
  { hash: sha(T.a), role: "client", tenant: "a", name: "app-a" },
  { hash: sha(T.b), role: "client", tenant: "b", name: "app-b" },
  { hash: sha(T.viewer), role: "viewer", tenant: "ops", name: "watcher" },
  { hash: sha(T.admin), role: "admin", tenant: "ops", name: "root" },
];

describe("schedules through the raw wire contract (not the SDK), with tenants", () => {
  let node: StartedNode;
  const rpc = (token: string) => createClient(ScheduleService, node.address, { channelOptions: { interceptors: [bearer(token)] } });
  let a: ReturnType<typeof rpc>;
  before(async () => {
    node = await startNode({ roles: ["control"], store: { kind: "sqlite", path: "tasks.db" }, auth: { tokens: tokens as never } });
    a = rpc(T.a);
  });
  after(async () => {
    a.raw.close();
    assert.equal(await node.stop(), 0);
  });

  const good = { id: "nightly", template: { type: "report" }, cron: "0 2 * * *", timezone: "Europe/Paris" };

  it("refuses every bad input with INVALID_ARGUMENT naming the field", async () => {
    const refused = async (schedule: object, pattern: RegExp) => {
      await assert.rejects(a.createSchedule({ schedule: schedule as never }), (err: unknown) => {
        code(grpc.status.INVALID_ARGUMENT, pattern)(err);
        assert.equal((err as grpc.ServiceError).metadata.get("taskflow-reason")[0], "TASKFLOW_ERR_INVALID_REQUEST");
        return true;
      });
    };
    await assert.rejects(a.createSchedule({}), code(grpc.status.INVALID_ARGUMENT, /^schedule is required/));
    await refused({ ...good, cron: "*/5 * * *" }, /^schedule\.cron "\*\/5 \* \* \*" is not a cron expression/);
    await refused({ ...good, cron: "0 25 * * *" }, /^schedule\.cron "0 25 \* \* \*" is not a cron expression: .*hour/);
    await refused({ ...good, timezone: "Europe/Gondor" }, /^schedule\.timezone "Europe\/Gondor" is not an IANA time zone/);
    await refused({ ...good, cron: "", timezone: "", intervalMs: 999n }, /^schedule\.interval_ms must be 1000 \(1 s\)/);
    await refused({ ...good, intervalMs: 5000n }, /^schedule\.cron and schedule\.interval_ms are exclusive/);
    await refused({ ...good, cron: "", timezone: "" }, /^schedule\.cron or schedule\.interval_ms is required/);
    await refused({ ...good, id: "" }, /^schedule\.id is required/);
    await refused({ ...good, id: "a b" }, /^schedule\.id "a b" must be 1-64 characters/);
    await refused({ ...good, template: undefined }, /^schedule\.template is required/);
    await refused({ ...good, template: { type: "" } }, /^schedule\.template\.type is required/);
    await refused({ ...good, template: { type: "report", idempotencyKey: "k" } }, /^schedule\.template\.idempotency_key must be empty/);
    await refused({ ...good, template: { type: "report", timeoutMs: 2_000_000_001 } }, /^schedule\.template\.timeout_ms must be at most/);
    await refused({ ...good, missedFirings: 9 }, /^schedule\.missed_firings has an unknown value 9/);
    await refused({ ...good, catchUpMax: 5000 }, /^schedule\.catch_up_max must be/);
    assert.deepEqual((await a.listSchedules({})).schedules, [], "nothing was created");
  });

  it("keeps schedules to their tenant: another tenant's answers NOT_FOUND, viewers read all, clients cannot name another tenant", async () => {
    const created = (await a.createSchedule({ schedule: good })).schedule!;
    assert.equal(created.tenant, "a");
    assert.equal(ms(created.nextFireTime) > Date.now(), true);
    await assert.rejects(a.createSchedule({ schedule: good }), (err: unknown) => {
      code(grpc.status.ALREADY_EXISTS, /schedule nightly already exists in tenant a/)(err);
      assert.equal((err as grpc.ServiceError).metadata.get("taskflow-reason")[0], "TASKFLOW_ERR_SCHEDULE_EXISTS");
      return true;
    });
    const b = rpc(T.b);
    const viewer = rpc(T.viewer);
    const admin = rpc(T.admin);
    try {
      for (const call of [
        () => b.getSchedule({ scheduleId: "nightly" }),
        () => b.pauseSchedule({ scheduleId: "nightly" }),
        () => b.resumeSchedule({ scheduleId: "nightly" }),
        () => b.deleteSchedule({ scheduleId: "nightly" }),
      ]) {
        await assert.rejects(call(), (err: unknown) => {
          code(grpc.status.NOT_FOUND, /schedule nightly not found in tenant b/)(err);
          assert.equal((err as grpc.ServiceError).metadata.get("taskflow-reason")[0], "TASKFLOW_ERR_SCHEDULE_NOT_FOUND");
          return true;
        });
      }
      await assert.rejects(b.updateSchedule({ schedule: { ...good, cron: "0 3 * * *" } }), code(grpc.status.NOT_FOUND, /schedule nightly not found in tenant b/));
      await assert.rejects(b.getSchedule({ scheduleId: "nightly", tenant: "a" }), code(grpc.status.PERMISSION_DENIED, /client token acts on its own tenant/));
      await assert.rejects(a.updateSchedule({ schedule: { ...good, cron: "0 3 * * * * *" } }), code(grpc.status.INVALID_ARGUMENT, /^schedule\.cron "0 3 \* \* \* \* \*" is not a cron expression/));
      const moved = (await a.updateSchedule({ schedule: { ...good, cron: "0 3 * * *", missedFirings: MissedFirings.SKIP } })).schedule!;
      assert.deepEqual([moved.cron, moved.missedFirings, moved.tenant], ["0 3 * * *", MissedFirings.SKIP, "a"]);
      assert.deepEqual((await b.listSchedules({})).schedules, []);
      // A viewer reads every tenant's, and may not change them.
      assert.deepEqual((await viewer.listSchedules({})).schedules.map((s) => `${s.tenant}/${s.id}`), ["a/nightly"]);
      assert.equal((await viewer.getSchedule({ scheduleId: "nightly", tenant: "a" })).schedule!.cron, "0 3 * * *");
      await assert.rejects(viewer.pauseSchedule({ scheduleId: "nightly", tenant: "a" }), code(grpc.status.PERMISSION_DENIED));
      // An admin acts on it by naming the tenant.
      assert.equal((await admin.pauseSchedule({ scheduleId: "nightly", tenant: "a" })).schedule!.paused, true);
      assert.equal((await a.getSchedule({ scheduleId: "nightly" })).schedule!.paused, true);
      assert.equal((await a.deleteSchedule({ scheduleId: "nightly" })).schedule!.id, "nightly");
      await assert.rejects(a.getSchedule({ scheduleId: "nightly" }), code(grpc.status.NOT_FOUND));
    } finally {
      for (const c of [b, viewer, admin]) c.raw.close();
    }
  });

  it("taskflow schedule create/list/get/pause/resume/delete", async () => {
    const env = { TASKFLOW_ADDRESS: node.address, TASKFLOW_TOKEN: T.a };
    const created = await cli(["schedule", "create", "morning", "report", '{"day":true}', "--cron", "0 9 * * MON-FRI", "--tz", "America/New_York", "--missed", "catch-up", "--catch-up-max", "3"], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^timing: {5}cron 0 9 \* \* MON-FRI \(America\/New_York\)$/m);
    assert.match(created.stdout, /^missed: {5}catch-up \(at most 3\)$/m);
    const every = await cli(["schedule", "create", "ping", "echo", "--every", "30s", "--missed", "skip", "--json"], env);
    assert.equal(every.code, 0, every.stderr);
    assert.equal((JSON.parse(every.stdout) as { intervalMs: number }).intervalMs, 30_000);

    const listed = await cli(["schedule", "list"], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /NEXT FIRING/);
    assert.match(listed.stdout, /^morning +report +cron 0 9 \* \* MON-FRI \(America\/New_York\) +catch-up +active +\d{4}-\d\d-\d\dT\d\d:00:00\.000Z/m);
    assert.match(listed.stdout, /^ping +echo +every 30s +skip +active/m);

    const updated = await cli(["schedule", "update", "ping", "echo", '"pong"', "--every", "1m", "--missed", "catch-up"], env);
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /^timing: {5}every 1m$/m);
    assert.match(updated.stdout, /^missed: {5}catch-up \(at most 10\)$/m);
    assert.equal((await cli(["schedule", "pause", "ping"], env)).stdout.trim(), "paused ping");
    assert.match((await cli(["schedule", "get", "ping"], env)).stdout, /^state: {6}paused$/m);
    assert.match((await cli(["schedule", "resume", "ping"], env)).stdout, /^resumed ping; next firing \d{4}-/);
    assert.equal((await cli(["schedule", "delete", "ping"], env)).code, 0);
    const gone = await cli(["schedule", "get", "ping"], env);
    assert.equal(gone.code, 3, "not found");
    assert.match(gone.stderr, /TASKFLOW_ERR_SCHEDULE_NOT_FOUND/);

    const bad = await cli(["schedule", "create", "x", "echo", "--cron", "0 9 * * *", "--tz", "Nowhere/City"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /schedule\.timezone "Nowhere\/City" is not an IANA time zone/);
    const neither = await cli(["schedule", "create", "x", "echo"], env);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /give --cron <expr> \(with --tz <zone>\) or --every <duration>/);
    const help = await cli(["schedule", "create", "--help"]);
    assert.match(help.stdout, /--missed <policy>/);
    assert.match(help.stdout, /--every <duration>/);
  });
});

function bearer(token: string): grpc.Interceptor {
  return (options, next) =>
    new grpc.InterceptingCall(next(options), {
      start(metadata, listener, nextStart) {
        metadata.set("authorization", `Bearer ${token}`);
        nextStart(metadata, listener);
      },
    });
}
