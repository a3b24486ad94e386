//! Server streams, every read under a timeout; and the watch helpers.

use std::time::Duration;

use executions::proto::v1 as pb;
use tonic::Status;

use super::fixtures::{Client, watch_request};

/// A WatchExecution stream.
pub type Events = tonic::Streaming<pb::WatchExecutionResponse>;

/// The next message of `stream` (`Ok(None)` when it ended with OK); panics when none
/// comes within `secs` seconds.
pub async fn next_within<T>(
    stream: &mut tonic::Streaming<T>,
    secs: u64,
) -> Result<Option<T>, Status> {
    tokio::time::timeout(Duration::from_secs(secs), stream.message())
        .await
        .unwrap_or_else(|_| panic!("a message within {secs} s"))
}

/// The next watch message (`Ok(None)` when the stream ended with OK); panics after 20 s.
pub async fn next(events: &mut Events) -> Result<Option<pb::WatchExecutionResponse>, Status> {
    next_within(events, 20).await
}

/// True when nothing arrives for `wait`.
pub async fn silent(events: &mut Events, wait: Duration) -> bool {
    tokio::time::timeout(wait, events.message()).await.is_err()
}

/// Opens a watch of `id` for a caller that has seen `since_revision`.
pub async fn watch(client: &mut Client, id: &str, since_revision: i64) -> Result<Events, Status> {
    client
        .watch_execution(pb::WatchExecutionRequest {
            since_revision,
            ..watch_request(id)
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Checks stream order: every state message carries a revision above the last one; a
/// heartbeat repeats the last one.
pub fn check_order(m: &pb::WatchExecutionResponse, last: &mut i64) {
    if m.kind() == pb::WatchEventKind::Heartbeat {
        assert_eq!(m.revision, *last, "a heartbeat names the current revision");
    } else {
        assert!(
            m.revision > *last,
            "revision {} after {}",
            m.revision,
            *last
        );
        *last = m.revision;
    }
}
