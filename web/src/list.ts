// The executions list: filters (status, key, tenant, execution_data), newest first, a
// page of 25 at a time, with counts by status. It is live from one WatchExecutions feed
// with the page's filters (feed.ts): the rows come from the feed's snapshot, then each
// UPDATE inserts, replaces or removes its row, so the list makes no ListExecutions call
// at all. One stream holds one of the six connections a page has over HTTP/1.1, which
// leaves the rest for the counts and for the execution page's own stream.
//
// The feed holds the newest LIVE_ROWS (250) matching executions (see feed.ts for why);
// the pages are pages of those. Page 1 is the newest 25 and moves as executions start;
// a later page is anchored to the row it starts after, so its rows stay put while newer
// ones arrive. Counts come from CountExecutions, read again after each burst of updates
// (debounced) and on each HEARTBEAT, so they also catch what the feed's filters hide
// (new executions while the list shows STOPPED ones, say) within a heartbeat.
import type { JsonObject } from "@bufbuild/protobuf";
import { api, cancelled, describe, needsToken } from "./api";
import { h, replace } from "./dom";
import { followExecutions, LIVE_ROWS, type FeedFilter } from "./feed";
import { ExecutionStatus, type Execution } from "./gen/workflow/executions/v1/executions_pb";
import { EXECUTION_STATUSES, executionStatusName } from "./status";

const PAGE_SIZE = 25;
const COUNTS_DEBOUNCE_MS = 250;

/** The filters of the list, as the URL after `#/?` keeps them. */
interface Filters {
  statuses: ExecutionStatus[];
  key: string;
  tenant: string;
  data: string;
}

function readFilters(params: URLSearchParams): Filters {
  const statuses = params
    .getAll("status")
    .map((name) => ExecutionStatus[name.toUpperCase() as keyof typeof ExecutionStatus])
    .filter((s): s is ExecutionStatus => typeof s === "number" && EXECUTION_STATUSES.includes(s));
  return { statuses, key: params.get("key") ?? "", tenant: params.get("tenant") ?? "", data: params.get("data") ?? "" };
}

function writeFilters(f: Filters): string {
  const params = new URLSearchParams();
  for (const status of f.statuses) params.append("status", ExecutionStatus[status]);
  if (f.key) params.set("key", f.key);
  if (f.tenant) params.set("tenant", f.tenant);
  if (f.data) params.set("data", f.data);
  const query = params.toString();
  return query ? `#/?${query}` : "#/";
}

/** The execution_data filter as an object, or an error sentence. */
function parseData(text: string): JsonObject | undefined | string {
  if (!text.trim()) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value as JsonObject;
  } catch {
    // Falls through to the sentence below.
  }
  return 'execution_data must be a JSON object, e.g. {"team": "compilers"}';
}

/** Renders the list into `main` until `signal` aborts; `onNeedToken` when the server asks for one. */
export function showList(main: HTMLElement, params: URLSearchParams, signal: AbortSignal, onNeedToken: () => void): void {
  const filters = readFilters(params);
  // anchors[p] is the row page p starts after (page 0: none, the newest rows).
  const anchors: (Execution | undefined)[] = [undefined];
  let lastShown: string | undefined;

  const statusBoxes = EXECUTION_STATUSES.map((status) =>
    h("input", { type: "checkbox", name: "status", value: ExecutionStatus[status], checked: filters.statuses.includes(status) }),
  );
  const keyInput = h("input", { type: "search", name: "key", value: filters.key, placeholder: "any key", autocomplete: "off" });
  const tenantInput = h("input", { type: "search", name: "tenant", value: filters.tenant, placeholder: "any tenant", autocomplete: "off" });
  const dataInput = h("input", { type: "search", name: "data", value: filters.data, placeholder: '{"team": "compilers"}', autocomplete: "off", class: "wide" });
  const apply = () => {
    const next: Filters = {
      statuses: statusBoxes.filter((b) => b.checked).map((b) => ExecutionStatus[b.value as keyof typeof ExecutionStatus]),
      key: keyInput.value.trim(),
      tenant: tenantInput.value.trim(),
      data: dataInput.value.trim(),
    };
    // A new hash shows the list again (main.ts), which ends this feed and opens one
    // with the new filters.
    location.hash = writeFilters(next);
  };
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter executions", onsubmit: (e: Event) => { e.preventDefault(); apply(); } },
    h("fieldset", {}, h("legend", {}, "Status"), ...statusBoxes.map((box, i) =>
      h("label", { class: "check" }, box, " ", executionStatusName(EXECUTION_STATUSES[i]!)),
    )),
    h("label", {}, "Key ", keyInput),
    h("label", {}, "Tenant ", tenantInput),
    h("label", {}, "execution_data ", dataInput),
    h("button", { type: "submit" }, "Filter"),
  );
  for (const box of statusBoxes) box.addEventListener("change", apply);

  const counts = h("div", { class: "counts", "aria-live": "polite" });
  const problem = h("p", { class: "problem", role: "alert" });
  const body = h("tbody", {});
  const table = h(
    "table",
    { class: "executions", "aria-busy": "true", "data-feed": "connecting" },
    h("caption", { class: "visually-hidden" }, "Executions, newest first"),
    h("thead", {}, h("tr", {}, ...["Execution", "Name", "Key", "Tenant", "Status", "Progress", "Created"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  const newer = h("button", { type: "button", disabled: true }, "← Newer");
  const older = h("button", { type: "button", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "page" }, "page 1");
  const bound = h("span", { class: "muted held" });
  replace(main, h("h1", {}, "Executions"), form, counts, problem, table, h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older, bound));

  const data = parseData(filters.data);
  if (typeof data === "string") {
    problem.textContent = data;
    table.removeAttribute("aria-busy");
    return;
  }
  const filter: FeedFilter = { statuses: filters.statuses, key: filters.key, userKey: filters.tenant, executionData: data };
  const needToken = () => {
    // The feed and the counts may both be refused; the prompt is shown once.
    if (!signal.aborted) onNeedToken();
  };

  // What went wrong, from the feed and from the counts, shown together.
  let feedProblem = "";
  let countProblem = "";
  const showProblem = () => {
    problem.textContent = [feedProblem, countProblem].filter(Boolean).join(" · ");
  };

  let synced = false;
  let frame: number | undefined;
  // Redraws at most once a frame however many messages arrive; not while the tab is
  // hidden (no frames), where the rows still follow the feed and are drawn on return.
  const schedule = () => {
    if (frame === undefined && !signal.aborted) frame = requestAnimationFrame(draw);
  };
  const draw = () => {
    frame = undefined;
    if (!synced) return;
    let shown = rows.page(anchors[anchors.length - 1], PAGE_SIZE);
    while (anchors.length > 1 && shown.rows.length === 0) {
      // Every row of this page left the filter: show the last page that has rows.
      anchors.pop();
      shown = rows.page(anchors[anchors.length - 1], PAGE_SIZE);
    }
    const page = anchors.length - 1;
    newer.disabled = page === 0;
    older.disabled = !shown.more;
    pageLabel.textContent = `page ${page + 1}`;
    bound.textContent = rows.complete ? "" : `(the newest ${LIVE_ROWS} that match; narrow the filters for older ones)`;
    const signature = shown.rows.map((e) => `${e.id}:${e.revision}`).join(",");
    if (signature !== lastShown) {
      lastShown = signature;
      replace(body, ...(shown.rows.length ? shown.rows.map(row) : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No execution matches."))]));
    }
  };
  newer.addEventListener("click", () => {
    if (anchors.length > 1) anchors.pop();
    draw();
  });
  older.addEventListener("click", () => {
    const { rows: current, more } = rows.page(anchors[anchors.length - 1], PAGE_SIZE);
    if (more && current.length) anchors.push(current[current.length - 1]);
    draw();
  });

  const refreshCounts = debounced(COUNTS_DEBOUNCE_MS, signal, async () => {
    try {
      // Every status, the filter's ones marked: the counts say what the other boxes would show.
      const count = await api.countExecutions({ ...filter, statuses: [] }, { signal });
      if (signal.aborted) return;
      countProblem = "";
      showCounts(counts, count.countsByStatus, count.count, filters.statuses);
    } catch (error) {
      if (cancelled(error) || signal.aborted) return;
      if (needsToken(error)) return needToken();
      countProblem = `counts: ${describe(error)}`;
    }
    showProblem();
  });

  const rows = followExecutions(filter, signal, {
    changed: schedule,
    moved: refreshCounts,
    state: (state, sentence) => {
      table.dataset["feed"] = state;
      if (state === "live") synced = true;
      if (state === "live" || state === "failed") table.removeAttribute("aria-busy");
      feedProblem = sentence;
      showProblem();
    },
    needToken,
  });
  const visible = () => {
    if (!document.hidden) schedule();
  };
  document.addEventListener("visibilitychange", visible);
  signal.addEventListener("abort", () => {
    document.removeEventListener("visibilitychange", visible);
    if (frame !== undefined) cancelAnimationFrame(frame);
  });
  refreshCounts();
}

/**
 * `run` at most once per `ms`, the last call winning: a burst of calls runs it once, `ms`
 * after the first; a call while it runs runs it again after. Not while the tab is hidden:
 * then once, when it shows again.
 */
function debounced(ms: number, signal: AbortSignal, run: () => Promise<void>): () => void {
  let timer: number | undefined;
  let running = false;
  let again = false;
  const fire = async () => {
    timer = undefined;
    if (signal.aborted) return;
    if (document.hidden) {
      document.addEventListener("visibilitychange", poke, { once: true });
      return;
    }
    running = true;
    try {
      await run();
    } finally {
      running = false;
      if (again) {
        again = false;
        poke();
      }
    }
  };
  const poke = () => {
    if (running) again = true;
    else if (timer === undefined && !signal.aborted) timer = window.setTimeout(fire, ms);
  };
  signal.addEventListener("abort", () => window.clearTimeout(timer));
  return poke;
}

function showCounts(into: HTMLElement, byStatus: { [key: string]: bigint }, total: bigint, selected: ExecutionStatus[]): void {
  const parts = EXECUTION_STATUSES.map((status) => {
    const n = byStatus[`EXECUTION_STATUS_${ExecutionStatus[status]}`] ?? 0n;
    const name = executionStatusName(status);
    return h("span", { class: `count status-${name}${selected.includes(status) ? " selected" : ""}`, "data-status": name }, `${name} `, h("strong", {}, n.toString()));
  });
  replace(into, h("span", { class: "count total" }, "all ", h("strong", {}, total.toString())), ...parts);
}

function row(e: Execution): HTMLTableRowElement {
  const status = executionStatusName(e.status);
  const done = e.completedActionsCount + e.failedActionsCount + e.stoppedActionsCount;
  return h(
    "tr",
    { "data-id": e.id, "data-hashid": e.hashid, "data-status": status },
    h("td", {}, h("a", { href: `#/e/${encodeURIComponent(e.hashid || e.id)}` }, e.hashid || e.id)),
    h("td", { class: "name" }, e.name),
    h("td", {}, e.key),
    h("td", {}, e.userKey),
    h("td", {}, h("span", { class: `badge status-${status}` }, status)),
    h("td", {}, h("progress", { max: Math.max(e.actionsCount, 1), value: done, "aria-label": `${done} of ${e.actionsCount} actions finished` }), ` ${done}/${e.actionsCount}`),
    h("td", { title: e.createdAtUtc }, e.createdAtString),
  );
}
