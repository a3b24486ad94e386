//! The table of `executions watch --all` on a terminal: the executions that match, newest
//! first, with a line saying how many and where the feed is, cut to the terminal's size
//! and redrawn in place (through indicatif, which rewrites the lines it drew last).
//!
//! It follows the feed's protocol: SNAPSHOT and UPDATE add or change a row (never back
//! to an older revision), an UPDATE with `left_filter` removes it, SYNCED makes it live;
//! a stream that broke before SYNCED starts over, so its SNAPSHOTs replace the rows.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{self, execution_status};
use crate::proto::v1 as pb;

/// The table on a terminal: the executions that match, by id (UUIDv7: by creation time).
pub(super) struct Screen {
    bar: ProgressBar,
    rows: BTreeMap<String, pb::Execution>,
    zone: Option<Tz>,
    /// Where the feed is: loading, live or reconnecting.
    state: &'static str,
    /// A SYNCED came: every cursor from then on resumes (earlier ones start over).
    synced: bool,
    /// The stream broke before SYNCED, so the next one starts over with SNAPSHOTs: the
    /// rows of the broken snapshot go, or one that stopped matching meanwhile would stay.
    starting_over: bool,
    cursor: String,
    dirty: bool,
}

impl Screen {
    /// An empty table, drawn on stderr.
    pub(super) fn new(zone: Option<Tz>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            rows: BTreeMap::new(),
            zone,
            state: "loading",
            synced: false,
            starting_over: false,
            cursor: String::new(),
            dirty: true,
        }
    }

    pub(super) fn apply(&mut self, message: pb::WatchExecutionsResponse) {
        let kind = message.kind();
        self.cursor = message.cursor;
        if std::mem::take(&mut self.starting_over)
            && matches!(
                kind,
                pb::WatchEventKind::Snapshot | pb::WatchEventKind::Synced
            )
        {
            self.rows.clear();
        }
        match (kind, message.execution) {
            (pb::WatchEventKind::Synced, _) => {
                self.state = "live";
                self.synced = true;
            }
            (pb::WatchEventKind::Snapshot | pb::WatchEventKind::Update, Some(e)) => {
                if message.left_filter {
                    self.rows.remove(&e.id);
                } else if self
                    .rows
                    .get(&e.id)
                    .is_none_or(|old| old.revision <= e.revision)
                {
                    self.rows.insert(e.id.clone(), e);
                }
            }
            _ => return,
        }
        self.dirty = true;
    }

    pub(super) fn interrupted(&mut self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
        self.state = "reconnecting";
        self.starting_over = !self.synced;
        self.dirty = true;
    }

    pub(super) fn draw(&mut self) {
        if std::mem::take(&mut self.dirty) {
            let (height, width) = console::Term::stderr().size();
            self.bar
                .set_message(render(&self.rows, self.state, self.zone, height, width));
        }
    }

    /// Takes the table off the screen, so that an error reads as an error.
    pub(super) fn clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Leaves the last table on the screen, and says how to go on from there.
    pub(super) fn leave(&mut self) {
        self.dirty = true;
        self.draw();
        self.bar.abandon();
        if !self.cursor.is_empty() {
            eprintln!(
                "resume from here with the same filters and --resume {}",
                self.cursor
            );
        }
    }
}

/// The screen: a line saying how many match and where the feed is, then the table, newest
/// first, cut to `height` lines of at most `width` characters.
fn render(
    rows: &BTreeMap<String, pb::Execution>,
    state: &str,
    zone: Option<Tz>,
    height: u16,
    width: u16,
) -> String {
    let matching = match rows.len() {
        0 if state != "loading" => "no executions match".to_owned(),
        1 => "1 execution".to_owned(),
        n => format!("{n} executions"),
    };
    let mut text = format!("{matching} · {state}\n");
    // The title, the header, and a line saying how many were left out.
    let room = usize::from(height).saturating_sub(3).max(1);
    let mut table = output::table(&["NAME", "HASHID", "STATUS", "COMPLETED", "UPDATED"]);
    for e in rows.values().rev().take(room) {
        table.add_row(vec![
            e.name.clone(),
            e.hashid.clone(),
            execution_status(e.status()).to_owned(),
            format!("{}/{}", e.completed_actions_count, e.actions_count),
            updated(&e.updated_at_utc, zone),
        ]);
    }
    if !rows.is_empty() {
        text.push_str(&output::render(table));
    }
    if rows.len() > room {
        text.push_str(&format!(
            "… and {} older (a taller terminal shows more)\n",
            rows.len() - room
        ));
    }
    text.lines()
        .map(|line| console::truncate_str(line, usize::from(width), "…"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `updated_at_utc` in `zone` (UTC when none), as the other commands print times.
fn updated(utc: &str, zone: Option<Tz>) -> String {
    match chrono::DateTime::parse_from_rfc3339(utc) {
        Ok(at) => output::timestamp(
            &prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
            },
            zone,
        ),
        Err(_) => utc.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(id: &str, name: &str, status: pb::ExecutionStatus) -> pb::Execution {
        pb::Execution {
            id: id.into(),
            hashid: format!("h{id}"),
            name: name.into(),
            status: status as i32,
            actions_count: 4,
            completed_actions_count: 1,
            updated_at_utc: "2025-10-06T03:49:44Z".into(),
            revision: 2,
            ..Default::default()
        }
    }

    /// Newest first, cut to the terminal's height and width, times in the zone asked for.
    #[test]
    fn the_table_fits_the_terminal() {
        let rows: BTreeMap<String, pb::Execution> = ["01", "02", "03"]
            .into_iter()
            .map(|id| {
                (
                    id.to_owned(),
                    execution(id, "order", pb::ExecutionStatus::Running),
                )
            })
            .collect();
        let text = render(&rows, "live", Some(chrono_tz::America::New_York), 5, 200);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "3 executions · live");
        assert!(lines[1].starts_with("NAME"), "{text}");
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "order",
                "h03",
                "RUNNING",
                "1/4",
                "2025-10-05",
                "23:49:44",
                "EDT"
            ]
        );
        assert!(lines[3].contains(" h02 "), "{text}");
        assert_eq!(lines[4], "… and 1 older (a taller terminal shows more)");
        assert_eq!(
            render(&BTreeMap::new(), "live", None, 5, 80),
            "no executions match · live"
        );
        let narrow = render(&rows, "live", None, 40, 12);
        assert!(
            narrow.lines().all(|l| console::measure_text_width(l) <= 12),
            "{narrow}"
        );
    }

    /// An execution joins on SNAPSHOT or UPDATE, never goes back to an older revision,
    /// and leaves when an UPDATE says it left the filter.
    #[test]
    fn executions_join_change_and_leave() {
        let mut screen = Screen::new(None);
        let message = |kind: pb::WatchEventKind, e: Option<pb::Execution>, left: bool| {
            pb::WatchExecutionsResponse {
                kind: kind as i32,
                execution: e,
                cursor: "c".into(),
                left_filter: left,
                ..Default::default()
            }
        };
        let running = execution("01", "a", pb::ExecutionStatus::Running);
        screen.apply(message(
            pb::WatchEventKind::Snapshot,
            Some(running.clone()),
            false,
        ));
        screen.apply(message(pb::WatchEventKind::Synced, None, false));
        assert_eq!(screen.state, "live");
        let older = pb::Execution {
            revision: 1,
            ..running.clone()
        };
        screen.apply(message(pb::WatchEventKind::Update, Some(older), false));
        assert_eq!(screen.rows["01"].revision, 2);
        let newer = execution("02", "b", pb::ExecutionStatus::Running);
        screen.apply(message(pb::WatchEventKind::Update, Some(newer), false));
        let stopped = pb::Execution {
            status: pb::ExecutionStatus::Stopped as i32,
            revision: 3,
            ..running
        };
        screen.apply(message(pb::WatchEventKind::Update, Some(stopped), true));
        assert_eq!(screen.rows.keys().collect::<Vec<_>>(), ["02"]);
        assert_eq!(screen.cursor, "c");
        // After SYNCED a resumed stream sends what changed: the rows stay.
        screen.interrupted("lost");
        screen.apply(message(pb::WatchEventKind::Synced, None, false));
        assert_eq!(screen.rows.len(), 1);
    }

    /// A stream that broke before SYNCED starts over with SNAPSHOTs, which replace the
    /// rows of the broken one (one that stopped matching meanwhile is not in them).
    #[test]
    fn a_snapshot_that_starts_over_replaces_the_rows() {
        let mut screen = Screen::new(None);
        let snapshot = |id: &str| pb::WatchExecutionsResponse {
            kind: pb::WatchEventKind::Snapshot as i32,
            execution: Some(execution(id, "a", pb::ExecutionStatus::Running)),
            ..Default::default()
        };
        screen.apply(snapshot("01"));
        screen.apply(snapshot("02"));
        screen.interrupted("lost");
        screen.apply(snapshot("02"));
        assert_eq!(screen.rows.keys().collect::<Vec<_>>(), ["02"]);
        screen.interrupted("lost again");
        screen.apply(pb::WatchExecutionsResponse {
            kind: pb::WatchEventKind::Synced as i32,
            ..Default::default()
        });
        assert!(screen.rows.is_empty(), "none match any more");
    }
}
