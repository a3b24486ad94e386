//! `executions watch --all`: follows every execution that matches the filters (the
//! WatchExecutions feed) until interrupted.
//!
//! Two ways to show it:
//! - on a terminal (stdout and stderr both), a table of the matching executions, newest
//!   first, redrawn in place at most ten times a second: an execution joins it on its
//!   SNAPSHOT or first UPDATE, changes with each UPDATE, and leaves it when an UPDATE says
//!   it left the filter. Ctrl-C leaves the last table on the screen, names the cursor to
//!   resume from, and exits 0;
//! - otherwise, or with `--json` (`-o json`), each message as one line of canonical proto3
//!   JSON, the WatchExecutionsResponse exactly as grpcurl prints it, on stdout.
//!
//! Errors and interruptions go to stderr. A stream that breaks off is resumed from its
//! cursor (see [`super::feed`]); a first connection that fails is not.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chrono_tz::Tz;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::feed::{self, Seen};
use super::filters::Filters;
use super::output::{self, execution_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// How often the table is redrawn at most: a busy fleet changes faster than anyone reads.
const REDRAW: Duration = Duration::from_millis(100);

/// How much of each execution `watch --all` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewArg {
    /// Everything but the template, stats, data and log.
    #[default]
    Basic,
    /// Everything.
    Full,
}

/// The settings of `watch` that only `--all` takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FeedArgs {
    /// Which executions (the filters of `list`).
    #[command(flatten)]
    pub filters: Filters,
    /// How much of each execution the server sends (what --json prints).
    #[arg(long, value_enum)]
    pub view: Option<ViewArg>,
    /// Resume from the `cursor` of a message of an earlier `watch --all` with the same
    /// filters: what changed since comes first (instead of every execution that matches
    /// now), then SYNCED.
    #[arg(long, value_name = "CURSOR")]
    pub resume: Option<String>,
}

impl FeedArgs {
    /// The WatchExecutions request these ask for.
    pub fn request(&self, zone_name: String) -> pb::WatchExecutionsRequest {
        let list = self.filters.list_request();
        pb::WatchExecutionsRequest {
            statuses: list.statuses,
            key: list.key,
            user_key: list.user_key,
            created_after: list.created_after,
            created_before: list.created_before,
            execution_data: list.execution_data,
            view: match self.view.unwrap_or_default() {
                ViewArg::Basic => pb::ExecutionView::Basic,
                ViewArg::Full => pb::ExecutionView::Full,
            } as i32,
            time_zone: zone_name,
            resume_cursor: self.resume.clone().unwrap_or_default(),
        }
    }
}

/// Follows the feed until an error that is not worth resuming, or Ctrl-C on a terminal.
pub async fn run(args: FeedArgs, json: bool, client: ClientArgs) -> ExitCode {
    let request = args.request(client.zone_name());
    let on_terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let mut screen =
        (!json && !client.json() && on_terminal).then(|| Screen::new(client.time_zone));
    let messages = feed::follow(client.server.clone(), request);
    let mut messages = std::pin::pin!(messages);
    let mut redraw = tokio::time::interval(REDRAW);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Only the table takes Ctrl-C over: lines of JSON end as any pipeline does.
    let table = screen.is_some();
    let interrupted = async move {
        if table {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut interrupted = std::pin::pin!(interrupted);
    loop {
        tokio::select! {
            seen = messages.next() => match seen {
                Some(Ok(Seen::Message(message))) => match &mut screen {
                    Some(screen) => screen.apply(*message),
                    None => match super::json::line(&*message) {
                        Ok(line) => println!("{line}"),
                        Err(err) => eprintln!("error: {err}"),
                    },
                },
                Some(Ok(Seen::Interrupted { why, resume_cursor })) => {
                    let message = if resume_cursor.is_empty() {
                        format!("stream interrupted ({why}); starting again")
                    } else {
                        format!("stream interrupted ({why}); resuming from cursor {resume_cursor}")
                    };
                    match &mut screen {
                        Some(screen) => screen.interrupted(&message),
                        None => eprintln!("warning: {message}"),
                    }
                }
                Some(Err(error)) => {
                    if let Some(screen) = &screen {
                        screen.bar.finish_and_clear();
                    }
                    eprintln!("error: cannot watch executions: {error}");
                    return ExitCode::from(EXIT_ERROR);
                }
                // Not reached: the feed ends only with an error.
                None => {
                    eprintln!("error: the feed ended");
                    return ExitCode::from(EXIT_ERROR);
                }
            },
            _ = redraw.tick(), if screen.is_some() => {
                if let Some(screen) = &mut screen {
                    screen.draw();
                }
            }
            () = &mut interrupted => {
                if let Some(screen) = &mut screen {
                    screen.leave();
                }
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// The table on a terminal: the executions that match, by id (UUIDv7: by creation time).
struct Screen {
    bar: ProgressBar,
    rows: BTreeMap<String, pb::Execution>,
    zone: Option<Tz>,
    /// Where the feed is: loading, live or reconnecting.
    state: &'static str,
    cursor: String,
    dirty: bool,
}

impl Screen {
    fn new(zone: Option<Tz>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            rows: BTreeMap::new(),
            zone,
            state: "loading",
            cursor: String::new(),
            dirty: true,
        }
    }

    fn apply(&mut self, message: pb::WatchExecutionsResponse) {
        let kind = message.kind();
        self.cursor = message.cursor;
        match (kind, message.execution) {
            (pb::WatchEventKind::Synced, _) => self.state = "live",
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

    fn interrupted(&mut self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
        self.state = "reconnecting";
        self.dirty = true;
    }

    fn draw(&mut self) {
        if std::mem::take(&mut self.dirty) {
            let (height, width) = console::Term::stderr().size();
            self.bar
                .set_message(render(&self.rows, self.state, self.zone, height, width));
        }
    }

    /// Leaves the last table on the screen, and says how to go on from there.
    fn leave(&mut self) {
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
    }
}
