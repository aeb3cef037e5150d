/**
 * The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium, installed by `npm test` through scripts/test-deps.sh)
 * driven headless by playwright-core (each launch gets a fresh temporary profile). Screenshots
 * go to test-artifacts/ (gitignored).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { TaskflowClient } from "@taskflow/client";
import { repoRoot, startNode, type StartedNode } from "./harness.js";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const artifacts = path.join(repoRoot, "test-artifacts");

describe("the dashboard in Chromium", () => {
  let node: StartedNode;
  let client: TaskflowClient;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (npm test does, as root)`);
    // One worker with one slot and no prefetch, so a second task visibly waits in the queue.
    node = await startNode({ roles: ["control", "worker"], worker: { processes: 1, slots: 1, prefetch: 0, labels: { zone: "a" } } });
    client = new TaskflowClient({ address: node.address });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(15_000);
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    client?.close();
    if (node) assert.equal(await node.stop(), 0);
  });

  const workerRow = () => page.locator("[data-testid=workers] tbody tr[data-worker-id]");
  const taskState = (id: string) => page.locator(`[data-testid=tasks] tr[data-task-id="${id}"] [data-testid=task-state]`);

  it("loads and lists the workers with their state, load and labels", async () => {
    await page.goto(node.dashboardUrl!);
    await page.locator("[data-testid=connection]", { hasText: "live" }).waitFor();
    await workerRow().first().waitFor();
    assert.equal(await workerRow().count(), 1);
    const row = workerRow().first();
    assert.match((await row.getAttribute("data-worker-id")) ?? "", /-w0$/);
    assert.equal(await row.locator("[data-testid=worker-state]").textContent(), "alive");
    assert.match((await row.textContent()) ?? "", /0\/1.*zone=a/);
  });

  it("shows a task move from queued to succeeded without a reload", async () => {
    await page.evaluate('window.marker = "same page"');
    const blocker = await client.submit("sleep", { ms: 1500 });
    const id = await client.submit("echo", { shown: "live" });
    await taskState(id).filter({ hasText: "queued" }).waitFor();
    await taskState(blocker).filter({ hasText: /assigned|running/ }).waitFor();
    await taskState(id).filter({ hasText: "succeeded" }).waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate("window.marker"), "same page", "the page was not reloaded");
    // Let the charts collect a few samples, then keep a picture of the overview.
    await page.waitForTimeout(2500);
    await page.screenshot({ path: path.join(artifacts, "dashboard-overview.png"), fullPage: true });
  });

  it("filters the task list by state", async () => {
    await page.locator("[data-testid=filter-state]").selectOption("succeeded");
    await page.waitForFunction(`(() => {
      const states = [...document.querySelectorAll("[data-testid=tasks] [data-testid=task-state]")].map((e) => e.textContent);
      return states.length > 0 && states.every((s) => s === "succeeded");
    })()`);
    await page.locator("[data-testid=filter-state]").selectOption("");
  });

  it("opens a task page and cancels the task from it", async () => {
    const id = await client.submit("sleep", { ms: 60_000 });
    await page.locator(`[data-testid=tasks] tr[data-task-id="${id}"] a`).click();
    await page.locator("[data-testid=task-page-state]").filter({ hasText: /queued|assigned|running/ }).waitFor();
    assert.match((await page.locator(".facts").textContent()) ?? "", /Payload\d+ B/);
    await page.locator("[data-testid=cancel-task]").click();
    await page.locator("[data-testid=task-page-state]", { hasText: "cancelled" }).waitFor();
    assert.equal((await client.outcome(id)).state, "cancelled");
    assert.match((await page.locator("[data-testid=task-error]").textContent()) ?? "", /cancelled from the dashboard/);
    await page.screenshot({ path: path.join(artifacts, "dashboard-task.png"), fullPage: true });
    await page.locator("a", { hasText: "Overview" }).click();
    await workerRow().first().waitFor();
  });

  it("shows a task's dependencies and the dependents waiting for it, each linked to its page", async () => {
    const dep = await client.submit("sleep", { ms: 60_000 });
    const dependent = await client.submit("echo", { after: "sleep" }, { dependsOn: [dep] });
    await page.goto(`${node.dashboardUrl!}#/tasks/${dependent}`);
    await page.locator("[data-testid=waiting-reason]", { hasText: `waiting for 1 of 1 dependencies: ${dep}` }).waitFor();
    await page.locator("[data-testid=depends-on] li", { hasText: dep }).waitFor();
    await page.locator(`[data-testid=depends-on] a[href="#/tasks/${dep}"]`).click();
    await page.locator("[data-testid=dependents] li", { hasText: dependent }).filter({ hasText: "queued" }).waitFor();
    await page.screenshot({ path: path.join(artifacts, "dashboard-graph.png"), fullPage: true });
    await client.cancel(dep, "graph test over");
    assert.equal((await client.outcome(dependent)).state, "cancelled");
    await page.locator("a", { hasText: "Overview" }).click();
    await workerRow().first().waitFor();
  });

  it("lists the schedules with their next firing time", async () => {
    const created = await client.schedules.create({ id: "dash-nightly", type: "echo", cron: "0 2 * * *", timezone: "Europe/Paris" });
    const next = new Date(Number(created.nextFireTime!.seconds) * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    const cell = page.locator(`[data-testid=schedules] tr[data-schedule-id="dash-nightly"] [data-testid=next-firing]`);
    await cell.filter({ hasText: next }).waitFor({ timeout: 10_000 });
    assert.match((await cell.textContent()) ?? "", /\(in \d+ (s|min|h)\)$/);
    assert.match((await page.locator(`[data-testid=schedules] tr[data-schedule-id="dash-nightly"]`).textContent()) ?? "", /0 2 \* \* \* \(Europe\/Paris\)/);
    await page.screenshot({ path: path.join(artifacts, "dashboard-schedules.png"), fullPage: true });
    await client.schedules.delete("dash-nightly");
  });

  it("drains a worker from the workers table", async () => {
    // A running task keeps the worker in the draining state long enough to see it.
    const running = await client.submit("sleep", { ms: 2000 });
    await taskState(running).filter({ hasText: /assigned|running/ }).waitFor();
    const row = workerRow().first();
    const workerId = (await row.getAttribute("data-worker-id"))!;
    await row.getByRole("button", { name: "Drain" }).click();
    await row.getByRole("button", { name: "Confirm drain" }).click();
    await page.locator(`tr[data-worker-id="${workerId}"] [data-testid=worker-state]`, { hasText: "draining" }).waitFor();
    const state = await client.clusterState();
    assert.equal(state.workers.find((w) => w.workerId === workerId)?.state, 4, "the control node has it draining");
    assert.equal((await client.outcome(running)).state, "succeeded", "a draining worker finishes what it runs");
  });
});
