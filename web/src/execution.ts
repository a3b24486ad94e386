// One execution: its header and counts, its DAG, its actions, its history, its log, and a Stop button
// (writers only). Live from WatchExecution: every message redraws the page from the
// execution it carries; when the stream breaks (a server restart, a lost connection) it
// resumes from the last revision shown, so no change is missed and none is shown twice.
import type { JsonValue } from "@bufbuild/protobuf";
import { api, cancelled, currentRole, describe, needsToken } from "./api";
import { actionStat, drawDag } from "./dag";
import { h, replace } from "./dom";
import { History } from "./history";
import { ExecutionStatus, WatchEventKind, type Execution } from "./gen/workflow/executions/v1/executions_pb";
import { actionStatusName, executionStatusName, isTerminal } from "./status";
import { formatTime, zone } from "./time";

const RETRY_MS = 1000;

/** Renders execution `id` into `main` until `signal` aborts. */
export function showExecution(main: HTMLElement, id: string, signal: AbortSignal, onNeedToken: () => void): void {
  const header = h("section", { class: "summary", "aria-label": "Execution" });
  const problem = h("p", { class: "problem", role: "alert" });
  const picture = h("section", { class: "picture", "aria-label": "Workflow" });
  const actions = h("section", { class: "actions", "aria-label": "Actions" });
  const log = h("section", { class: "log", "aria-label": "Log" });
  const history = new History(id, signal, onNeedToken);
  replace(main, h("p", {}, h("a", { href: "#/" }, "← All executions")), header, problem, picture, actions, history.element, log);

  let current: Execution | undefined;
  let canStop = false;
  const draw = () => {
    if (!current) return;
    drawHeader(header, current, canStop, (reason) => stop(reason));
    replace(picture, h("h2", {}, "Workflow"), h("div", { class: "canvas" }, drawDag(current)));
    drawActions(actions, current);
    drawLog(log, current.log);
    history.follow(current.revision);
  };
  const stop = async (reason: string) => {
    try {
      current = await api.stopExecution({ id, reason, timeZone: zone() }, { signal });
      problem.textContent = "";
      draw();
    } catch (error) {
      if (needsToken(error)) return onNeedToken();
      if (!cancelled(error)) problem.textContent = `Stop failed: ${describe(error)}`;
    }
  };

  currentRole()
    .then((role) => {
      canStop = role === "writer";
      draw();
    })
    .catch((error: unknown) => {
      if (needsToken(error)) onNeedToken();
    });

  const follow = async () => {
    while (!signal.aborted) {
      try {
        const since = current?.revision ?? 0n;
        for await (const event of api.watchExecution({ id, sinceRevision: since, timeZone: zone() }, { signal })) {
          if (event.kind === WatchEventKind.HEARTBEAT || !event.execution) continue;
          if (current && event.revision <= current.revision) continue;
          current = event.execution;
          problem.textContent = "";
          draw();
        }
        // The stream ends with OK after the terminal state: nothing will change again.
        if (current && isTerminal(current.status)) return;
      } catch (error) {
        if (signal.aborted || cancelled(error)) return;
        if (needsToken(error)) return onNeedToken();
        problem.textContent = `${describe(error)} (retrying)`;
        if (!current) {
          // Not found, a malformed id, ...: retrying will not help.
          if (!describe(error).startsWith("Unavailable")) return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  };
  void follow();
}

function drawHeader(into: HTMLElement, e: Execution, canStop: boolean, stop: (reason: string) => void): void {
  const status = executionStatusName(e.status);
  const facts: [string, string][] = [
    ["Id", e.id],
    ["Hashid", e.hashid],
    ["Key", e.key],
    ["Tenant", e.userKey],
    ["Created", e.createdAtString],
    ["Revision", e.revision.toString()],
    [
      "Actions",
      `${e.actionsCount}: ${e.idleActionsCount} idle, ${e.scheduledActionsCount} scheduled, ${e.runningActionsCount} running, ` +
        `${e.completedActionsCount} completed, ${e.failedActionsCount} failed, ${e.stoppedActionsCount} stopped`,
    ],
  ];
  if (e.stopReason) facts.push(["Stop reason", e.stopReason]);
  const list = h("dl", { class: "facts" });
  for (const [term, value] of facts) list.append(h("dt", {}, term), h("dd", {}, value));
  const data = e.executionData ? h("details", {}, h("summary", {}, "execution_data"), h("pre", {}, JSON.stringify(e.executionData, null, 2))) : null;
  const stopButton = canStop && e.status === ExecutionStatus.RUNNING ? stopControl(stop) : null;
  replace(
    into,
    h("h1", {}, h("span", { class: "name" }, e.name || e.hashid), " ", h("span", { class: `badge status-${status}`, "data-testid": "execution-status" }, status)),
    stopButton,
    list,
    data,
  );
}

/** The Stop button, and the dialog that asks for confirmation and a reason. */
function stopControl(stop: (reason: string) => void): HTMLElement {
  const reason = h("input", { type: "text", name: "reason", required: true, maxlength: 1000, value: "stopped from the dashboard" });
  const dialog = h(
    "dialog",
    { "aria-labelledby": "stop-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "stop-title" }, "Stop this execution?"),
      h("p", {}, "Every idle, scheduled or running action becomes stopped. This cannot be undone."),
      h("label", {}, "Reason ", reason),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
        h("button", { type: "submit", value: "stop", class: "danger" }, "Stop execution"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "stop") stop(reason.value.trim());
    dialog.remove();
  });
  const open = h("button", { type: "button", class: "danger", onclick: () => { document.body.append(dialog); dialog.showModal(); } }, "Stop…");
  return h("div", { class: "controls" }, open);
}

function drawActions(into: HTMLElement, e: Execution): void {
  const nodes = (e.template?.nodes ?? []).filter((n) => n.type !== "Start");
  const rows = nodes.map((node) => {
    const stat = actionStat(e, node.id);
    const status = stat ? actionStatusName(stat.status) : "idle";
    return h(
      "tr",
      { "data-node": node.id, "data-status": status },
      h("td", {}, node.id),
      h("td", {}, node.name),
      h("td", {}, node.type),
      h("td", {}, h("span", { class: `badge action-${status}` }, status)),
      h("td", {}, formatTime(stat?.scheduledAt)),
      h("td", {}, formatTime(stat?.startedAt)),
      h("td", {}, formatTime(stat?.completedAt ?? stat?.failedAt ?? stat?.stoppedAt)),
      h("td", { class: "note" }, stat?.failureNote ?? ""),
    );
  });
  replace(
    into,
    h("h2", {}, "Actions"),
    h(
      "table",
      { class: "actions-table" },
      h("thead", {}, h("tr", {}, ...["Node", "Name", "Type", "Status", "Scheduled", "Started", "Ended", "Failure note"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...rows),
    ),
  );
}

function drawLog(into: HTMLElement, log: { [key: string]: JsonValue } | undefined): void {
  const entries = Object.entries(log ?? {});
  replace(
    into,
    h("h2", {}, "Log"),
    entries.length
      ? h("dl", { class: "log-entries" }, ...entries.flatMap(([node, value]) => [h("dt", {}, node), h("dd", {}, h("pre", {}, JSON.stringify(value, null, 2)))]))
      : h("p", { class: "muted" }, "No action has reported a log."),
  );
}
