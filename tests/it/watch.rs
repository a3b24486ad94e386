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
    revisions_strictly_increase_under_a_burst_of_concurrent_writers,
    a_watcher_that_stops_reading_gets_the_latest_state,
    the_stream_ends_ok_after_the_terminal_state,
    an_already_terminal_execution_gets_one_snapshot,
    a_thousand_watchers_all_see_the_terminal_state,
    changes_reach_local_watchers_without_reading_the_database,
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

/// Ten writers make 510 changes as fast as they can; the watcher sees revisions that
/// strictly increase (never a duplicate, never out of order) up to the terminal one.
async fn revisions_strictly_increase_under_a_burst_of_concurrent_writers(server: &TestServer) {
    let mut client = server.client.clone();
    const ACTIONS: usize = 170; // x 3 steps = 510 changes
    let e = start(&mut client, "burst", fan(ACTIONS)).await;
    let mut events = watch(&mut client, &e.id, 0).await.unwrap();
    assert_eq!(next(&mut events).await.unwrap().unwrap().revision, 1);

    let mut writers = Vec::new();
    for w in 0..10 {
        let mut client = server.new_client().await;
        let id = e.id.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..ACTIONS).step_by(10) {
                let node = format!("p{i}");
                for status in [
                    ActionStatus::Scheduled,
                    ActionStatus::Running,
                    ActionStatus::Completed,
                ] {
                    update(&mut client, &id, &node, status).await;
                }
            }
        }));
    }
    let mut last = 1;
    let mut received = 0;
    loop {
        match next(&mut events).await.unwrap() {
            Some(m) => {
                check_order(&m, &mut last);
                received += 1;
                if m.kind() == pb::WatchEventKind::Update
                    && m.execution.as_ref().unwrap().status() == ExecutionStatus::Completed
                {
                    assert!(
                        next(&mut events).await.unwrap().is_none(),
                        "OK after the terminal state"
                    );
                    break;
                }
            }
            None => panic!("stream ended before the terminal state"),
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(last, 1 + 3 * ACTIONS as i64);
    assert!(received >= 1);
}

/// A watcher that reads nothing while 1,000 changes land is not buffered for: when it
/// reads again it gets few messages, ending with the latest (terminal) state, with
/// increasing revisions and no error.
async fn a_watcher_that_stops_reading_gets_the_latest_state(server: &TestServer) {
    let mut client = server.client.clone();
    const ACTIONS: usize = 500; // x 2 steps = 1,000 changes
    let e = start(&mut client, "slow", fan(ACTIONS)).await;
    let mut events = watch(&mut client, &e.id, 0).await.unwrap();
    assert_eq!(next(&mut events).await.unwrap().unwrap().revision, 1);

    let mut writers = Vec::new();
    for w in 0..4 {
        let mut client = server.new_client().await;
        let id = e.id.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..ACTIONS).step_by(4) {
                let node = format!("p{i}");
                update(&mut client, &id, &node, ActionStatus::Running).await;
                update(&mut client, &id, &node, ActionStatus::Completed).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut last = 1;
    let mut received = 0;
    while let Some(m) = next(&mut events).await.unwrap() {
        check_order(&m, &mut last);
        received += 1;
    }
    assert_eq!(last, 1 + 2 * ACTIONS as i64, "ends at the latest state");
    assert!(
        received < 100,
        "level-based: {received} messages for 1,000 changes"
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

/// 1,000 concurrent watchers of one execution, over 10 connections, all receive its
/// terminal state.
async fn a_thousand_watchers_all_see_the_terminal_state(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "crowd", chain(2)).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(server.new_client().await);
    }
    let mut watchers = Vec::new();
    for i in 0..1_000 {
        let mut client = clients[i % 10].clone();
        let id = e.id.clone();
        let (ready, opened) = tokio::sync::oneshot::channel();
        watchers.push((
            opened,
            tokio::spawn(async move {
                let mut events = watch(&mut client, &id, 0).await.unwrap();
                next(&mut events).await.unwrap().unwrap(); // the snapshot
                let _ = ready.send(());
                let mut last = None;
                while let Some(m) = next(&mut events).await.unwrap() {
                    last = Some(m);
                }
                last.unwrap().execution.unwrap().status()
            }),
        ));
    }
    let mut tasks = Vec::new();
    for (opened, task) in watchers {
        opened.await.unwrap();
        tasks.push(task);
    }
    for node in ["a1", "a2"] {
        update(&mut client, &e.id, node, ActionStatus::Running).await;
        update(&mut client, &e.id, node, ActionStatus::Completed).await;
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), ExecutionStatus::Completed);
    }
}

/// A change reaches every local watcher from the state the write committed: no database
/// read per change, let alone per watcher.
async fn changes_reach_local_watchers_without_reading_the_database(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "reads", chain(5)).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut events = watch(&mut client, &e.id, 0).await.unwrap();
        next(&mut events).await.unwrap().unwrap();
        streams.push(events);
    }
    // Let the notification of the start (PostgreSQL) come and go before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.hub.state_reads();
    for i in 1..=5 {
        update(&mut client, &e.id, &format!("a{i}"), ActionStatus::Running).await;
        update(
            &mut client,
            &e.id,
            &format!("a{i}"),
            ActionStatus::Completed,
        )
        .await;
    }
    for events in &mut streams {
        let mut last = 0;
        while let Some(m) = next(events).await.unwrap() {
            last = m.revision;
        }
        assert_eq!(last, 11);
    }
    assert_eq!(server.hub.state_reads() - before, 0);
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

/// Past the configured number of open watches a new one is RESOURCE_EXHAUSTED; closing one
/// makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_past_the_limit_are_resource_exhausted() {
    let server = TestServer::builder()
        .watch(WatchSettings {
            max_watches: 2,
            ..WatchSettings::default()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "capped", chain(1)).await;
    let mut first = watch(&mut client, &e.id, 0).await.unwrap();
    next(&mut first).await.unwrap().unwrap();
    let _second = watch(&mut client, &e.id, 0).await.unwrap();
    let err = watch(&mut client, &e.id, 0).await.unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "TOO_MANY_WATCHES", None);
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        match watch(&mut client, &e.id, 0).await {
            Ok(events) => {
                reopened = Some(events);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(reopened.is_some(), "a closed watch frees its place");
    server.stop().await;
}

/// On shutdown every open stream ends promptly with UNAVAILABLE, naming the last revision
/// it sent, and the server exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_stream_with_unavailable() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "shutdown", chain(2)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let mut streams = Vec::new();
    for i in 0..200 {
        let mut events = watch(&mut client, &e.id, if i % 2 == 0 { 0 } else { 2 })
            .await
            .unwrap();
        if i % 2 == 0 {
            next(&mut events).await.unwrap().unwrap();
        }
        streams.push(events);
    }
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped in {:?}",
        started.elapsed()
    );
    for mut events in streams {
        let err = next(&mut events).await.unwrap_err();
        assert_error(&err, Code::Unavailable, "SERVER_SHUTTING_DOWN", None);
        assert!(
            err.message().contains("last revision sent: 2"),
            "{}",
            err.message()
        );
        use tonic_types::StatusExt;
        let details = err.get_error_details();
        assert_eq!(details.error_info().unwrap().metadata["last_revision"], "2");
    }
}

/// Two servers on one PostgreSQL database: a change made through A reaches a watcher on B
/// (one read on B per change, shared by its watchers). Then B's listening connection is
/// terminated from SQL while changes keep landing through A: B's watchers still converge
/// to the final state, with revisions that only go up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_reach_watchers_on_another_replica_even_across_a_lost_connection() {
    use sea_orm::ConnectionTrait;
    if !Backend::Postgres.available() {
        return;
    }
    let a = TestServer::builder().on(Backend::Postgres).start().await;
    // B connects as its own user, so that B alone can be cut off from the database.
    let database = a.postgres().unwrap().name();
    let admin = a.postgres().unwrap().admin().await;
    let b_user = format!("{database}_b");
    admin
        .execute_unprepared(&format!("CREATE ROLE \"{b_user}\" LOGIN SUPERUSER"))
        .await
        .unwrap();
    let b = TestServer::builder()
        .same_database_as(&a)
        .connect_as(&b_user)
        .start()
        .await;
    let mut through_a = a.client.clone();
    let mut on_b = b.client.clone();
    const ACTIONS: usize = 40;
    let e = start(&mut through_a, "replicated", fan(ACTIONS)).await;

    let mut watchers = Vec::new();
    for _ in 0..20 {
        let mut events = watch(&mut on_b, &e.id, 0).await.unwrap();
        assert_eq!(next(&mut events).await.unwrap().unwrap().revision, 1);
        watchers.push(events);
    }
    let reads_before = b.hub.state_reads();
    update(&mut through_a, &e.id, "p0", ActionStatus::Running).await;
    for events in &mut watchers {
        let m = next(events).await.unwrap().unwrap();
        assert_eq!((m.kind(), m.revision), (pb::WatchEventKind::Update, 2));
    }
    assert_eq!(
        b.hub.state_reads() - reads_before,
        1,
        "one read on B for 20 watchers"
    );

    // Keep changing through A while B's listener is killed (twice).
    let kill_listeners = || {
        sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND query ILIKE 'LISTEN%'"
            ),
        )
    };
    let drive = |range: std::ops::Range<usize>, pause: Duration| {
        let client = a.client.clone();
        let id = e.id.clone();
        async move {
            let mut client = client;
            for i in range {
                let node = format!("p{i}");
                if i > 0 {
                    update(&mut client, &id, &node, ActionStatus::Running).await;
                }
                update(&mut client, &id, &node, ActionStatus::Completed).await;
                tokio::time::sleep(pause).await;
            }
        }
    };
    let writer = tokio::spawn(drive(0..ACTIONS / 2, Duration::from_millis(5)));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // B may still be reconnecting from the previous kill: wait for its listener.
        let mut killed = Vec::new();
        for _ in 0..200 {
            killed = admin.query_all_raw(kill_listeners()).await.unwrap();
            if !killed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !killed.is_empty(),
            "found a listening connection to terminate"
        );
    }
    writer.await.unwrap();

    // Now an outage of B that outlasts every remaining change: B's user may not log in and
    // every connection of B is terminated until A has made its last change. Every
    // notification of that window is lost; only B's catch-up after reconnecting can
    // deliver the final state.
    let login = |yes: &str| format!("ALTER ROLE \"{b_user}\" {yes}");
    admin.execute_unprepared(&login("NOLOGIN")).await.unwrap();
    let killed = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{b_user}'"
            ),
        ))
        .await
        .unwrap();
    assert!(!killed.is_empty(), "found B's connections to terminate");
    drive(ACTIONS / 2..ACTIONS, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin.execute_unprepared(&login("LOGIN")).await.unwrap();

    let final_revision = 1 + 2 * ACTIONS as i64;
    for mut events in watchers {
        let mut last = 2;
        let mut terminal = false;
        while let Some(m) = next(&mut events).await.unwrap() {
            check_order(&m, &mut last);
            terminal = m
                .execution
                .is_some_and(|e| e.status() == ExecutionStatus::Completed);
        }
        assert!(terminal, "ended on the terminal state");
        assert_eq!(last, final_revision);
    }
    b.stop().await;
    a.stop().await;
    admin
        .execute_unprepared(&format!("DROP ROLE IF EXISTS \"{b_user}\""))
        .await
        .unwrap();
    admin.close().await.ok();
}
