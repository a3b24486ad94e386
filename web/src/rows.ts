// The list's rows as a feed keeps them: the newest executions that match, newest first
// (the server's order: creation time, then id, which is a UUIDv7 and so follows it), at
// most `limit` of them. Pure: the feed (feed.ts) feeds it, the list (list.ts) reads it.
//
// What it holds is always a prefix of that order: the newest `size` matching executions,
// none missing. That stays true because every change to a matching execution comes
// through the feed (an UPDATE), a row is dropped only from the old end, and an UPDATE
// about an execution older than the oldest row is ignored once rows have been dropped
// (it may be older than executions that were dropped and do not change again).
import type { Execution } from "./gen/workflow/executions/v1/executions_pb";

// Creation times as numbers, parsed once per message (every UPDATE compares with each row).
const createdMs = new WeakMap<Execution, number>();

function created(e: Execution): number {
  let ms = createdMs.get(e);
  if (ms === undefined) {
    ms = Date.parse(e.createdAtUtc);
    createdMs.set(e, ms);
  }
  return ms;
}

/** Whether `a` comes before `b` in the list (it is newer). */
export function newer(a: Execution, b: Execution): boolean {
  const ta = created(a);
  const tb = created(b);
  return ta !== tb ? ta > tb : a.id > b.id;
}

/** The newest matching executions, newest first, at most `limit`. */
export class NewestRows {
  private rows: Execution[] = [];
  /** Whether every matching execution is held (none was dropped or left out). */
  complete = true;
  /** Rows dropped from the old end since the last reset. */
  dropped = 0;

  constructor(readonly limit: number) {}

  /** How many rows are held. */
  get size(): number {
    return this.rows.length;
  }

  /**
   * Starts again from a feed's snapshot; `complete` when the snapshot holds every matching
   * execution (it was not bounded by a creation time).
   */
  reset(snapshot: Execution[], complete: boolean): void {
    this.rows = [...snapshot].sort((a, b) => (newer(a, b) ? -1 : newer(b, a) ? 1 : 0));
    this.complete = complete;
    this.trim();
    this.dropped = 0;
  }

  /**
   * Applies an UPDATE: replaces the row of the same id, inserts a new one in order, or
   * removes the row (`left`: it no longer matches). Whether the rows changed.
   */
  apply(e: Execution, left: boolean): boolean {
    const at = this.rows.findIndex((r) => r.id === e.id);
    if (at >= 0) {
      // A resumed feed may repeat a state already shown; never go back to an older one.
      if (e.revision < this.rows[at]!.revision) return false;
      this.rows.splice(at, 1);
    }
    if (left) return at >= 0;
    const oldest = this.rows[this.rows.length - 1];
    if (at < 0 && !this.complete && (!oldest || newer(oldest, e))) return false;
    const before = this.rows.findIndex((r) => newer(e, r));
    this.rows.splice(before < 0 ? this.rows.length : before, 0, e);
    this.trim();
    return true;
  }

  /** Up to `n` rows older than `after` (from the newest without it), and whether more follow. */
  page(after: Execution | undefined, n: number): { rows: Execution[]; more: boolean } {
    let start = 0;
    if (after) {
      start = this.rows.findIndex((r) => newer(after, r));
      if (start < 0) start = this.rows.length;
    }
    return { rows: this.rows.slice(start, start + n), more: start + n < this.rows.length };
  }

  private trim(): void {
    while (this.rows.length > this.limit) {
      this.rows.pop();
      this.dropped++;
      this.complete = false;
    }
  }
}
