//! WatchExecution: each promise of SPEC §2.7, through a real stream. Every read is under a
//! timeout.

use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use executions::service::WatchSettings;
use tonic::Code;

db_tests!(
    the_first_message_is_a_snapshot_then_updates_follow,
    since_revision_equal_waits_for_the_next_change,
    since_revision_below_gets_a_snapshot_and_above_is_out_of_range,
    unknown_or_malformed_ids_fail_before_any_message,
    the_stream_ends_ok_after_the_terminal_state,
    an_already_terminal_execution_gets_one_snapshot,
);

/// The first message is a SNAPSHOT of the current state (FULL by default, with sent_at);
/// each change then arrives as an UPDATE carrying its revision.
async fn the_first_message_is_a_snapshot_then_updates_follow(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "watched", chain(2)).await;
    let mut events = watch(&mut client, &e.hashid, 0).await.unwrap();
    let first = next(&mut events).await.unwrap().unwrap();
    assert_eq!(first.kind(), pb::WatchEventKind::Snapshot);
    assert_eq!(first.revision, 1);
    assert!(first.sent_at.is_some());
    assert_eq!(
        first.execution.as_ref(),
        Some(&e),
        "the snapshot is the stored execution"
    );

    let updated = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let second = next(&mut events).await.unwrap().unwrap();
    assert_eq!(second.kind(), pb::WatchEventKind::Update);
    assert_eq!(second.revision, 2);
    assert_eq!(second.execution.as_ref(), Some(&updated));
}

/// With since_revision equal to the current revision the stream sends nothing until the
/// next change.
async fn since_revision_equal_waits_for_the_next_change(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "resume", chain(2)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let mut events = watch(&mut client, &e.id, 2).await.unwrap();
    assert!(
        silent(&mut events, Duration::from_millis(500)).await,
        "no snapshot at the current revision"
    );
    update(&mut client, &e.id, "a1", ActionStatus::Completed).await;
    let first = next(&mut events).await.unwrap().unwrap();
    assert_eq!(first.kind(), pb::WatchEventKind::Update);
    assert_eq!(first.revision, 3);
}

/// since_revision below the current one gets a SNAPSHOT of the current state (never a
/// "too old" error); above it is OUT_OF_RANGE before any message.
async fn since_revision_below_gets_a_snapshot_and_above_is_out_of_range(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "behind", chain(3)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    update(&mut client, &e.id, "a1", ActionStatus::Completed).await;
    let mut events = watch(&mut client, &e.id, 1).await.unwrap();
    let first = next(&mut events).await.unwrap().unwrap();
    assert_eq!(first.kind(), pb::WatchEventKind::Snapshot);
    assert_eq!(first.revision, 3);

    let err = watch(&mut client, &e.id, 4).await.unwrap_err();
    assert_error(
        &err,
        Code::OutOfRange,
        "REVISION_AHEAD",
        Some("since_revision"),
    );
}

/// An unknown id is NOT_FOUND and a malformed one or a negative revision INVALID_ARGUMENT,
/// before any message.
async fn unknown_or_malformed_ids_fail_before_any_message(server: &TestServer) {
    let mut client = server.client.clone();
    let err = watch(&mut client, &uuid::Uuid::now_v7().to_string(), 0)
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let err = watch(&mut client, "zzzzzzz", 0).await.unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let err = watch(&mut client, "not an id", 0).await.unwrap_err();
    assert_error(&err, Code::InvalidArgument, "INVALID_ID", Some("id"));
    let e = start(&mut client, "neg", chain(1)).await;
    let err = watch(&mut client, &e.id, -1).await.unwrap_err();
    assert_error(
        &err,
        Code::InvalidArgument,
        "INVALID_SINCE_REVISION",
        Some("since_revision"),
    );
    let err = client
        .watch_execution(pb::WatchExecutionRequest {
            id: e.id.clone(),
            time_zone: "Atlantis".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(
        &err,
        Code::InvalidArgument,
        "INVALID_TIME_ZONE",
        Some("time_zone"),
    );
}

/// After the message that carries a terminal status the stream ends with OK.
async fn the_stream_ends_ok_after_the_terminal_state(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "ends", chain(1)).await;
    let mut events = watch(&mut client, &e.id, 0).await.unwrap();
    next(&mut events).await.unwrap().unwrap();
    client
        .stop_execution(stop_request(&e.id, "done"))
        .await
        .unwrap();
    let last = next(&mut events).await.unwrap().unwrap();
    assert_eq!(last.execution.unwrap().status(), ExecutionStatus::Stopped);
    assert!(next(&mut events).await.unwrap().is_none());
}

/// Watching an execution that is already terminal gives one SNAPSHOT, then OK; resuming at
/// its final revision ends at once.
async fn an_already_terminal_execution_gets_one_snapshot(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "finished", chain(1)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    update(&mut client, &e.id, "a1", ActionStatus::Completed).await;
    let mut events = watch(&mut client, &e.id, 0).await.unwrap();
    let only = next(&mut events).await.unwrap().unwrap();
    assert_eq!(only.kind(), pb::WatchEventKind::Snapshot);
    assert_eq!(only.execution.unwrap().status(), ExecutionStatus::Completed);
    assert!(next(&mut events).await.unwrap().is_none());
    let mut events = watch(&mut client, &e.id, 3).await.unwrap();
    assert!(next(&mut events).await.unwrap().is_none());
}

/// A HEARTBEAT with the current revision and no execution comes after each quiet
/// interval (1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_come_while_nothing_changes() {
    let server = TestServer::builder()
        .watch(WatchSettings {
            heartbeat: Duration::from_secs(1),
            ..WatchSettings::default()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "quiet", chain(1)).await;
    let mut events = watch(&mut client, &e.id, 0).await.unwrap();
    next(&mut events).await.unwrap().unwrap();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let beat = next(&mut events).await.unwrap().unwrap();
        assert_eq!(beat.kind(), pb::WatchEventKind::Heartbeat);
        assert_eq!(beat.revision, 1);
        assert!(beat.execution.is_none());
        assert!(beat.sent_at.is_some());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // Resuming at the current revision: the heartbeat names it.
    let mut resumed = watch(&mut client, &e.id, 1).await.unwrap();
    assert_eq!(next(&mut resumed).await.unwrap().unwrap().revision, 1);
    server.stop().await;
}
