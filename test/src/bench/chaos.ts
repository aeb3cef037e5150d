/**
 * `npm run bench:chaos -w @taskflow/e2e`: issue 10's crash figures at full size, as JSON on
 * stdout (progress on stderr): for worker kills, control-node kills and a full disk, the tasks,
 * how many were lost, finished twice or delivered twice, and kill → rerun median and max.
 * Sizes: CHAOS_TASKS (default 10000), CHAOS_KILLS (default 10), CHAOS_STORM_ROUNDS (default 20),
 * CHAOS_SCENARIOS (comma list of worker-kills, control-kills, full-disk, kill-storm; default all).
 * kill-storm times kill -9 of a worker process → each of its tasks running again. The full-disk scenario mounts a tmpfs
 * and so needs root.
 */
import { controlKills, fullDisk, killToRerun, workerKills, type ChaosFigures } from "../chaos/scenarios.js";

const tasks = Number(process.env["CHAOS_TASKS"] ?? 10_000);
const kills = Number(process.env["CHAOS_KILLS"] ?? 10);
const scenarios = (process.env["CHAOS_SCENARIOS"] ?? "worker-kills,control-kills,full-disk,kill-storm").split(",");

const results: ChaosFigures[] = [];
if (scenarios.includes("worker-kills")) results.push(await workerKills(tasks, kills * 3));
if (scenarios.includes("control-kills")) results.push(await controlKills(tasks, kills));
if (scenarios.includes("full-disk")) results.push(await fullDisk(tasks, Math.max(1, Math.floor(kills / 3))));
const killStorm = scenarios.includes("kill-storm") ? await killToRerun(Number(process.env["CHAOS_STORM_ROUNDS"] ?? 20)) : undefined;
const targets = {
  lost: 0,
  finishedTwiceAcrossControlKillsAndDisk: 0,
  deliveredTwice: 0,
  killToRerunMedianMs: 1200,
  killToRerunMaxMs: 3000,
};
process.stdout.write(`${JSON.stringify({ results, killToRerun: killStorm, targets }, null, 2)}\n`);
process.exit(0);
