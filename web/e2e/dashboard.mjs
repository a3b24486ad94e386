// The dashboard in a real browser: Debian's Chromium driven by playwright-core against
// real servers that tests/it/dashboard.rs starts (or any you start yourself):
//
//   DASHBOARD_URL=http://127.0.0.1:50051 \
//   DASHBOARD_TOKENS_URL=http://127.0.0.1:50052 DASHBOARD_WRITER_TOKEN=... DASHBOARD_READER_TOKEN=... \
//   SCREENSHOT_DIR=/tmp/shots node e2e/dashboard.mjs
//
// The test makes its own calls (start, report progress, read back) over gRPC-Web from
// Node with the client generated from proto/ (e2e/gen, `npm run generate`), and checks
// what the page shows, and how fast. It prints one JSON line last: what it checked and
// the execution it stopped, which the Rust test reads back over gRPC.
//
// It also watches every call the page makes (the list must live on WatchExecutions and
// never call ListExecutions) and can break the page's WatchExecutions streams on demand
// (window.__feeds, installed before the page's own script) to see the list resume.
import { readFileSync, mkdirSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, fromJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { chromium } from "playwright-core";
import {
  ActionStatus,
  ExecutionService,
  ExecutionStatus,
  StartExecutionRequestSchema,
  WatchExecutionsRequestSchema,
} from "./gen/workflow/executions/v1/executions_pb.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const LIVE_MS = 1000; // the page must show each change within this
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const baseUrl = env("DASHBOARD_URL");
const tokensUrl = process.env.DASHBOARD_TOKENS_URL;
const shots = env("SCREENSHOT_DIR", join(tmpdir(), "dashboard-screenshots"));
mkdirSync(shots, { recursive: true });
const chromiumPath = env("CHROMIUM", "/usr/bin/chromium");

const checks = [];
const check = (what, ok, detail = "") => {
  checks.push(what);
  if (!ok) throw new Error(`FAILED: ${what}${detail ? `: ${detail}` : ""}`);
  console.log(`ok - ${what}${detail ? ` (${detail})` : ""}`);
};

function clientOf(url, token) {
  const interceptors = token
    ? [(next) => async (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }]
    : [];
  return createClient(ExecutionService, createGrpcWebTransport({ baseUrl: url, useBinaryFormat: true, interceptors }));
}

function example(name, overrides = {}) {
  const json = JSON.parse(readFileSync(join(repo, "examples", name), "utf8"));
  return { ...fromJson(StartExecutionRequestSchema, json), ...overrides };
}

/**
 * How long until `selector` matches in `page` (fails past `limit` ms). Timed in the page,
 * checked every animation frame, so the figure is the page's delay, not the poller's.
 */
async function timeUntil(page, selector, what, limit = LIVE_MS) {
  const started = performance.now();
  try {
    await page.waitForFunction((s) => document.querySelector(s) !== null, selector, { polling: "raf", timeout: 10_000 });
  } catch {
    check(what, false, "never shown within 10 s");
  }
  const took = Math.round(performance.now() - started);
  check(what, took <= limit, `${took} ms`);
  return took;
}

/** How long until nothing matches `selector` in `page` (fails past `limit` ms). */
async function timeUntilGone(page, selector, what, limit = LIVE_MS) {
  const started = performance.now();
  try {
    await page.waitForFunction((s) => document.querySelector(s) === null, selector, { polling: "raf", timeout: 10_000 });
  } catch {
    check(what, false, "still shown after 10 s");
  }
  const took = Math.round(performance.now() - started);
  check(what, took <= limit, `${took} ms`);
  return took;
}

/**
 * Runs in every page before its own script (through the DevTools protocol, outside the
 * page's CSP): wraps fetch so that the test can cut the page's WatchExecutions streams
 * (`__feeds.cut()`: each open one errors, as on a lost connection, and new ones wait)
 * and let them through again (`__feeds.restore()`). Other calls pass untouched.
 */
function feedFaults() {
  const realFetch = window.fetch.bind(window);
  const open = new Set();
  const waiting = [];
  let cut = false;
  window.__feeds = {
    cut() {
      cut = true;
      for (const stream of open) stream.cut();
      open.clear();
    },
    restore() {
      cut = false;
      for (const go of waiting.splice(0)) go();
    },
    waiting: () => waiting.length,
  };
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (!url.endsWith("/WatchExecutions")) return realFetch(input, init);
    if (cut) await new Promise((go) => waiting.push(go));
    const response = await realFetch(input, init);
    if (!response.body) return response;
    const reader = response.body.getReader();
    let stream;
    const body = new ReadableStream({
      start(controller) {
        stream = {
          cut() {
            controller.error(new TypeError("connection cut by the test"));
            reader.cancel().catch(() => {});
          },
        };
        open.add(stream);
      },
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            open.delete(stream);
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (error) {
          open.delete(stream);
          try {
            controller.error(error);
          } catch {
            // Already cut.
          }
        }
      },
      cancel(reason) {
        open.delete(stream);
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

const userData = mkdtempSync(join(tmpdir(), "dashboard-chromium-"));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
  timezoneId: "Europe/Paris",
});
await context.addInitScript(feedFaults);
const dialogs = [];
const problems = [];
// Every RPC the pages make: { method, request body (a gRPC-Web frame) }.
const calls = [];
const callsOf = (method) => calls.filter((c) => c.method === method);
const feedRequest = (call) => fromBinary(WatchExecutionsRequestSchema, call.body.subarray(5));
const watch = (page) => {
  page.on("request", (request) => {
    const method = /\/workflow\.executions\.v1\.ExecutionService\/(\w+)$/.exec(new URL(request.url()).pathname)?.[1];
    if (method) calls.push({ method, body: request.postDataBuffer() ?? Buffer.alloc(0) });
  });
  page.on("dialog", async (dialog) => {
    // The Stop confirmation is an HTML <dialog>, never a JavaScript one: any alert,
    // confirm or prompt is script that should not have run.
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
};
const axeSource = readFileSync(join(here, "..", "node_modules", "axe-core", "axe.min.js"), "utf8");
async function accessible(page, name) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern (an
  // injected <script> would be refused, as it should).
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(
    `axe-core finds no serious or critical violation on the ${name}`,
    bad.length === 0,
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`).join("; "),
  );
}

let stopped;
let current;
try {
  const api = clientOf(baseUrl);
  const page = context.pages()[0] ?? (await context.newPage());
  current = page;
  watch(page);

  // The page itself: served by the binary, with a policy that allows no inline script.
  const response = await page.goto(`${baseUrl}/`);
  const csp = response.headers()["content-security-policy"] ?? "";
  check("the page is served with a Content-Security-Policy without inline script", csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), csp);
  await page.locator("table.executions tbody tr").first().waitFor();

  // A new execution appears in the list within a second.
  const forkJoin = example("branching.json");
  const started = await api.startExecution(forkJoin);
  await timeUntil(page, `tr[data-id="${started.id}"]`, "a new execution appears in the list within 1 s");
  await page.locator(`.count[data-status="running"] strong`).filter({ hasText: /^[1-9]/ }).waitFor({ timeout: 5000 });
  check("the counts by status count it", true);
  await accessible(page, "list page");
  await page.screenshot({ path: join(shots, "list.png"), fullPage: true });

  // Live from WatchExecutions: a stop turns its row in place, and the counts follow.
  const other = await api.startExecution({ ...forkJoin, name: "stopped while listed" });
  await timeUntil(page, `tr[data-id="${other.id}"][data-status="running"]`, "a second new execution appears in the list within 1 s");
  await api.stopExecution({ id: other.id, reason: "stopped by the test's own client" });
  await timeUntil(page, `tr[data-id="${other.id}"][data-status="stopped"]`, "a stopped execution's row turns stopped within 1 s (an UPDATE)");
  const stoppedNow = (await api.countExecutions({})).countsByStatus["EXECUTION_STATUS_STOPPED"]?.toString();
  await page.locator(`.count[data-status="stopped"] strong`, { hasText: new RegExp(`^${stoppedNow}$`) }).waitFor({ timeout: 2000 });
  check("the counts by status follow the stop", true, `stopped ${stoppedNow}`);

  // A broken stream: the page reconnects with the cursor of the last message it read,
  // and shows what changed while it was away.
  const feedsBefore = callsOf("WatchExecutions").length;
  await page.evaluate(() => window.__feeds.cut());
  await page.locator(`table.executions[data-feed="reconnecting"]`).waitFor({ timeout: 2000 });
  const missed = await api.startExecution({ ...forkJoin, name: "started and stopped while the feed was cut" });
  await api.stopExecution({ id: missed.id, reason: "while the feed was cut" });
  await page.waitForFunction(() => window.__feeds.waiting() > 0, null, { timeout: 5000 });
  await page.evaluate(() => window.__feeds.restore());
  await timeUntil(page, `tr[data-id="${missed.id}"][data-status="stopped"]`, "after its stream is cut, the list reconnects and shows what changed meanwhile within 1 s");
  const resumed = callsOf("WatchExecutions").slice(feedsBefore).map(feedRequest);
  check(
    "it reconnected once, with resume_cursor (no new snapshot)",
    resumed.length === 1 && resumed[0].resumeCursor !== "",
    resumed.map((r) => `resume_cursor=${r.resumeCursor ? "set" : "empty"}`).join(", "),
  );
  await page.locator(`table.executions[data-feed="live"]`).waitFor({ timeout: 2000 });
  check("and says nothing is wrong any more", (await page.locator("p.problem").textContent()) === "");

  // A RUNNING filter (a new feed): a stopped execution leaves the list.
  await page.getByRole("checkbox", { name: "running" }).check();
  await page.waitForFunction(() => location.hash === "#/?status=RUNNING");
  await page.locator(`table.executions[data-feed="live"] tr[data-id="${started.id}"]`).waitFor({ timeout: 5000 });
  check("with a RUNNING filter, stopped executions are not listed", (await page.locator(`tr[data-id="${other.id}"]`).count()) === 0);
  const leaving = await api.startExecution({ ...forkJoin, name: "leaves the RUNNING list" });
  await timeUntil(page, `tr[data-id="${leaving.id}"]`, "with a RUNNING filter, a new execution appears within 1 s");
  await api.stopExecution({ id: leaving.id, reason: "stopped, so no longer RUNNING" });
  await timeUntilGone(page, `tr[data-id="${leaving.id}"]`, "with a RUNNING filter, a stopped execution's row disappears within 1 s (left_filter)");
  const all = await api.countExecutions({});
  const allStopped = all.countsByStatus["EXECUTION_STATUS_STOPPED"]?.toString();
  await page.locator(`.count[data-status="stopped"] strong`, { hasText: new RegExp(`^${allStopped}$`) }).waitFor({ timeout: 2000 });
  check(
    "with a RUNNING filter, the counts still count every status, the filter's marked",
    (await page.locator(".count.total strong").textContent()) === all.count.toString() &&
      (await page.locator(".count.selected").getAttribute("data-status")) === "running",
    `all ${all.count}, stopped ${allStopped}`,
  );
  const feeds = callsOf("WatchExecutions").map(feedRequest);
  check(
    "the list never called ListExecutions: one WatchExecutions per filter, and one to resume",
    callsOf("ListExecutions").length === 0 && feeds.length === 3 && feeds[2].statuses.join() === String(ExecutionStatus.RUNNING),
    `${callsOf("ListExecutions").length} ListExecutions, ${feeds.length} WatchExecutions`,
  );

  // Its page: the DAG at the template's positions, updated live by WatchExecution.
  await page.locator(`tr[data-id="${started.id}"] a`).click();
  await page.locator(`svg.dag g.node[data-node="notify"]`).waitFor();
  const svg = page.locator("svg.dag");
  check("the DAG is drawn on the template's canvas", (await svg.getAttribute("viewBox")) === `0 0 ${forkJoin.template.width} ${forkJoin.template.height}`);
  const accountAt = await page.locator(`g.node[data-node="account"]`).getAttribute("transform");
  check("nodes sit at the template's positions", accountAt === "translate(300 150)", accountAt ?? "");
  const steps = [
    ["account", ActionStatus.RUNNING, "running"],
    ["laptop", ActionStatus.SCHEDULED, "scheduled"],
    ["account", ActionStatus.COMPLETED, "completed"],
    ["welcome", ActionStatus.RUNNING, "running"],
    ["laptop", ActionStatus.RUNNING, "running"],
    ["welcome", ActionStatus.FAILED, "failed"],
    ["workspace", ActionStatus.RUNNING, "running"],
  ];
  const times = [];
  for (const [node, status, shown] of steps) {
    await api.updateAction({
      executionId: started.id,
      nodeId: node,
      status,
      scheduledAt: status === ActionStatus.SCHEDULED ? { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } : undefined,
      failureNote: status === ActionStatus.FAILED ? "SMTP said <b>no</b> & gave up" : "",
      log: node === "laptop" && status === ActionStatus.RUNNING ? { vendor: "<i>acme</i>", attempt: 1 } : undefined,
    });
    times.push(await timeUntil(page, `g.node[data-node="${node}"][data-status="${shown}"]`, `UpdateAction ${node} -> ${shown} turns its node within 1 s`));
    if (node === "laptop" && status === ActionStatus.RUNNING) {
      // The README's picture: the branching example running, its branches apart.
      await page.screenshot({ path: join(shots, "execution-running.png"), fullPage: true });
    }
  }
  check("edges leaving a completed action are drawn open", (await page.locator(`path[data-edge="account-welcome"]`).getAttribute("data-status")) === "open");
  check("edges not yet open are drawn closed", (await page.locator(`path[data-edge="welcome-notify"]`).getAttribute("data-status")) === "closed");
  const title = await page.locator(`g.node[data-node="welcome"] > title`).textContent();
  check("hovering an action shows its times and failure note", /started: /.test(title) && /failed: /.test(title) && title.includes("SMTP said <b>no</b> & gave up"), title);
  check("the failure note is text in the actions table", (await page.locator(`tr[data-node="welcome"] td.note`).textContent()) === "SMTP said <b>no</b> & gave up");
  await page.locator(`.log-entries dt`, { hasText: "laptop" }).waitFor({ timeout: 2000 });
  const logged = await page.locator(".log-entries dd pre").first().textContent();
  check("the log shows each action's last report, as text", logged.includes('"vendor": "<i>acme</i>"') && (await page.locator(".log-entries i").count()) === 0, logged);
  // The history is read again at each new revision: the last change (workspace running)
  // heads it once that read is in.
  await timeUntil(page, `.history-table tbody tr:first-child[data-kind="ACTION_STARTED"]`, "the history shows the newest change first within 1 s");
  const failedEvent = await page.locator(`.history-table tr[data-kind="ACTION_FAILED"]`).textContent();
  check("the history lists each change, newest first, with its note", failedEvent.includes("welcome") && failedEvent.includes("SMTP said <b>no</b> & gave up") && (await page.locator(".history-table tbody tr").first().getAttribute("data-kind")) === "ACTION_STARTED", failedEvent);
  await accessible(page, "execution page");
  await page.screenshot({ path: join(shots, "execution-failed-action.png"), fullPage: true });

  // Times in the zone the person picks: the server's own strings follow it.
  await page.selectOption("#zone", "America/New_York");
  await page.locator("dl.facts dd", { hasText: /E[SD]T$/ }).first().waitFor({ timeout: 5000 });
  check("the time-zone picker asks the server for its times in that zone", true);
  await page.selectOption("#zone", "Europe/Paris");
  await page.locator(`svg.dag g.node[data-node="notify"]`).waitFor();

  // Stop: a confirmation with a reason, then the server's state says STOPPED.
  await page.getByRole("button", { name: "Stop…" }).click();
  await page.locator("dialog[open]").waitFor();
  await page.locator("dialog input[name=reason]").fill("stopped by the browser test");
  await page.getByRole("button", { name: "Stop execution" }).click();
  await page.locator(`[data-testid="execution-status"]`, { hasText: "stopped" }).waitFor({ timeout: 5000 });
  const after = await api.getExecution({ id: started.id });
  check("the Stop button stops the execution (the server says STOPPED, with the reason)", after.status === ExecutionStatus.STOPPED && after.stopReason === "stopped by the browser test", `${ExecutionStatus[after.status]} ${after.stopReason}`);
  check("stopped actions are drawn stopped", (await page.locator(`g.node[data-node="notify"]`).getAttribute("data-status")) === "stopped");
  await page.locator(`.history-table tr[data-kind="EXECUTION_STOPPED"]`, { hasText: "stopped by the browser test" }).waitFor({ timeout: 2000 });
  check("the history shows the stop and its reason", true);
  stopped = started.id;

  // Names are text: markup in a name shows literally and runs nothing.
  const hostile = "<img src=x onerror=alert(1)>";
  const template = structuredClone(forkJoin.template);
  template.nodes.find((n) => n.id === "account").name = `<script>alert(2)</script>`;
  const xss = await api.startExecution({ ...forkJoin, name: hostile, key: `<b>key</b>`, template, executionData: { note: "<svg onload=alert(3)>" } });
  await page.goto(`${baseUrl}/#/`);
  await page.locator(`tr[data-id="${xss.id}"]`).waitFor();
  check("a name made of markup shows literally in the list", (await page.locator(`tr[data-id="${xss.id}"] td.name`).textContent()) === hostile);
  await page.locator(`tr[data-id="${xss.id}"] a`).click();
  await page.locator(`g.node[data-node="account"]`).waitFor();
  check("and as the execution's title", (await page.locator("h1 .name").textContent()) === hostile);
  check("node names made of markup show literally in the DAG", (await page.locator(`g.node[data-node="account"] .node-name`).textContent()).startsWith("<script>"));
  await page.waitForTimeout(300);
  check("no markup from users became an element", (await page.locator("main img, main script, main b, svg.dag foreignObject").count()) === 0);
  check("no dialog was opened by script (nothing ran)", dialogs.length === 0, dialogs.join("; "));
  check("no CSP violation or page error", problems.length === 0, problems.join("; "));

  // Filters and pages: 26 executions of one key, found by key, by execution_data, by
  // status; 25 a page.
  for (let i = 0; i < 26; i++) {
    await api.startExecution({ ...forkJoin, key: "bulk", name: `bulk ${i}`, executionData: { batch: "b", i } });
  }
  await page.goto(`${baseUrl}/#/`);
  await page.locator("input[name=key]").fill("bulk");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => location.hash === "#/?key=bulk");
  await page.locator(`.count.total strong`, { hasText: /^26$/ }).waitFor({ timeout: 5000 });
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-id]").length === 25);
  const names = await page.locator("tbody tr td.name").allTextContents();
  check("a key filter shows that key's executions, newest first, 25 a page", names[0] === "bulk 25" && names[24] === "bulk 1", `${names[0]} .. ${names[24]}`);
  await page.getByRole("button", { name: "Older →" }).click();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-id]").length === 1);
  check("the next page holds the rest", (await page.locator("tbody tr td.name").allTextContents()).join() === "bulk 0");
  await page.getByRole("button", { name: "← Newer" }).click();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-id]").length === 25);
  await page.goto(`${baseUrl}/#/`);
  await page.locator("input[name=data]").fill('{"batch": "b", "i": 7}');
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-id]").length === 1);
  check("an execution_data filter matches on its keys", (await page.locator("tbody tr td.name").textContent()) === "bulk 7");
  await page.goto(`${baseUrl}/#/?status=STOPPED`);
  const stoppedIds = [stopped, other.id, missed.id, leaving.id];
  await page.waitForFunction((n) => document.querySelectorAll("tbody tr[data-id]").length === n, stoppedIds.length);
  const listedStopped = await page.locator("tbody tr[data-id]").evaluateAll((rows) => rows.map((r) => r.dataset.id));
  check("a status filter shows that status only", listedStopped.sort().join() === stoppedIds.sort().join(), listedStopped.join());
  await page.goto(`${baseUrl}/#/?tenant=nobody`);
  await page.locator("td.empty").waitFor();
  check("a tenant filter with no execution says so", true);

  // More matching executions than the list holds (250): it shows the newest 250, from a
  // feed opened again bounded by creation time once the first snapshot ran past 250.
  for (let i = 0; i < 260; i += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => api.startExecution({ ...forkJoin, key: "many", name: `many ${i + j}` })));
  }
  const manyBefore = callsOf("WatchExecutions").length;
  await page.goto(`${baseUrl}/#/?key=many`);
  await page.locator(".held", { hasText: "newest 250" }).waitFor({ timeout: 10_000 });
  const bounded = callsOf("WatchExecutions").slice(manyBefore).map(feedRequest);
  check(
    "past 250 matching, the feed is opened again with created_after",
    bounded.length === 2 && !bounded[0].createdAfter && bounded[1].createdAfter !== undefined,
    bounded.map((r) => `created_after=${r.createdAfter ? r.createdAfter.seconds : "none"}`).join(", "),
  );
  const held = new Set();
  for (let p = 0; p < 12; p++) {
    const ids = await page.locator("tbody tr[data-id]").evaluateAll((rows) => rows.map((r) => r.dataset.id));
    if (p === 0) check("its first page shows 25", ids.length === 25, `${ids.length}`);
    for (const id of ids) held.add(id);
    if (await page.getByRole("button", { name: "Older →" }).isDisabled()) break;
    await page.getByRole("button", { name: "Older →" }).click();
  }
  check("its pages hold the newest 250, 25 a page", held.size === 250, `${held.size}`);
  while (!(await page.getByRole("button", { name: "← Newer" }).isDisabled())) await page.getByRole("button", { name: "← Newer" }).click();
  const newest = await api.startExecution({ ...forkJoin, key: "many", name: "many, newest" });
  await timeUntil(page, `tbody tr:first-child[data-id="${newest.id}"]`, "the bounded feed shows a new execution on top within 1 s");
  await page.close();

  // With tokens: nothing shows before a token is given; a reader sees no Stop button.
  if (tokensUrl) {
    const writer = env("DASHBOARD_WRITER_TOKEN");
    const reader = env("DASHBOARD_READER_TOKEN");
    const secret = await clientOf(tokensUrl, writer).startExecution(example("branching.json", { name: "Secret onboarding" }));
    const locked = await context.newPage();
    current = locked;
    watch(locked);
    await locked.goto(`${tokensUrl}/`);
    await locked.locator("input[name=token]").waitFor();
    await locked.waitForTimeout(700);
    const text = await locked.locator("body").textContent();
    check("with tokens on, the page asks for one and shows no data before", !text.includes("Secret onboarding") && !text.includes(secret.hashid) && (await locked.locator("table.executions tbody tr[data-id]").count()) === 0);
    await accessible(locked, "token prompt");
    await locked.screenshot({ path: join(shots, "token-prompt.png") });
    await locked.locator("input[name=token]").fill(reader);
    await locked.getByRole("button", { name: "Continue" }).click();
    await locked.locator(`tr[data-id="${secret.id}"] a`).click();
    await locked.locator(`body[data-role="reader"]`).waitFor();
    await locked.locator(`g.node[data-node="notify"]`).waitFor();
    check("a reader's token sees the execution but no Stop button", (await locked.getByRole("button", { name: "Stop…" }).count()) === 0);
    const kept = await locked.evaluate(() => sessionStorage.getItem("executions.token"));
    check("the token is kept in the tab's session storage", kept === reader);
    await locked.getByRole("button", { name: "Forget token" }).click();
    await locked.locator("input[name=token]").waitFor();
    await locked.locator("input[name=token]").fill(writer);
    await locked.getByRole("button", { name: "Continue" }).click();
    await locked.locator(`body[data-role="writer"]`).waitFor();
    await locked.getByRole("button", { name: "Stop…" }).waitFor();
    check("a writer's token gets the Stop button", true);

    // A token confined to a tenant sees that tenant's executions only.
    const tenantReader = env("DASHBOARD_TENANT_READER_TOKEN");
    const tenant = env("DASHBOARD_TENANT");
    const theirs = await clientOf(tokensUrl, writer).startExecution(example("branching.json", { name: "Tenant onboarding", userKey: tenant }));
    await locked.getByRole("button", { name: "Forget token" }).click();
    await locked.locator("input[name=token]").fill(tenantReader);
    await locked.getByRole("button", { name: "Continue" }).click();
    await locked.goto(`${tokensUrl}/#/`);
    await locked.locator(`tr[data-id="${theirs.id}"]`).waitFor();
    await locked.waitForTimeout(500);
    check("a token confined to a tenant sees that tenant's executions only", (await locked.locator(`tr[data-id="${secret.id}"]`).count()) === 0 && (await locked.locator("tbody tr[data-id]").count()) === 1);
    check("no CSP violation or page error with tokens", problems.length === 0, problems.join("; "));
  }
  check("no page ever called ListExecutions", callsOf("ListExecutions").length === 0, `${callsOf("ListExecutions").length}`);
} catch (error) {
  // What the page showed when it failed, for the log.
  if (current && !current.isClosed()) {
    await current.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
    console.log(`page at failure (${current.url()}):\n${await current.locator("body").innerText().catch(() => "?")}`);
  }
  console.log(`problems: ${problems.join("; ") || "none"}; dialogs: ${dialogs.join("; ") || "none"}`);
  throw error;
} finally {
  await context.close();
  rmSync(userData, { recursive: true, force: true });
}
console.log(JSON.stringify({ ok: true, checks: checks.length, stopped, screenshots: shots }));
