//! Follows a WatchExecutions feed for `watch --all`, resuming it where it broke off.
//!
//! The policy is [`super::follow`]'s: the first connection must work, and when it does
//! not (nothing listens, a bad filter, a bad cursor, a bad token) the error is returned at
//! once. Once a stream was open, one that ends with a retryable code (UNAVAILABLE: a
//! server shutting down, a lost connection), or that the server closes, is resumed with
//! `resume_cursor`, after a growing pause, [`MAX_RECONNECTS`] times in a row at most (a
//! stream that delivered a message starts the count again). The cursor is the one the
//! error names (SERVER_SHUTTING_DOWN carries `resume_cursor` in its ErrorInfo metadata),
//! else the cursor of the last message received, else the request's own: the server then
//! sends what changed since, so nothing is missed.

use futures::Stream;
use tonic_types::StatusExt;

use super::connection::ConnectArgs;
use super::follow::{MAX_RECONNECTS, pause, retryable_code};
use super::output;
use crate::proto::v1 as pb;

/// What happened on the way.
#[derive(Debug)]
pub enum Seen {
    /// A message of the stream (SNAPSHOT, SYNCED, UPDATE or HEARTBEAT); boxed, as an
    /// Execution is large beside the other variant.
    Message(Box<pb::WatchExecutionsResponse>),
    /// The stream ended; it resumes after a pause.
    Interrupted {
        /// Why it ended.
        why: String,
        /// The cursor it resumes from (empty: from a new snapshot, nothing was received).
        resume_cursor: String,
    },
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// No connection to the server.
    #[error("{0}")]
    Connect(String),
    /// The server's answer.
    #[error("{}", output::describe(.0))]
    Status(tonic::Status),
    /// The server ended the stream with OK, which a feed never does by itself.
    #[error("the server closed the stream")]
    Closed,
}

impl FeedError {
    fn retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Closed => true,
            Self::Status(status) => retryable_code(status.code()),
        }
    }

    /// The cursor the server named in its error, if it did.
    fn resume_cursor(&self) -> Option<String> {
        let Self::Status(status) = self else {
            return None;
        };
        status
            .get_details_error_info()?
            .metadata
            .remove("resume_cursor")
            .filter(|cursor| !cursor.is_empty())
    }
}

/// The feed of `request`, resumed after each interruption, until an error that is not
/// worth resuming (the stream's last item). Never ends otherwise.
pub fn follow(
    server: ConnectArgs,
    mut request: pb::WatchExecutionsRequest,
) -> impl Stream<Item = Result<Seen, FeedError>> {
    async_stream::try_stream! {
        let mut opened_once = false;
        let mut failures = 0;
        loop {
            let mut received = false;
            let error = match open(&server, &request).await {
                Err(error) => error,
                Ok(mut messages) => {
                    opened_once = true;
                    loop {
                        match messages.message().await {
                            Ok(Some(message)) => {
                                received = true;
                                if !message.cursor.is_empty() {
                                    request.resume_cursor.clone_from(&message.cursor);
                                }
                                yield Seen::Message(Box::new(message));
                            }
                            Ok(None) => break FeedError::Closed,
                            Err(status) => break FeedError::Status(status),
                        }
                    }
                }
            };
            if received {
                failures = 0;
            }
            if !opened_once || !error.retryable() || failures >= MAX_RECONNECTS {
                // Ends the stream with this error.
                Err(error)?;
            } else {
                failures += 1;
                if let Some(cursor) = error.resume_cursor() {
                    request.resume_cursor = cursor;
                }
                yield Seen::Interrupted {
                    why: error.to_string(),
                    resume_cursor: request.resume_cursor.clone(),
                };
                tokio::time::sleep(pause(failures)).await;
            }
        }
    }
}

/// Opens one stream.
async fn open(
    server: &ConnectArgs,
    request: &pb::WatchExecutionsRequest,
) -> Result<tonic::Streaming<pb::WatchExecutionsResponse>, FeedError> {
    let mut client = server.connect().await.map_err(FeedError::Connect)?;
    let response = client
        .watch_executions(request.clone())
        .await
        .map_err(FeedError::Status)?;
    Ok(response.into_inner())
}
