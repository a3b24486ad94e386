//! `executions watch <id>`: follows one execution live, as a progress bar of completed /
//! total actions (or, with `--json`, one JSON line per event), and exits with the
//! execution's outcome: 0 when it completes, 1 when it fails, 3 when it is stopped.
//! When the stream ends with UNAVAILABLE (a server shutting down, a lost connection) it
//! reconnects and resumes with `since_revision`, so no change is missed or repeated.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tonic::Code;

use crate::proto::v1 as pb;

/// Exit code when the execution failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the execution was stopped.
pub const EXIT_STOPPED: u8 = 3;
/// Exit code when the watch itself could not go on (bad id, server gone for good, ...).
pub const EXIT_ERROR: u8 = 4;
/// Consecutive failed reconnection attempts before giving up.
const MAX_RECONNECTS: u32 = 30;

/// Settings of `executions watch`.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchArgs {
    /// UUID or hashid of the execution.
    pub id: String,
    /// The server.
    #[command(flatten)]
    pub server: super::connection::ConnectArgs,
    /// Print each event as one JSON line instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

/// Follows the execution until it reaches a terminal status.
pub async fn run(args: WatchArgs) -> ExitCode {
    let mut view = View::new(args.json);
    let mut since_revision = 0;
    let mut failures = 0;
    loop {
        match follow(&args, &mut since_revision, &mut view).await {
            Ok(Some(status)) => {
                view.finish(status);
                return match status {
                    pb::ExecutionStatus::Completed => ExitCode::SUCCESS,
                    pb::ExecutionStatus::Failed => ExitCode::from(EXIT_FAILED),
                    _ => ExitCode::from(EXIT_STOPPED),
                };
            }
            Ok(None) => {
                // Ended with OK but no terminal state: resume.
                failures = 0;
            }
            Err(status) if retryable(&status) && failures < MAX_RECONNECTS => {
                failures += 1;
                view.note(&format!(
                    "stream interrupted ({}); resuming from revision {since_revision}",
                    status.message()
                ));
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
            }
            Err(status) => {
                view.abandon(&status);
                return ExitCode::from(EXIT_ERROR);
            }
        }
    }
}

fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// One stream: returns the terminal status once seen, `None` if the stream ended
/// without it, or the status that ended it.
async fn follow(
    args: &WatchArgs,
    since_revision: &mut i64,
    view: &mut View,
) -> Result<Option<pb::ExecutionStatus>, tonic::Status> {
    let mut client = args
        .server
        .connect()
        .await
        .map_err(tonic::Status::unavailable)?;
    let mut events = client
        .watch_execution(pb::WatchExecutionRequest {
            id: args.id.clone(),
            since_revision: *since_revision,
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    while let Some(event) = events.message().await? {
        *since_revision = (*since_revision).max(event.revision);
        view.show(&event);
        if let Some(execution) = &event.execution {
            let status = execution.status();
            if matches!(
                status,
                pb::ExecutionStatus::Completed
                    | pb::ExecutionStatus::Failed
                    | pb::ExecutionStatus::Stopped
            ) {
                return Ok(Some(status));
            }
        }
    }
    Ok(None)
}

/// Where events go: a progress bar for people, JSON lines for scripts.
enum View {
    Bar(ProgressBar),
    Json,
}

impl View {
    fn new(json: bool) -> Self {
        if json {
            return Self::Json;
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:40}] {pos}/{len} actions completed  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self::Bar(bar)
    }

    fn show(&mut self, event: &pb::WatchExecutionResponse) {
        match self {
            Self::Json => println!("{}", event_json(event)),
            Self::Bar(bar) => {
                if let Some(e) = &event.execution {
                    bar.set_length(e.actions_count as u64);
                    bar.set_position(e.completed_actions_count as u64);
                    bar.set_message(format!(
                        "{}  running {}  failed {}  rev {}",
                        status_name(e.status()),
                        e.running_actions_count,
                        e.failed_actions_count,
                        e.revision
                    ));
                }
            }
        }
    }

    fn note(&self, message: &str) {
        match self {
            Self::Json => eprintln!("{message}"),
            Self::Bar(bar) => bar.println(message),
        }
    }

    fn finish(&self, status: pb::ExecutionStatus) {
        if let Self::Bar(bar) = self {
            bar.finish_with_message(format!("{} (final)", status_name(status)));
        }
    }

    fn abandon(&self, status: &tonic::Status) {
        let message = format!("watch failed: {:?}: {}", status.code(), status.message());
        match self {
            Self::Json => eprintln!("{message}"),
            Self::Bar(bar) => bar.abandon_with_message(message),
        }
    }
}

fn status_name(status: pb::ExecutionStatus) -> &'static str {
    status.as_str_name().trim_start_matches("EXECUTION_STATUS_")
}

/// One event as a JSON object for scripts.
fn event_json(event: &pb::WatchExecutionResponse) -> serde_json::Value {
    let mut out = serde_json::json!({
        "kind": event.kind().as_str_name().trim_start_matches("WATCH_EVENT_KIND_"),
        "revision": event.revision,
        "sent_at": event.sent_at.map(|t| t.to_string()),
    });
    if let Some(e) = &event.execution {
        out["execution"] = serde_json::json!({
            "id": e.id,
            "hashid": e.hashid,
            "status": status_name(e.status()),
            "actions_count": e.actions_count,
            "idle_actions_count": e.idle_actions_count,
            "scheduled_actions_count": e.scheduled_actions_count,
            "running_actions_count": e.running_actions_count,
            "completed_actions_count": e.completed_actions_count,
            "failed_actions_count": e.failed_actions_count,
            "stopped_actions_count": e.stopped_actions_count,
            "stop_reason": e.stop_reason,
            "updated_at_utc": e.updated_at_utc,
        });
    }
    out
}
