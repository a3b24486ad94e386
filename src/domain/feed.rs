//! The rules of WatchExecutions, a live feed of every execution that matches a filter:
//! points in commit order (what a cursor holds), what a feed already knows, and whether a
//! changed execution enters, stays in or leaves the feed's filter.
//!
//! Every stored change carries a *mark* (see the `m0004_change_marks` migration): the
//! writing transaction's id on PostgreSQL, a commit counter on SQLite. A [`CommitPoint`]
//! says which marks a snapshot of the database sees. A feed resumes from a point by
//! asking for the executions whose mark that point does not see: a transaction that
//! commits late (it began before the point was handed out) is one the point did not see,
//! so nothing is skipped.

use serde_json::Value;

use super::execution::{Execution, Header};
use super::listing::{Cursor, ListFilter};
use super::status::ExecutionStatus;

/// A point in commit order: the set of changes a snapshot of the database sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitPoint {
    /// Before every change: sees nothing (a feed that starts from scratch).
    Origin,
    /// SQLite: every mark up to and including this one.
    Counter(i64),
    /// PostgreSQL (`pg_current_snapshot()`): every transaction id below `xmin`, and those
    /// below `xmax` that are not `in_progress`.
    Snapshot {
        /// Lowest transaction id still running.
        xmin: i64,
        /// One past the highest transaction id that had finished.
        xmax: i64,
        /// Transactions running when the snapshot was taken, sorted.
        in_progress: Vec<i64>,
    },
}

impl CommitPoint {
    /// True when this point sees the change stamped `mark`.
    pub fn sees(&self, mark: i64) -> bool {
        match self {
            Self::Origin => false,
            Self::Counter(counter) => mark <= *counter,
            Self::Snapshot {
                xmin,
                xmax,
                in_progress,
            } => mark < *xmin || (mark < *xmax && in_progress.binary_search(&mark).is_err()),
        }
    }

    /// True when this point sees every change `other` sees.
    pub fn includes(&self, other: &CommitPoint) -> bool {
        match (self, other) {
            (_, Self::Origin) => true,
            (Self::Counter(a), Self::Counter(b)) => a >= b,
            (
                Self::Snapshot {
                    xmax, in_progress, ..
                },
                other @ Self::Snapshot {
                    xmax: other_xmax, ..
                },
            ) => xmax >= other_xmax && in_progress.iter().all(|xid| !other.sees(*xid)),
            _ => false,
        }
    }

    /// Parses PostgreSQL's text form of a snapshot, `xmin:xmax:xid,xid,...`.
    pub fn from_postgres(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let mut in_progress = parts
            .next()?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect::<Option<Vec<i64>>>()?;
        in_progress.sort_unstable();
        (xmin <= xmax).then_some(Self::Snapshot {
            xmin,
            xmax,
            in_progress,
        })
    }
}

/// What a feed knows: for each stretch of the feed's keyset order (the order of its
/// pages, newest first), the point up to which it has handled every change in that
/// stretch (sent it, or found it not of interest).
///
/// A feed reads the database in pages, each page from a snapshot of its own, so during
/// and right after a catch-up the stretches are known up to different points; the
/// reader's batches then bring them up to one (see [`Knowledge::advance`]). A change is
/// new to the feed exactly when the point of its stretch does not see it: that is how a
/// feed never sends one state twice, so revisions strictly increase per execution on a
/// stream. While a catch-up is under way, the stretches end at the last page read; what
/// lies beyond is [`Seen::Unread`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knowledge {
    /// `(end, point)` in keyset order: the stretch ends at `end` inclusive (`None`: the
    /// end of the order). Ends strictly decrease (newest first); points were taken in
    /// stretch order and only move forward, so they never decrease along the stretches.
    stretches: Vec<(Option<Cursor>, CommitPoint)>,
}

/// What a feed knows of one change of one execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Already handled: the feed sent this state or a newer one, or it was not of
    /// interest.
    Known,
    /// Newer than what the feed has.
    New,
    /// In a stretch the running catch-up has not read yet: it will read its state there.
    Unread,
}

impl Knowledge {
    /// Knows every change `point` sees, everywhere.
    pub fn up_to(point: CommitPoint) -> Self {
        Self {
            stretches: vec![(None, point)],
        }
    }

    /// Knows nothing yet: a catch-up about to read its first page.
    pub fn unread() -> Self {
        Self {
            stretches: Vec::new(),
        }
    }

    /// Adds the stretch a catch-up page covered: everything up to `end` (`None`: to the
    /// end of the order) is known up to `point`, which was taken after every point
    /// already held.
    pub fn read_up_to(&mut self, end: Option<Cursor>, point: CommitPoint) {
        match self.stretches.last_mut() {
            Some((last_end, last_point)) if *last_point == point => *last_end = end,
            _ => self.stretches.push((end, point)),
        }
    }

    /// True once a catch-up has read to the end of the order.
    pub fn is_complete(&self) -> bool {
        self.stretches.last().is_some_and(|(end, _)| end.is_none())
    }

    /// The point everything read is known up to: a cursor that resumes from here misses
    /// nothing (and may repeat what was sent since). `Origin` before anything was read.
    pub fn oldest(&self) -> CommitPoint {
        self.stretches
            .first()
            .map_or(CommitPoint::Origin, |(_, point)| point.clone())
    }

    /// What the feed knows of the change stamped `mark` of the execution at `position`.
    pub fn seen(&self, position: Cursor, mark: i64) -> Seen {
        // Ends strictly decrease: the stretches that end after `position` (newer than
        // it) come first.
        let at = self.stretches.partition_point(|(end, _)| {
            end.is_some_and(|end| !newest_first_not_after(position, end))
        });
        match self.stretches.get(at) {
            None => Seen::Unread,
            Some((_, point)) if point.sees(mark) => Seen::Known,
            Some(_) => Seen::New,
        }
    }

    /// True when the change is already known (see [`Knowledge::seen`]).
    pub fn knows(&self, position: Cursor, mark: i64) -> bool {
        self.seen(position, mark) == Seen::Known
    }

    /// Once every change up to `point` has been handled (a batch of the reader, taken at
    /// `point`, was processed): each stretch whose point `point` includes is known up to
    /// `point`, and neighbours known up to the same point merge.
    pub fn advance(&mut self, point: &CommitPoint) {
        for (_, known) in &mut self.stretches {
            if point.includes(known) && known != point {
                *known = point.clone();
            }
        }
        self.stretches.dedup_by(|later, earlier| {
            let same = later.1 == earlier.1;
            if same {
                earlier.0 = later.0;
            }
            same
        });
    }

    /// Number of stretches (for tests and memory accounting).
    pub fn stretches(&self) -> usize {
        self.stretches.len()
    }
}

/// True when `position` comes at or before `end` in newest-first keyset order.
fn newest_first_not_after(position: Cursor, end: Cursor) -> bool {
    (position.created_at, position.seq) >= (end.created_at, end.seq)
}

/// An execution as a feed reads it after a change.
#[derive(Clone, Debug)]
pub struct Changed {
    /// Its state (with the detail when read for the FULL view).
    pub execution: Execution,
    /// Its data when `execution` has no detail (to match filters on).
    pub data: Option<Value>,
    /// The mark of its last change.
    pub mark: i64,
}

impl Changed {
    /// Its `execution_data`, if any.
    pub fn data(&self) -> Option<&Value> {
        match &self.execution.detail {
            Some(detail) => detail.execution_data.as_ref(),
            None => self.data.as_ref(),
        }
    }

    /// Its position in keyset order.
    pub fn position(&self) -> Cursor {
        Cursor::of(&self.execution.header)
    }
}

/// How a changed execution relates to a feed's filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// It matches: the feed sends its state.
    Matches,
    /// It matched before this change and no longer does: the feed sends its state once,
    /// marked as leaving, then nothing more about it.
    Left,
}

/// How an execution in status `status`, whose other fields match the filter, relates to
/// it. Only the status of an execution changes, and only from RUNNING to a terminal
/// status: an execution that no longer matches left the filter when the filter asked
/// for RUNNING and not for its new, terminal status. `None`: not of interest.
pub fn membership(filter: &ListFilter, status: ExecutionStatus) -> Option<Membership> {
    let wants = |s: ExecutionStatus| filter.statuses.is_empty() || filter.statuses.contains(&s);
    if wants(status) {
        Some(Membership::Matches)
    } else if status.is_terminal() && wants(ExecutionStatus::Running) {
        Some(Membership::Left)
    } else {
        None
    }
}

/// True when the fields of an execution that never change (workflow key, tenant,
/// creation time, data) match the filter: the same test the database makes for
/// ListExecutions, done in memory on a changed execution.
pub fn fixed_fields_match(filter: &ListFilter, header: &Header, data: Option<&Value>) -> bool {
    filter.key.as_ref().is_none_or(|k| *k == header.key)
        && filter
            .user_key
            .as_ref()
            .is_none_or(|u| *u == header.user_key)
        && filter.created_after.is_none_or(|t| header.created_at >= t)
        && filter.created_before.is_none_or(|t| header.created_at < t)
        && filter.execution_data.iter().all(|(key, wanted)| {
            data.and_then(|d| d.get(key))
                .is_some_and(|have| json_equal(have, wanted))
        })
}

/// JSON equality as the databases test it: numbers by value, objects whatever their key
/// order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> CommitPoint {
        CommitPoint::from_postgres(text).unwrap()
    }

    #[test]
    fn a_snapshot_sees_what_had_committed() {
        let s = snapshot("100:105:102,100");
        assert!(s.sees(99));
        assert!(!s.sees(100), "in progress");
        assert!(s.sees(101));
        assert!(!s.sees(102), "in progress");
        assert!(s.sees(104));
        assert!(!s.sees(105), "not yet started");
        assert!(s.sees(0), "rows older than the marks");
        assert!(!CommitPoint::Origin.sees(0));
        assert!(CommitPoint::Counter(7).sees(7));
        assert!(!CommitPoint::Counter(7).sees(8));
        assert_eq!(CommitPoint::from_postgres("5:4:"), None);
        assert_eq!(CommitPoint::from_postgres("junk"), None);
    }

    #[test]
    fn a_later_snapshot_includes_an_earlier_one() {
        let early = snapshot("100:105:100,102");
        let later = snapshot("102:110:102,107");
        // 102 is still running in both: `later` sees all `early` sees.
        assert!(later.includes(&early));
        assert!(!early.includes(&later));
        // 100 committed late: a snapshot where it still runs does not include one that
        // sees it.
        let sees_100 = snapshot("101:106:");
        assert!(!snapshot("100:106:100").includes(&sees_100));
        assert!(CommitPoint::Counter(5).includes(&CommitPoint::Counter(4)));
        assert!(CommitPoint::Counter(5).includes(&CommitPoint::Origin));
        assert!(!CommitPoint::Origin.includes(&CommitPoint::Counter(0)));
    }

    fn at(us: i64, seq: i64) -> Cursor {
        Cursor {
            created_at: chrono::DateTime::from_timestamp_micros(us).unwrap(),
            seq,
        }
    }

    #[test]
    fn knowledge_is_kept_per_stretch_until_points_cover_it() {
        // Newest first: the first page ended at (300, 3), read at counter 10; the second at
        // (200, 2), read at 12; the rest is not read yet.
        let mut k = Knowledge::unread();
        assert_eq!(k.seen(at(400, 4), 0), Seen::Unread);
        assert_eq!(k.oldest(), CommitPoint::Origin);
        k.read_up_to(Some(at(300, 3)), CommitPoint::Counter(10));
        k.read_up_to(Some(at(200, 2)), CommitPoint::Counter(12));
        assert!(!k.is_complete());
        assert_eq!(
            k.seen(at(400, 4), 10),
            Seen::Known,
            "newer than the first end"
        );
        assert_eq!(k.seen(at(400, 4), 11), Seen::New);
        assert_eq!(k.seen(at(300, 3), 10), Seen::Known);
        assert_eq!(k.seen(at(300, 3), 11), Seen::New);
        assert_eq!(k.seen(at(250, 9), 12), Seen::Known, "in the second stretch");
        assert_eq!(k.seen(at(100, 1), 1), Seen::Unread);
        k.read_up_to(None, CommitPoint::Counter(12));
        assert!(k.is_complete());
        assert_eq!(k.stretches(), 2, "the same point as its neighbour: merged");
        assert_eq!(k.seen(at(100, 1), 12), Seen::Known);
        assert_eq!(k.oldest(), CommitPoint::Counter(10));
        k.advance(&CommitPoint::Counter(11));
        assert_eq!(k.stretches(), 2, "11 covers the first stretch only");
        assert_eq!(k.oldest(), CommitPoint::Counter(11));
        k.advance(&CommitPoint::Counter(13));
        assert_eq!(k, Knowledge::up_to(CommitPoint::Counter(13)));
    }

    #[test]
    fn leaving_is_from_running_to_a_status_not_asked_for() {
        use ExecutionStatus::*;
        let running = ListFilter {
            statuses: vec![Running],
            ..ListFilter::default()
        };
        assert_eq!(membership(&running, Running), Some(Membership::Matches));
        assert_eq!(membership(&running, Completed), Some(Membership::Left));
        let finished = ListFilter {
            statuses: vec![Completed, Failed],
            ..ListFilter::default()
        };
        assert_eq!(membership(&finished, Running), None);
        assert_eq!(membership(&finished, Stopped), None, "never matched");
        assert_eq!(membership(&finished, Failed), Some(Membership::Matches));
        assert_eq!(
            membership(&ListFilter::default(), Stopped),
            Some(Membership::Matches)
        );
    }

    #[test]
    fn data_matches_numbers_by_value() {
        let a: Value = serde_json::json!({"n": 1.0, "o": {"x": [1, 2.0]}});
        assert!(json_equal(&a["n"], &serde_json::json!(1)));
        assert!(json_equal(&a["o"], &serde_json::json!({"x": [1.0, 2]})));
        assert!(!json_equal(&a["o"], &serde_json::json!({"x": [1.0]})));
        assert!(!json_equal(&a["n"], &serde_json::json!("1")));
    }
}
