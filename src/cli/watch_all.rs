//! `executions watch --all`: follows every execution that matches the filters (the
//! WatchExecutions feed) until interrupted.
//!
//! Two ways to show it:
//! - on a terminal (stdout and stderr both), a table of the matching executions, newest
//!   first, redrawn in place at most ten times a second (see [`super::watch_table`]): an
//!   execution joins it on its SNAPSHOT or first UPDATE, changes with each UPDATE, and
//!   leaves it when an UPDATE says it left the filter. Ctrl-C leaves the last table on the
//!   screen, names the cursor to resume from, and exits 0;
//! - otherwise, or with `--json` (`-o json`), each message as one line of canonical proto3
//!   JSON, the WatchExecutionsResponse exactly as grpcurl prints it, on stdout.
//!
//! Errors and interruptions go to stderr. A stream that breaks off is resumed from its
//! cursor (see [`super::feed`]); a first connection that fails is not.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

use super::feed::{self, Seen};
use super::filters::Filters;
use super::watch_table::Screen;
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
                        screen.clear();
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
