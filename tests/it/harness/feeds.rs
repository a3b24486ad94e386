//! WatchExecutions streams: opening a feed, reading to SYNCED, the next change.

use std::time::Duration;

use executions::proto::v1 as pb;

use super::ExecutionStatus;
use super::fixtures::{Client, stop_request};
use super::streams::next_within;

/// A WatchExecutions stream.
pub type Feed = tonic::Streaming<pb::WatchExecutionsResponse>;
/// One message of it.
pub type FeedMessage = pb::WatchExecutionsResponse;

/// Opens a feed.
pub async fn open_feed(
    client: &mut Client,
    request: pb::WatchExecutionsRequest,
) -> Result<Feed, tonic::Status> {
    client
        .watch_executions(request)
        .await
        .map(tonic::Response::into_inner)
}

/// A feed of the RUNNING executions of workflow `key`.
pub fn running_of_key(key: &str) -> pb::WatchExecutionsRequest {
    pb::WatchExecutionsRequest {
        statuses: vec![ExecutionStatus::Running as i32],
        key: key.into(),
        ..Default::default()
    }
}

/// The messages up to SYNCED (excluded), and SYNCED's cursor.
pub async fn until_synced(feed: &mut Feed) -> (Vec<FeedMessage>, String) {
    let mut before = Vec::new();
    loop {
        let m = next_within(feed, 20).await.unwrap().expect("open stream");
        assert!(!m.cursor.is_empty(), "every message carries a cursor");
        if m.kind() == pb::WatchEventKind::Synced {
            assert!(m.execution.is_none());
            return (before, m.cursor);
        }
        before.push(m);
    }
}

/// The next SNAPSHOT or UPDATE, skipping heartbeats.
pub async fn next_change(feed: &mut Feed) -> FeedMessage {
    loop {
        let m = next_within(feed, 20).await.unwrap().expect("open stream");
        if m.kind() != pb::WatchEventKind::Heartbeat {
            return m;
        }
    }
}

/// True when no SNAPSHOT or UPDATE arrives for `wait`.
pub async fn no_change_for(feed: &mut Feed, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, feed.message()).await {
            Err(_) => return true,
            Ok(Ok(Some(m))) if m.kind() == pb::WatchEventKind::Heartbeat => continue,
            Ok(other) => {
                eprintln!("unexpected: {other:?}");
                return false;
            }
        }
    }
}

/// The execution a SNAPSHOT or UPDATE carries.
pub fn carried(m: &FeedMessage) -> &pb::Execution {
    m.execution
        .as_ref()
        .expect("a state message carries its execution")
}

/// Stops execution `id` (it must be running).
pub async fn stop_now(client: &mut Client, id: &str) -> pb::Execution {
    client
        .stop_execution(stop_request(id, "feed test"))
        .await
        .unwrap()
        .into_inner()
}
