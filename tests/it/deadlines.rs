//! Deadlines: a call whose client deadline passes is cancelled with its database work.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(a_passed_deadline_cancels_the_database_work);

/// A change whose client deadline passes while it waits for a lock is cancelled with its
/// database work: on PostgreSQL no statement of it is left waiting in the database, and
/// on both databases the change never lands once the lock is released.
async fn a_passed_deadline_cancels_the_database_work(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "deadline", chain(2)).await;
    let lock = hold_lock(server, &e.id).await;

    assert_ends_at_the_deadline(client.update_action(within_300_ms(report(
        &e.id,
        "a1",
        ActionStatus::Running,
    ))))
    .await;

    if let Some(database) = server.postgres() {
        assert_waiting_for_locks(
            database,
            0,
            "the server's statement still waits for the lock",
        )
        .await;
    }

    drop(lock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = get(&mut client, &e.id).await;
    assert_eq!(after.revision, 1, "the cancelled change never landed");
    assert_eq!(action_status(&after, "a1"), ActionStatus::Idle);
    // The execution is not left locked: the next change goes through.
    let moved = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    assert_eq!(moved.revision, 2);
}

/// A creation in flight, as the server's starts hold one (the creations' advisory lock,
/// shared, until their commit), held from outside until the transaction ends.
async fn hold_a_creation(server: &TestServer) -> sea_orm::DatabaseTransaction {
    hold_the_creations_lock(server, "pg_advisory_xact_lock_shared").await
}

/// The creations' advisory lock held from outside until the transaction ends, taken by
/// `function` (`pg_advisory_xact_lock_shared` as a start takes it, `pg_advisory_xact_lock`
/// as a List page's horizon takes it for an instant).
async fn hold_the_creations_lock(
    server: &TestServer,
    function: &str,
) -> sea_orm::DatabaseTransaction {
    use sea_orm::TransactionTrait;
    /// `db::creations::CREATION_LOCK`.
    const CREATION_LOCK: i64 = 0x6578_6563_6372_6561;
    let outside = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let holding = outside.begin().await.unwrap();
    holding
        .execute_unprepared(&format!("SELECT {function}({CREATION_LOCK})"))
        .await
        .unwrap();
    holding
}

/// On PostgreSQL a start is one statement that commits by itself, and it waits while a
/// List page takes its horizon (the creations' lock, alone). With that lock held from
/// outside, a start with a deadline ends at it, leaves no statement waiting, and never
/// lands once the lock is released; the next start goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_start_waiting_for_a_horizon_ends_at_its_deadline_and_never_lands() {
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let mut client = server.client.clone();
    let horizon = hold_the_creations_lock(&server, "pg_advisory_xact_lock").await;

    assert_ends_at_the_deadline(
        client.start_execution(within_300_ms(start_request_for("late", ""))),
    )
    .await;
    let database = server.postgres().unwrap();
    assert_waiting_for_locks(
        database,
        0,
        "the start's statement still waits for the lock",
    )
    .await;

    horizon.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = || pb::ListExecutionsRequest {
        key: "late".into(),
        ..Default::default()
    };
    let page = client.list_executions(list()).await.unwrap().into_inner();
    assert!(
        page.executions.is_empty(),
        "the start past its deadline landed"
    );
    let started = start(&mut client, "late", chain(2)).await;
    let page = client.list_executions(list()).await.unwrap().into_inner();
    let ids: Vec<_> = page.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [started.id.as_str()]);
}

/// On PostgreSQL a start takes a connection of the pool before it sends its statement.
/// With every connection held by starts waiting for the creations' lock (held alone from
/// outside, as a List page's horizon takes it), a start with a deadline ends at it while
/// it waits for a connection, and never lands: once the lock is released and the others
/// go through, it is not sent with a budget measured before the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_start_past_its_deadline_while_waiting_for_a_connection_never_lands() {
    /// The test server's pool (`harness::server`).
    const POOL: usize = 8;
    /// The connections of it left for statements: the relay of changes holds one to
    /// LISTEN (`db::notify::listen`).
    const FOR_STATEMENTS: i64 = POOL as i64 - 1;
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let horizon = hold_the_creations_lock(&server, "pg_advisory_xact_lock").await;
    let database = server.postgres().unwrap();
    let mut blocked = Vec::new();
    for i in 0..POOL {
        let mut client = server.client.clone();
        let request = start_request_for(&format!("blocked-{i}"), "");
        blocked.push(tokio::spawn(async move {
            client
                .start_execution(request)
                .await
                .map(|r| r.into_inner().id)
        }));
    }
    assert_waiting_for_locks(
        database,
        FOR_STATEMENTS,
        "every connection of the pool waits (one more start waits for a connection)",
    )
    .await;

    let mut client = server.client.clone();
    assert_ends_at_the_deadline(
        client.start_execution(within_300_ms(start_request_for("late", ""))),
    )
    .await;

    horizon.rollback().await.unwrap();
    for call in blocked {
        call.await
            .unwrap()
            .expect("a start without deadline goes through");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = client
        .list_executions(pb::ListExecutionsRequest {
            key: "late".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        page.executions.is_empty(),
        "the start past its deadline landed"
    );
}

/// On PostgreSQL a List page first waits for the creations in flight to commit (its
/// horizon). With one that never commits (held here from outside, as a start holds its
/// turn: the creations' advisory lock, shared), a List with a deadline ends at it with
/// DEADLINE_EXCEEDED and leaves no statement waiting; starts go on meanwhile, and once the
/// creation ends, the same List answers with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_list_waiting_for_a_creation_ends_at_its_deadline() {
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let mut client = server.client.clone();
    let creating = hold_a_creation(&server).await;

    let list = || pb::ListExecutionsRequest {
        key: "horizon".into(),
        ..Default::default()
    };
    assert_ends_at_the_deadline(client.list_executions(within_300_ms(list()))).await;

    // Starts share the turn with the one in flight: they do not wait for it.
    let started = tokio::time::timeout(
        Duration::from_secs(5),
        start(&mut client, "horizon", chain(1)),
    )
    .await
    .expect("a start does not wait for another creation");

    let database = server.postgres().unwrap();
    assert_eq!(
        database.statements_waiting_for_locks().await,
        0,
        "a statement still waits"
    );

    creating.rollback().await.unwrap();
    let page = client.list_executions(list()).await.unwrap().into_inner();
    let ids: Vec<_> = page.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [started.id.as_str()]);
}

/// Without a deadline, a List page waits for the creations in flight as long as the
/// database's own `lock_timeout` allows (its administrator set 300 ms here): the server
/// keeps that setting rather than waiting without limit, and answers UNAVAILABLE (a
/// retryable refusal of the database), not DEADLINE_EXCEEDED, which belongs to the
/// caller's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_list_without_deadline_keeps_the_databases_lock_timeout() {
    let database = TestDatabase::create(Backend::Postgres, "lock_timeout").await;
    let TestDatabase::Postgres(postgres) = &database else {
        unreachable!("created on PostgreSQL")
    };
    let admin = postgres.admin().await;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{}\" SET lock_timeout = '300ms'",
            postgres.name()
        ))
        .await
        .unwrap();
    admin.close().await.ok();
    let server = TestServer::builder().database(database).start().await;
    let mut client = server.client.clone();
    let creating = hold_a_creation(&server).await;

    let list = || pb::ListExecutionsRequest {
        key: "lock-timeout".into(),
        ..Default::default()
    };
    let asked = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), client.list_executions(list()))
        .await
        .expect("the database's lock_timeout ends the wait")
        .unwrap_err();
    assert_error(&err, Code::Unavailable, "DATABASE_UNAVAILABLE", None);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    creating.rollback().await.unwrap();
    let page = client.list_executions(list()).await.unwrap().into_inner();
    assert!(page.executions.is_empty());
}

/// `message` as a request with a 300 ms deadline.
fn within_300_ms<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_millis(300));
    request
}

/// Awaits a call sent [`within_300_ms`]: it ends with DEADLINE_EXCEEDED (or CANCELLED, as
/// a client may see it) within 2 s.
async fn assert_ends_at_the_deadline<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) {
    let asked = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the deadline ends the call")
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

/// Waits (at most 2 s) until `want` statements wait for a lock in `database`, then
/// asserts that they do (`what` says what it means if not).
async fn assert_waiting_for_locks(database: &PostgresDatabase, want: i64, what: &str) {
    let mut waiting = database.statements_waiting_for_locks().await;
    for _ in 0..40 {
        if waiting == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting = database.statements_waiting_for_locks().await;
    }
    assert_eq!(waiting, want, "{what}");
}
