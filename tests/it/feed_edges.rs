//! WatchExecutions at its edges: bad filters and cursors, tenancy and tokens, heartbeats,
//! the watch limit and deadlines, shutdown, a late commit, catch-ups a few at a time and
//! replicas (PostgreSQL).

use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use executions::service::WatchSettings;
use tonic::Code;

db_tests!(bad_filters_and_cursors_fail_before_any_message);

db_tests!(config = super::tokens_config; a_confined_feed_follows_its_tenant_only);

/// Promise 7: Filters are validated like ListExecutions'; a cursor is refused when it is
/// not one, or was handed out for other filters. Nothing is sent before the error.
async fn bad_filters_and_cursors_fail_before_any_message(server: &TestServer) {
    let mut client = server.client.clone();
    let mut feed = open_feed(&mut client, running_of_key("k")).await.unwrap();
    let (_, cursor) = until_synced(&mut feed).await;
    let cases = [
        (
            pb::WatchExecutionsRequest {
                statuses: vec![0],
                ..Default::default()
            },
            "INVALID_STATUS",
            "statuses[0]",
        ),
        (
            pb::WatchExecutionsRequest {
                created_after: Some(prost_types::Timestamp {
                    seconds: 20,
                    nanos: 0,
                }),
                created_before: Some(prost_types::Timestamp {
                    seconds: 10,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "INVALID_TIME_RANGE",
            "created_before",
        ),
        (
            pb::WatchExecutionsRequest {
                view: 9,
                ..Default::default()
            },
            "INVALID_VIEW",
            "view",
        ),
        (
            pb::WatchExecutionsRequest {
                resume_cursor: "not-a-cursor".into(),
                ..Default::default()
            },
            "INVALID_RESUME_CURSOR",
            "resume_cursor",
        ),
        (
            pb::WatchExecutionsRequest {
                resume_cursor: cursor.clone(),
                ..running_of_key("another key")
            },
            "RESUME_CURSOR_FILTER_MISMATCH",
            "resume_cursor",
        ),
    ];
    for (request, reason, field) in cases {
        let err = open_feed(&mut client, request).await.unwrap_err();
        assert_error(&err, Code::InvalidArgument, reason, Some(field));
    }
}

/// Promise 7: A token confined to a tenant follows its tenant's executions only, whatever
/// its filter says.
async fn a_confined_feed_follows_its_tenant_only(server: &TestServer) {
    let mut client = server.client.clone();
    start_as(&mut client, WRITER_TOKEN, "t", "globex")
        .await
        .unwrap();
    let ours = start_as(&mut client, ACME_WRITER_TOKEN, "t", "acme")
        .await
        .unwrap();
    let mut feed = client
        .watch_executions(bearer(
            ACME_READER_TOKEN,
            pb::WatchExecutionsRequest {
                user_key: "globex".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (snapshots, _) = until_synced(&mut feed).await;
    let ids: Vec<&str> = snapshots.iter().map(|m| carried(m).id.as_str()).collect();
    assert_eq!(ids, [ours.id.as_str()]);
    let err = open_feed(&mut client, pb::WatchExecutionsRequest::default())
        .await
        .unwrap_err();
    assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
    start_as(&mut client, WRITER_TOKEN, "t", "globex")
        .await
        .unwrap();
    let again = start_as(&mut client, ACME_WRITER_TOKEN, "t", "acme")
        .await
        .unwrap();
    assert_eq!(carried(&next_change(&mut feed).await).id, again.id);
}

/// Promise 5: A HEARTBEAT after each quiet interval, carrying a cursor to resume from; and
/// promise 7: the watch limit counts feeds, and a deadline ends a feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_carry_a_cursor_and_feeds_count_as_watches_sqlite() {
    heartbeats_carry_a_cursor_and_feeds_count_as_watches(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn heartbeats_carry_a_cursor_and_feeds_count_as_watches_postgres() {
    heartbeats_carry_a_cursor_and_feeds_count_as_watches(Backend::Postgres).await;
}

async fn heartbeats_carry_a_cursor_and_feeds_count_as_watches(backend: Backend) {
    let server = TestServer::builder()
        .on(backend)
        .watch(WatchSettings {
            heartbeat: Duration::from_millis(300),
            max_watches: 2,
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let mut feed = open_feed(&mut client, running_of_key("hb")).await.unwrap();
    until_synced(&mut feed).await;
    let beat = next_within(&mut feed, 5).await.unwrap().unwrap();
    assert_eq!(beat.kind(), pb::WatchEventKind::Heartbeat);
    assert!(beat.execution.is_none());
    let e = start(&mut client, "hb", chain(2)).await;
    let m = next_change(&mut feed).await;
    assert_eq!(carried(&m).id, e.id);
    let beat = next_within(&mut feed, 5).await.unwrap().unwrap();
    assert_eq!(beat.kind(), pb::WatchEventKind::Heartbeat);
    // The heartbeat's cursor is past the change: resuming from it catches up nothing.
    // (On PostgreSQL the cursor moves with every commit in the cluster, so it is compared
    // by what it resumes, not by its text.)
    let mut _second = open_feed(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: beat.cursor.clone(),
            ..running_of_key("hb")
        },
    )
    .await
    .unwrap();
    let (caught_up, _) = until_synced(&mut _second).await;
    assert!(caught_up.is_empty(), "{caught_up:?}");
    let err = open_feed(&mut client, running_of_key("hb"))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "TOO_MANY_WATCHES", None);
    drop(feed);
    drop(_second);

    // A deadline ends a feed as it ends any call. (The closed feeds give their watches
    // back once the server has seen them go.)
    let mut feed = None;
    for _ in 0..50 {
        let mut request = tonic::Request::new(running_of_key("hb"));
        request.set_timeout(Duration::from_millis(700));
        match client.watch_executions(request).await {
            Ok(opened) => {
                feed = Some(opened.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut feed = feed.expect("the closed feeds' watches are given back");
    until_synced(&mut feed).await;
    let ended = loop {
        match next_within(&mut feed, 5).await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let err = ended.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    server.stop().await;
}

/// Promise 7: On shutdown a feed ends with UNAVAILABLE naming, in its ErrorInfo, the cursor
/// to resume from: that of the last message it sent (or a later point, when only other
/// executions changed since).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_a_feed_naming_its_cursor_sqlite() {
    shutdown_ends_a_feed_naming_its_cursor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn shutdown_ends_a_feed_naming_its_cursor_postgres() {
    shutdown_ends_a_feed_naming_its_cursor(Backend::Postgres).await;
}

async fn shutdown_ends_a_feed_naming_its_cursor(backend: Backend) {
    use tonic_types::StatusExt;
    let server = TestServer::builder().on(backend).start().await;
    let mut client = server.client.clone();
    start(&mut client, "bye", chain(2)).await;
    let mut feed = open_feed(&mut client, running_of_key("bye")).await.unwrap();
    let (_, cursor) = until_synced(&mut feed).await;
    server.stop().await;
    let err = next_within(&mut feed, 10).await.unwrap_err();
    assert_error(&err, Code::Unavailable, "SERVER_SHUTTING_DOWN", None);
    let details = err.get_error_details();
    let named = &details.error_info().unwrap().metadata["resume_cursor"];
    if backend == Backend::Sqlite {
        assert_eq!(*named, cursor, "nothing committed since SYNCED");
    } else {
        // PostgreSQL's points move with every commit in the cluster (other tests' too).
        assert!(!named.is_empty());
    }
}

/// Promise 4: On PostgreSQL, a change whose transaction began (and wrote) before a cursor
/// was handed out and committed after it is not skipped: neither by a feed resumed from
/// that cursor nor by the open feed that handed it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_late_commit_is_not_skipped() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "late", chain(2)).await;
    // A writer from outside the server (any writer of the table is stamped the same way):
    // it changes the execution and holds its transaction open.
    let outside = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let late = outside.begin().await.unwrap();
    late.execute_unprepared(&format!(
        "UPDATE executions SET revision = revision + 1, name = 'late' WHERE id = '{}'",
        e.id
    ))
    .await
    .unwrap();
    // Handed out while that transaction runs.
    let mut feed = open_feed(&mut client, running_of_key("late"))
        .await
        .unwrap();
    let (snapshots, cursor) = until_synced(&mut feed).await;
    assert_eq!(
        carried(&snapshots[0]).revision,
        1,
        "the late change is not visible yet"
    );
    late.commit().await.unwrap();

    let m = next_change(&mut feed).await;
    assert_eq!(
        (carried(&m).revision, carried(&m).name.as_str()),
        (2, "late"),
        "the open feed"
    );
    let mut resumed = open_feed(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: cursor,
            ..running_of_key("late")
        },
    )
    .await
    .unwrap();
    let (caught_up, _) = until_synced(&mut resumed).await;
    let revisions: Vec<i64> = caught_up.iter().map(|m| carried(m).revision).collect();
    assert_eq!(revisions, [2], "the resumed feed");
    server.stop().await;
}

/// Promise 6: On PostgreSQL, changes made through one replica reach feeds on another, also
/// while that replica's listening connection is cut (a lost notification is caught up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn changes_reach_feeds_on_another_replica_even_without_notifications() {
    use sea_orm::ConnectionTrait;
    let a = TestServer::builder().on(Backend::Postgres).start().await;
    let b = TestServer::builder().same_database_as(&a).start().await;
    let (mut through_a, mut on_b) = (a.client.clone(), b.client.clone());
    let mut feed = open_feed(&mut on_b, running_of_key("replicated"))
        .await
        .unwrap();
    until_synced(&mut feed).await;
    let e = start(&mut through_a, "replicated", fan(3)).await;
    assert_eq!(carried(&next_change(&mut feed).await).id, e.id);

    // Cut every listening connection, then change through A: B hears nothing, and still
    // gets the change.
    let admin = a.postgres().unwrap().admin().await;
    let database = a.postgres().unwrap().name().to_owned();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND query ILIKE 'LISTEN%'"
        ))
        .await
        .unwrap();
    let mut last = 1;
    for n in 0..3 {
        let now = update(
            &mut through_a,
            &e.id,
            &format!("p{n}"),
            ActionStatus::Running,
        )
        .await;
        loop {
            let m = next_change(&mut feed).await;
            assert!(carried(&m).revision > last);
            last = carried(&m).revision;
            if last == now.revision {
                break;
            }
        }
    }
    b.stop().await;
    a.stop().await;
}

/// Feeds that open at once read their catch-up pages a few at a time (four a replica),
/// so they cannot take every connection of the pool from the other calls: with the
/// table locked, ten feeds opening leave exactly four page reads waiting on it, and once
/// it is free every feed syncs.
#[tokio::test]
async fn feeds_opening_at_once_read_their_pages_four_at_a_time() {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let mut client = server.client.clone();
    start(&mut client, "turns", chain(2)).await;
    let outside = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let lock = outside.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let opening: Vec<_> = (0..10)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut feed = open_feed(&mut client, running_of_key("turns"))
                    .await
                    .unwrap();
                until_synced(&mut feed).await.0.len()
            })
        })
        .collect();
    // A feed's page is the only read ordered by creation that waits on the lock.
    let waiting_pages = || async {
        let row = outside
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE '%\"created_at\" DESC%'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while waiting_pages().await < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "four pages wait on the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(waiting_pages().await, 4, "no more than four at once");
    lock.commit().await.unwrap();
    for feed in opening {
        assert_eq!(feed.await.unwrap(), 1, "each feed sends its snapshot");
    }
}
