// An execution's history (ListExecutionEvents): one row per thing a change changed,
// newest first, a page at a time. It is read again from the top whenever the execution's
// revision moves, so it follows the live page.
import { api, cancelled, describe, needsToken } from "./api";
import { h, replace } from "./dom";
import {
  ExecutionEventKind,
  SortOrder,
  type ExecutionEvent,
} from "./gen/workflow/executions/v1/executions_pb";
import { actionStatusName } from "./status";
import { formatTime } from "./time";

const PAGE_SIZE = 50;

/** The history panel of one execution. */
export class History {
  readonly element = h("section", { class: "history", "aria-label": "History" });
  private readonly rows = h("tbody", {});
  private readonly more = h("button", { type: "button", hidden: true }, "Older events");
  private readonly problem = h("p", { class: "problem", role: "alert" });
  private next = "";
  private shownRevision = -1n;
  /** Reads from the top begun so far: an answer to an older one, arriving after a newer
   * one began, is stale (answers may arrive out of order) and is dropped. */
  private readsFromTop = 0;

  constructor(
    private readonly id: string,
    private readonly signal: AbortSignal,
    private readonly onNeedToken: () => void,
  ) {
    this.more.addEventListener("click", () => void this.load(false));
    replace(
      this.element,
      h("h2", {}, "History"),
      this.problem,
      h(
        "table",
        { class: "history-table" },
        h("thead", {}, h("tr", {}, ...["Revision", "When", "What", "Node", "Change", "Note", "By"].map((t) => h("th", { scope: "col" }, t)))),
        this.rows,
      ),
      this.more,
    );
  }

  /** Reads the newest events again when `revision` is one this panel has not shown. */
  follow(revision: bigint): void {
    if (revision === this.shownRevision) return;
    this.shownRevision = revision;
    void this.load(true);
  }

  private async load(fromTop: boolean): Promise<void> {
    const read = fromTop ? ++this.readsFromTop : this.readsFromTop;
    try {
      const page = await api.listExecutionEvents(
        { executionId: this.id, pageSize: PAGE_SIZE, pageToken: fromTop ? "" : this.next, order: SortOrder.DESCENDING },
        { signal: this.signal },
      );
      // A newer read from the top began meanwhile: its answer is the one to show.
      if (read !== this.readsFromTop) return;
      this.problem.textContent = "";
      if (fromTop) this.rows.replaceChildren();
      this.rows.append(...page.events.map(row));
      this.next = page.nextPageToken;
      this.more.hidden = !this.next;
    } catch (error) {
      if (this.signal.aborted || cancelled(error)) return;
      if (needsToken(error)) return this.onNeedToken();
      this.problem.textContent = `History: ${describe(error)}`;
    }
  }
}

/** "action completed" for ACTION_COMPLETED, and so on. */
function kindName(kind: ExecutionEventKind): string {
  return (ExecutionEventKind[kind] ?? "UNSPECIFIED").toLowerCase().replace("_", " ");
}

function row(event: ExecutionEvent): HTMLTableRowElement {
  const change = event.nodeId && event.toStatus ? `${actionStatusName(event.fromStatus)} → ${actionStatusName(event.toStatus)}` : "";
  const note = [event.failureNote, event.stopReason, event.scheduledAt ? `for ${formatTime(event.scheduledAt)}` : ""].filter(Boolean).join(" ");
  return h(
    "tr",
    { "data-kind": ExecutionEventKind[event.kind] ?? "", "data-revision": event.revision.toString() },
    h("td", {}, event.revision.toString()),
    h("td", {}, formatTime(event.occurredAt)),
    h("td", {}, kindName(event.kind)),
    h("td", {}, event.nodeId),
    h("td", {}, change),
    h("td", { class: "history-note" }, note),
    h("td", {}, event.actor || event.requestId),
  );
}
