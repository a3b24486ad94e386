// The executions list: filters (status, key, tenant, execution_data), newest first, paged,
// with counts by status. It stays live by reading the page again every 400 ms while the
// tab is visible: a browser on plain HTTP speaks HTTP/1.1, where each open watch stream
// holds one of the six connections a page may have, so watching every row shown is not
// an option (a fleet feed, WatchExecutions, will replace the polling once the API has it).
import type { JsonObject } from "@bufbuild/protobuf";
import { api, cancelled, describe, needsToken } from "./api";
import { h, replace } from "./dom";
import { ExecutionStatus, ExecutionView, type Execution } from "./gen/workflow/executions/v1/executions_pb";
import { EXECUTION_STATUSES, executionStatusName } from "./status";
import { zone } from "./time";

const PAGE_SIZE = 25;
const REFRESH_MS = 400;

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
  const tokens: string[] = [""]; // page tokens: [0] is the first page
  let page = 0;
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
    { class: "executions" },
    h("caption", { class: "visually-hidden" }, "Executions, newest first"),
    h("thead", {}, h("tr", {}, ...["Execution", "Name", "Key", "Tenant", "Status", "Progress", "Created"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  const newer = h("button", { type: "button", disabled: true }, "← Newer");
  const older = h("button", { type: "button", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "page" }, "page 1");
  newer.addEventListener("click", () => { if (page > 0) { page--; refresh(); } });
  older.addEventListener("click", () => { if (tokens[page + 1]) { page++; refresh(); } });
  replace(main, h("h1", {}, "Executions"), form, counts, problem, table, h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older));

  const data = parseData(filters.data);
  if (typeof data === "string") {
    problem.textContent = data;
    return;
  }
  const common = { key: filters.key, userKey: filters.tenant, executionData: data };

  let timer: number | undefined;
  let running = false;
  const refresh = async () => {
    if (running || signal.aborted) return;
    running = true;
    window.clearTimeout(timer);
    try {
      const [list, count] = await Promise.all([
        api.listExecutions(
          { ...common, statuses: filters.statuses, pageSize: PAGE_SIZE, pageToken: tokens[page], view: ExecutionView.BASIC, timeZone: zone() },
          { signal },
        ),
        api.countExecutions(common, { signal }),
      ]);
      if (signal.aborted) return;
      problem.textContent = "";
      tokens[page + 1] = list.nextPageToken;
      tokens.length = page + 2;
      newer.disabled = page === 0;
      older.disabled = !list.nextPageToken;
      pageLabel.textContent = `page ${page + 1}`;
      showCounts(counts, count.countsByStatus, count.count, filters.statuses);
      const shown = list.executions.map((e) => `${e.id}:${e.revision}`).join(",");
      if (shown !== lastShown) {
        lastShown = shown;
        replace(body, ...(list.executions.length ? list.executions.map(row) : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No execution matches."))]));
      }
    } catch (error) {
      if (cancelled(error) || signal.aborted) return;
      if (needsToken(error)) {
        onNeedToken();
        return;
      }
      problem.textContent = describe(error);
    } finally {
      running = false;
      if (!signal.aborted) timer = window.setTimeout(tick, REFRESH_MS);
    }
  };
  const tick = () => {
    if (document.hidden) timer = window.setTimeout(tick, REFRESH_MS);
    else void refresh();
  };
  signal.addEventListener("abort", () => window.clearTimeout(timer));
  void refresh();
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
