//! `executions watch ID`: follows one execution live and exits with its outcome: 0 when
//! it completes, 1 when it fails, 3 when it is stopped, 4 when it cannot be followed.
//! (`executions watch --all` follows many: see [`super::watch_all`].)
//!
//! Three ways to show it:
//! - on a terminal (stdout and stderr both), a progress bar of completed / total actions
//!   under a line naming the execution, ending on the real final counts;
//! - otherwise (`> file`, `| cat`), one line per event on stdout;
//! - with `--json` (or `-o json`), each event as one line of canonical proto3 JSON, the
//!   WatchExecutionResponse exactly as grpcurl prints it, on stdout.
//!
//! Errors and interruptions always go to stderr, as errors. A stream that ends with
//! UNAVAILABLE is resumed (see [`super::follow`]); a first connection that fails is not.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::follow::{Seen, follow};
use super::output::{self, execution_status};
use super::{ClientArgs, EXIT_ERROR};
use crate::proto::v1 as pb;

/// Settings of `executions watch`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "\
Output: a progress bar on a terminal; one line per event when stdout or stderr is not a
terminal; with --json, one WatchExecutionResponse per line in canonical proto3 JSON (the
JSON grpcurl prints: {\"kind\": \"WATCH_EVENT_KIND_SNAPSHOT\", \"revision\": \"1\",
\"execution\": {\"hashid\": …, \"status\": \"EXECUTION_STATUS_RUNNING\", …}, \"sentAt\": …}).
Exit: 0 completed, 1 failed, 3 stopped, 4 error.

With --all instead of an ID: every execution that matches the filters, until Ctrl-C. On a
terminal, a table redrawn in place (an execution leaves it when it no longer matches);
otherwise, or with --json, one WatchExecutionsResponse per line in canonical proto3 JSON
(SNAPSHOT per matching execution, SYNCED, then UPDATE and HEARTBEAT; each with a cursor
for --resume). Exit: 0 after Ctrl-C, 4 error.")]
// One execution or all of them: either is required, both is a usage error.
#[command(group(clap::ArgGroup::new("what").args(["id", "all"]).required(true)))]
pub struct WatchArgs {
    /// UUID or hashid of the execution.
    #[arg(conflicts_with_all = ["Filters", "view", "resume"])]
    pub id: Option<String>,
    /// Follow every execution that matches the filters below, instead of one.
    #[arg(long)]
    pub all: bool,
    /// One line of canonical proto3 JSON per event (the same as `-o json`).
    #[arg(long)]
    pub json: bool,
    /// Connection and output.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The filters and settings of --all (last: the heading applies to every later flag).
    #[command(flatten, next_help_heading = "With --all")]
    pub feed: super::watch_all::FeedArgs,
}

/// Follows the execution until it reaches a terminal status.
pub async fn run(args: WatchArgs) -> ExitCode {
    let Some(id) = args.id.clone() else {
        return super::watch_all::run(args.feed, args.json, args.client).await;
    };
    let mut view = if args.json || args.client.json() {
        View::Json
    } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
        View::bar()
    } else {
        View::Lines
    };
    let request = pb::WatchExecutionRequest {
        id: id.clone(),
        view: pb::ExecutionView::Basic as i32,
        time_zone: args.client.zone_name(),
        ..Default::default()
    };
    let mut named = false;
    let outcome = follow(&args.client.server, request, |seen| match seen {
        Seen::Event(event) => {
            if let Some(e) = &event.execution
                && !std::mem::replace(&mut named, true)
            {
                view.header(e);
            }
            view.event(event);
        }
        Seen::Interrupted {
            why,
            since_revision,
        } => view.note(&format!(
            "stream interrupted ({why}); resuming from revision {since_revision}"
        )),
    })
    .await;
    match outcome {
        Ok(execution) => {
            view.finish(&execution);
            ExitCode::from(super::wait::exit_code(execution.status()))
        }
        Err(error) => {
            view.clear();
            eprintln!("error: cannot watch {id}: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Where events go.
enum View {
    /// A progress bar on stderr, for a person at a terminal.
    Bar(ProgressBar),
    /// One line per event on stdout.
    Lines,
    /// One JSON line per event on stdout.
    Json,
}

impl View {
    /// A bar drawn from the first event on: before it, an empty bar would read as
    /// `0/0 actions completed`, full.
    fn bar() -> Self {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:40}] {pos}/{len} actions completed  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self::Bar(bar)
    }

    /// Names the execution, once.
    fn header(&self, e: &pb::Execution) {
        let line = format!(
            "watching {}  {}  (key {}, {} actions)",
            e.hashid, e.name, e.key, e.actions_count
        );
        match self {
            Self::Bar(bar) => {
                show_on_bar(bar, e);
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.println(line);
            }
            Self::Lines => println!("{line}"),
            Self::Json => {}
        }
    }

    fn event(&mut self, event: &pb::WatchExecutionResponse) {
        let kind = event
            .kind()
            .as_str_name()
            .trim_start_matches("WATCH_EVENT_KIND_");
        match self {
            Self::Json => match super::json::line(event) {
                Ok(line) => println!("{line}"),
                Err(err) => eprintln!("error: {err}"),
            },
            Self::Lines => match &event.execution {
                Some(e) => println!(
                    "rev {}  {kind}  {}  {}",
                    event.revision,
                    execution_status(e.status()),
                    output::counts(e)
                ),
                None => println!("rev {}  {kind}", event.revision),
            },
            Self::Bar(bar) => {
                if let Some(e) = &event.execution {
                    show_on_bar(bar, e);
                }
            }
        }
    }

    fn note(&self, message: &str) {
        match self {
            Self::Bar(bar) => bar.suspend(|| eprintln!("warning: {message}")),
            _ => eprintln!("warning: {message}"),
        }
    }

    /// The final state, with its real counts.
    fn finish(&self, e: &pb::Execution) {
        match self {
            Self::Bar(bar) => {
                show_on_bar(bar, e);
                // Abandon, not finish: finishing would fill the bar to its length, and
                // a stopped or failed execution did not complete every action.
                bar.abandon();
            }
            Self::Lines => println!(
                "{} {}: {}",
                e.hashid,
                execution_status(e.status()),
                output::counts(e)
            ),
            Self::Json => {}
        }
    }

    /// Takes the bar off the screen, so that an error reads as an error.
    fn clear(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn show_on_bar(bar: &ProgressBar, e: &pb::Execution) {
    bar.set_length(u64::try_from(e.actions_count).unwrap_or_default());
    bar.set_position(u64::try_from(e.completed_actions_count).unwrap_or_default());
    let mut message = execution_status(e.status()).to_owned();
    for (n, name) in [
        (e.scheduled_actions_count, "scheduled"),
        (e.running_actions_count, "running"),
        (e.failed_actions_count, "failed"),
        (e.stopped_actions_count, "stopped"),
    ] {
        message.push_str(&format!("  {name} {n}"));
    }
    message.push_str(&format!("  rev {}", e.revision));
    bar.set_message(message);
}
