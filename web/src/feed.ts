// The list's live feed: one WatchExecutions stream with the page's filters, kept open
// while the page is shown, whose messages keep a NewestRows (rows.ts) current.
//
// How many rows, and why: the list holds the newest LIVE_ROWS matching executions (ten
// pages of 25), not all of them. A feed without bounds first sends a SNAPSHOT of every
// execution that matches, which on a busy server is every execution it keeps; a page
// should not download all of them to show 25. So the feed opens without bounds and, as
// soon as more than LIVE_ROWS snapshots arrive, opens again with `created_after` set to
// the creation second of the LIVE_ROWS-th (the snapshot comes newest first): that feed's
// snapshot is about LIVE_ROWS executions, and every execution created later still
// matches it. Older executions are for narrower filters. Two cases open a new bounded
// feed later: rows leave (a RUNNING filter, executions finishing) until fewer than half
// of LIVE_ROWS remain while older ones may match ("refill"), and many new executions
// pushed rows out of the list while the feed still reports on them ("re-anchor": the
// window only grows, so it is moved up once it covers REANCHOR_AFTER dropped rows).
//
// When the stream breaks (a lost connection, a server restart), it opens again after a
// backoff with `resume_cursor` set to the cursor of the last message (or the one the
// server's shutdown error carries): the server sends what changed meanwhile, so no change
// is missed and the rows are not read again. A break before SYNCED starts over with a
// snapshot (resuming from a snapshot's cursor would replay every execution, matching or
// not). A resume cursor the server refuses (INVALID_ARGUMENT: another database, say) also
// starts over.
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { api, describe, errorMetadata, needsToken } from "./api";
import {
  ExecutionView,
  WatchEventKind,
  type Execution,
  type ExecutionStatus,
} from "./gen/workflow/executions/v1/executions_pb";
import { NewestRows } from "./rows";
import { zone } from "./time";

/** Most rows the list holds. */
export const LIVE_ROWS = 250;
/** Fewer rows than this, with older ones perhaps matching: read the newest again. */
const REFILL_BELOW = LIVE_ROWS / 2;
/** Rows dropped from the old end after which the feed's window is moved up. */
const REANCHOR_AFTER = 4 * LIVE_ROWS;
/** A refill or re-anchor opens at most one feed per this many ms. */
const MIN_REOPEN_MS = 1000;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/** The page's filters, as WatchExecutions (and CountExecutions) take them. */
export interface FeedFilter {
  statuses: ExecutionStatus[];
  key: string;
  userKey: string;
  executionData: JsonObject | undefined;
}

/** Where the feed is: reading its first snapshot, live, between attempts, or given up. */
export type FeedState = "connecting" | "live" | "reconnecting" | "failed";

/** What the list hears from its feed. */
export interface FeedListener {
  /** The rows changed. */
  changed(): void;
  /** Executions changed or time passed (an UPDATE, SYNCED or HEARTBEAT): counts may have moved. */
  moved(): void;
  /** The feed's state, with a sentence when something went wrong. */
  state(state: FeedState, problem: string): void;
  /** The server wants a (different) token. */
  needToken(): void;
}

/** Follows the executions that match `filter` until `signal` aborts; the rows it keeps. */
export function followExecutions(filter: FeedFilter, signal: AbortSignal, on: FeedListener): NewestRows {
  const rows = new NewestRows(LIVE_ROWS);
  void follow(filter, rows, signal, on);
  return rows;
}

async function follow(filter: FeedFilter, rows: NewestRows, signal: AbortSignal, on: FeedListener): Promise<void> {
  let createdAfter: Timestamp | undefined; // the window; none: every matching execution
  let cursor = ""; // where to resume; empty: the next stream starts with a snapshot
  let failures = 0;
  on.state("connecting", "");
  while (!signal.aborted) {
    // Each stream has its own abort, to end it without ending the page.
    const attempt = new AbortController();
    const end = () => attempt.abort();
    signal.addEventListener("abort", end);
    let snapshot: Execution[] | undefined = cursor ? undefined : [];
    let next: "narrow" | "refill" | undefined;
    let problem = "the feed ended";
    const opened = Date.now();
    try {
      const stream = api.watchExecutions(
        { ...filter, createdAfter, view: ExecutionView.BASIC, timeZone: zone(), resumeCursor: cursor },
        { signal: attempt.signal },
      );
      for await (const m of stream) {
        if (m.kind === WatchEventKind.SNAPSHOT && m.execution && snapshot) {
          snapshot.push(m.execution);
          if (!createdAfter && snapshot.length > LIVE_ROWS) {
            createdAfter = creationSecond(snapshot[LIVE_ROWS - 1]!);
            next = "narrow";
            break;
          }
        } else if (m.kind === WatchEventKind.SYNCED) {
          cursor = m.cursor;
          if (snapshot) rows.reset(snapshot, !createdAfter);
          snapshot = undefined;
          failures = 0;
          on.state("live", "");
          on.changed();
          on.moved();
        } else if (m.kind === WatchEventKind.UPDATE && m.execution) {
          cursor = m.cursor;
          if (rows.apply(m.execution, m.leftFilter)) on.changed();
          on.moved();
          if (!rows.complete && (rows.size < REFILL_BELOW || rows.dropped >= REANCHOR_AFTER)) {
            next = "refill";
            break;
          }
        } else if (m.kind === WatchEventKind.HEARTBEAT) {
          cursor = m.cursor;
          on.moved();
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (needsToken(error)) return on.needToken();
      const code = error instanceof ConnectError ? error.code : Code.Unknown;
      if (code === Code.InvalidArgument && cursor) {
        cursor = "";
        continue;
      }
      if (code === Code.InvalidArgument || code === Code.PermissionDenied || code === Code.Unimplemented) {
        // A filter the server refuses, a tenant the token may not see: retrying will not help.
        on.state("failed", describe(error));
        return;
      }
      const resume = errorMetadata(error)["resume_cursor"];
      if (resume && cursor) cursor = resume;
      problem = describe(error);
    } finally {
      signal.removeEventListener("abort", end);
      attempt.abort();
    }
    if (signal.aborted) return;
    if (next === "narrow") continue;
    if (next === "refill") {
      createdAfter = undefined;
      cursor = "";
      await sleep(opened + MIN_REOPEN_MS - Date.now(), signal);
      continue;
    }
    failures++;
    on.state("reconnecting", `${problem} (reconnecting)`);
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (failures - 1));
    // Jitter, so that pages cut off together by a restart do not all come back at once.
    await sleep(backoff * (0.5 + Math.random() / 2), signal);
  }
}

/** The start of the second `e` was created in (created_after includes it). */
function creationSecond(e: Execution): Timestamp {
  return timestampFromMs(Math.floor(Date.parse(e.createdAtUtc) / 1000) * 1000);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const done = () => {
      window.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = window.setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
