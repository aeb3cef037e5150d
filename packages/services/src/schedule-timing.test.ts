/** Firing times of cron and interval schedules, and which due firings run under each missed-firings policy. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, TaskflowError } from "@taskflow/core";
import { checkTiming, cronTiming, intervalTiming, planFirings } from "./schedule-timing.js";

const iso = (t: number) => new Date(t).toISOString();
const at = (s: string) => Date.parse(s);

function firings(timing: { after(t: number): number }, from: string, n: number): string[] {
  const out: string[] = [];
  for (let t = timing.after(at(from)); out.length < n; t = timing.after(t)) out.push(iso(t));
  return out;
}

function rejectsField(fn: () => void, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(TaskflowError.is(err), String(err));
    assert.equal(err.code, Code.INVALID_ARGUMENT);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("cronTiming", () => {
  describe("after", () => {
    it("reads the expression in its time zone: 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC after the March change", () => {
      const timing = cronTiming("0 9 * * *", "Europe/Paris");
      assert.deepEqual(firings(timing, "2026-03-27T12:00:00Z", 3), ["2026-03-28T08:00:00.000Z", "2026-03-29T07:00:00.000Z", "2026-03-30T07:00:00.000Z"]);
    });

    it("fires an hourly cron once per real hour across the spring-forward change (no repeated 03:00)", () => {
      const timing = cronTiming("0 * * * *", "Europe/Paris");
      // 01:00 CET, then 03:00 CEST (02:00 does not exist that night), then 04:00 CEST.
      assert.deepEqual(firings(timing, "2026-03-28T23:30:00Z", 3), ["2026-03-29T00:00:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-29T02:00:00.000Z"]);
    });

    it("fires a daily time that the spring-forward night skips once, at the first time after it", () => {
      const timing = cronTiming("30 2 * * *", "Europe/Paris");
      assert.deepEqual(firings(timing, "2026-03-28T12:00:00Z", 2), ["2026-03-29T01:30:00.000Z", "2026-03-30T00:30:00.000Z"]);
    });

    it("fires a daily time that the fall-back night repeats once, not twice", () => {
      const timing = cronTiming("30 2 * * *", "Europe/Paris");
      assert.deepEqual(firings(timing, "2026-10-24T12:00:00Z", 2), ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]);
    });

    it("is UTC without a time zone, takes a seconds field and nicknames", () => {
      assert.deepEqual(firings(cronTiming("0 9 * * *", ""), "2026-03-28T12:00:00Z", 1), ["2026-03-29T09:00:00.000Z"]);
      assert.deepEqual(firings(cronTiming("*/20 * * * * *", ""), "2026-03-28T12:00:00.500Z", 2), ["2026-03-28T12:00:20.000Z", "2026-03-28T12:00:40.000Z"]);
      assert.deepEqual(firings(cronTiming("@hourly", ""), "2026-03-28T12:00:00Z", 1), ["2026-03-28T13:00:00.000Z"]);
    });

    it("answers Infinity for an expression no date matches", () => {
      assert.equal(cronTiming("0 0 30 2 *", "").after(at("2026-01-01T00:00:00Z")), Infinity);
    });
  });

  describe("latestIn", () => {
    it("gives the latest n firing times in [lo, hi], oldest first, both ends included", () => {
      const timing = cronTiming("*/5 * * * *", "");
      const lo = at("2026-03-28T12:00:00Z");
      const hi = at("2026-03-28T12:30:00Z");
      assert.deepEqual(timing.latestIn(lo, hi, 3).map(iso), ["2026-03-28T12:20:00.000Z", "2026-03-28T12:25:00.000Z", "2026-03-28T12:30:00.000Z"]);
      assert.deepEqual(timing.latestIn(lo, lo + 5 * 60_000, 10).map(iso), ["2026-03-28T12:00:00.000Z", "2026-03-28T12:05:00.000Z"]);
      assert.deepEqual(timing.latestIn(lo, hi, 0), []);
    });
  });
});

describe("intervalTiming", () => {
  const anchor = at("2026-03-28T12:00:00.250Z");
  const timing = intervalTiming(anchor, 30_000);

  it("fires one interval after the anchor, then every interval, keeping the anchor's phase", () => {
    assert.equal(timing.after(anchor - 5000), anchor + 30_000);
    assert.equal(timing.after(anchor), anchor + 30_000);
    assert.equal(timing.after(anchor + 30_000), anchor + 60_000);
    assert.equal(timing.after(anchor + 31_000), anchor + 60_000);
    assert.equal(timing.after(anchor + 3_600_000 + 1), anchor + 3_630_000);
  });

  it("gives the latest n firing times in [lo, hi] by arithmetic, however far back", () => {
    const hi = anchor + 365 * 86_400_000;
    const latest = timing.latestIn(anchor, hi, 3);
    assert.deepEqual(latest, [hi - 60_000, hi - 30_000, hi]);
    assert.deepEqual(timing.latestIn(anchor, anchor + 70_000, 5), [anchor + 30_000, anchor + 60_000]);
  });
});

describe("checkTiming", () => {
  it("refuses a bad cron, an unknown time zone, a too short interval, both timings or none, naming the field", () => {
    rejectsField(() => checkTiming({ cron: "61 * * * *", timezone: "", intervalMs: 0 }), /^schedule\.cron "61 \* \* \* \*" is not a cron expression: .*minute/);
    rejectsField(() => checkTiming({ cron: "* * *", timezone: "", intervalMs: 0 }), /^schedule\.cron "\* \* \*" is not a cron expression/);
    rejectsField(() => checkTiming({ cron: "0 9 * * *", timezone: "Mars/Olympus", intervalMs: 0 }), /^schedule\.timezone "Mars\/Olympus" is not an IANA time zone/);
    rejectsField(() => checkTiming({ cron: "", timezone: "", intervalMs: 999 }), /^schedule\.interval_ms must be 1000 \(1 s\) … 31536000000 \(365 days\), got 999/);
    rejectsField(() => checkTiming({ cron: "* * * * *", timezone: "", intervalMs: 5000 }), /^schedule\.cron and schedule\.interval_ms are exclusive/);
    rejectsField(() => checkTiming({ cron: "", timezone: "", intervalMs: 0 }), /^schedule\.cron or schedule\.interval_ms is required/);
    rejectsField(() => checkTiming({ cron: "", timezone: "Europe/Paris", intervalMs: 5000 }), /^schedule\.timezone goes only with schedule\.cron/);
    rejectsField(() => checkTiming({ cron: "0 0 30 2 *", timezone: "", intervalMs: 0 }), /^schedule\.cron "0 0 30 2 \*" never fires/);
  });

  it("accepts a cron with a zone, and an interval of 1 s", () => {
    checkTiming({ cron: "*/5 * * * *", timezone: "Europe/Paris", intervalMs: 0 });
    checkTiming({ cron: "", timezone: "", intervalMs: 1000 });
  });
});

describe("planFirings", () => {
  // Every second from t0; the node comes back 10.5 s after the cursor.
  const t0 = at("2026-03-28T12:00:00Z");
  const timing = intervalTiming(t0 - 1000, 1000);
  const now = t0 + 10_500;

  it("runs what is due on time (within missedAfterMs) whatever the policy", () => {
    // t0 is exactly 1 s late: not more than missedAfterMs, so on time.
    const plan = planFirings(timing, t0, t0 + 1000, 1000, "skip", 10);
    assert.deepEqual(plan.times, [t0, t0 + 1000]);
    assert.equal(plan.next, t0 + 2000);
    assert.equal(plan.dropped, 0);
  });

  it("runs nothing and keeps the cursor when nothing is due", () => {
    assert.deepEqual(planFirings(timing, t0, t0 - 1, 1000, "catch-up", 10), { times: [], next: t0, dropped: 0 });
  });

  it("skip: drops the missed firings, runs the on-time ones", () => {
    const plan = planFirings(timing, t0, now, 1000, "skip", 10);
    // Missed: t0 … t0+9000 (more than 1 s late); on time: t0+10000.
    assert.deepEqual(plan.times, [t0 + 10_000]);
    assert.equal(plan.dropped, 10);
    assert.equal(plan.next, t0 + 11_000);
  });

  it("run once: one task for the latest missed firing, then the on-time ones", () => {
    const plan = planFirings(timing, t0, now, 1000, "run-once", 10);
    assert.deepEqual(plan.times, [t0 + 9000, t0 + 10_000]);
    assert.equal(plan.dropped, 9);
  });

  it("catch up: the latest catchUpMax missed firings, oldest first, then the on-time ones", () => {
    const plan = planFirings(timing, t0, now, 1000, "catch-up", 3);
    assert.deepEqual(plan.times, [t0 + 7000, t0 + 8000, t0 + 9000, t0 + 10_000]);
    assert.equal(plan.dropped, 7);
    const all = planFirings(timing, t0, now, 1000, "catch-up", 100);
    assert.equal(all.times.length, 11);
    assert.equal(all.dropped, 0);
  });

  it("catches up a cron schedule across a day of downtime in bounded work", () => {
    const cron = cronTiming("*/5 * * * *", "Europe/Paris");
    const cursor = at("2026-03-27T12:00:00Z");
    const plan = planFirings(cron, cursor, at("2026-03-28T12:02:00Z"), 1000, "catch-up", 2);
    assert.deepEqual(plan.times.map(iso), ["2026-03-28T11:55:00.000Z", "2026-03-28T12:00:00.000Z"]);
    assert.equal(plan.next, at("2026-03-28T12:05:00Z"));
    assert.ok(plan.dropped >= 280, `dropped ${plan.dropped}`);
  });
});
