//! Follows one execution with WatchExecution until it reaches a terminal status, for
//! `watch`, `wait` and `start --wait`.
//!
//! The first connection must work: when it does not (nothing listens, a bad id, a bad
//! token) the error is returned at once. Once a stream was open, one that ends with a
//! retryable code (UNAVAILABLE: a server shutting down, a lost connection) is resumed with
//! `since_revision` set to the last revision seen, so no change is missed or repeated,
//! with a growing pause, [`MAX_RECONNECTS`] times in a row at most.

use std::time::Duration;

use tonic::Code;

use super::connection::ConnectArgs;
use super::output;
use crate::proto::v1 as pb;

/// Consecutive failed attempts to resume before giving up.
pub const MAX_RECONNECTS: u32 = 30;

/// What happened on the way.
#[derive(Debug)]
pub enum Seen<'a> {
    /// A message of the stream (SNAPSHOT, UPDATE or HEARTBEAT).
    Event(&'a pb::WatchExecutionResponse),
    /// The stream ended before the terminal status; it resumes after a pause.
    Interrupted {
        /// Why it ended.
        why: String,
        /// The revision it resumes from.
        since_revision: i64,
    },
}

/// Why following stopped before the terminal status.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// No connection to the server.
    #[error("{0}")]
    Connect(String),
    /// The server's answer.
    #[error("{}", output::describe(.0))]
    Status(tonic::Status),
}

/// Follows `request.id` and returns the execution in its terminal state, telling
/// `seen` each message and each interruption.
pub async fn follow(
    server: &ConnectArgs,
    mut request: pb::WatchExecutionRequest,
    mut seen: impl FnMut(Seen<'_>),
) -> Result<pb::Execution, FollowError> {
    let mut opened_once = false;
    let mut failures = 0;
    loop {
        match stream(server, &mut request, &mut opened_once, &mut seen).await {
            Ok(Some(execution)) => return Ok(execution),
            // Ended with OK but before a terminal state: resume.
            Ok(None) => failures = 0,
            Err(error) if opened_once && retryable(&error) && failures < MAX_RECONNECTS => {
                failures += 1;
                seen(Seen::Interrupted {
                    why: error.to_string(),
                    since_revision: request.since_revision,
                });
                tokio::time::sleep(pause(failures)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

fn retryable(error: &FollowError) -> bool {
    match error {
        FollowError::Connect(_) => true,
        FollowError::Status(status) => retryable_code(status.code()),
    }
}

/// Whether a stream that ended with `code` is worth resuming: the server went away or
/// the connection was lost, rather than the request being refused.
pub(super) fn retryable_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// The pause before resume attempt number `failures` (1, 2, …): growing, at most 2 s.
pub(super) fn pause(failures: u32) -> Duration {
    Duration::from_millis(200 * u64::from(failures.min(10)))
}

/// One stream: the terminal execution once seen, `None` if the stream ended without it.
async fn stream(
    server: &ConnectArgs,
    request: &mut pb::WatchExecutionRequest,
    opened_once: &mut bool,
    seen: &mut impl FnMut(Seen<'_>),
) -> Result<Option<pb::Execution>, FollowError> {
    let mut client = server.connect().await.map_err(FollowError::Connect)?;
    let mut events = client
        .watch_execution(request.clone())
        .await
        .map_err(FollowError::Status)?
        .into_inner();
    *opened_once = true;
    while let Some(event) = events.message().await.map_err(FollowError::Status)? {
        request.since_revision = request.since_revision.max(event.revision);
        seen(Seen::Event(&event));
        if let Some(execution) = event.execution
            && output::is_terminal(execution.status())
        {
            return Ok(Some(execution));
        }
    }
    Ok(None)
}
