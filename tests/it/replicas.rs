//! Replicas on one PostgreSQL database: they migrate it once between them, and a change
//! made through one reaches the watchers on another, even across a lost connection.

use std::time::Duration;

use crate::harness::*;
use executions::proto::v1 as pb;

/// Replicas starting together on an empty PostgreSQL database all come up: they take turns
/// migrating instead of racing on the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn replicas_starting_together_migrate_once() {
    let fresh = PostgresDatabase::create(&this_test()).await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = fresh.url().to_owned();
        starts.push(tokio::spawn(async move {
            executions::db::Database::connect(&url, 2).await
        }));
    }
    for start in starts {
        let db = start.await.unwrap().expect("every replica starts");
        db.close().await.unwrap();
    }
    drop(fresh);
}

/// Two servers on one PostgreSQL database: a change made through A reaches a watcher on B
/// (one read on B per change, shared by its watchers). Then B's listening connection is
/// terminated from SQL while changes keep landing through A: B's watchers still converge
/// to the final state, with revisions that only go up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn changes_reach_watchers_on_another_replica_even_across_a_lost_connection() {
    use sea_orm::ConnectionTrait;
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
    // B's relay listens before the watchers open: its first catch-up read (of whatever
    // B's watchers watch when it connects) must not fall into the counted window below.
    let listening = format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = '{b_user}' AND query ILIKE 'LISTEN%'"
    );
    let mut b_listens = false;
    for _ in 0..100 {
        let row = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                listening.clone(),
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() > 0 {
            b_listens = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b_listens, "B's relay listens within 10 s");
    tokio::time::sleep(Duration::from_millis(200)).await;
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

/// A stop event sent through replica A reaches the watchers of its executions on replica
/// B: each watcher sees its execution STOPPED, at the revision the job answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_stop_event_through_one_replica_reaches_watchers_on_another() {
    let a = TestServer::builder().on(Backend::Postgres).start().await;
    let b = TestServer::builder().same_database_as(&a).start().await;
    let (mut through_a, mut on_b) = (a.client.clone(), b.client.clone());
    let mut watchers = Vec::new();
    for i in 0..5 {
        let e = through_a
            .start_execution(pb::StartExecutionRequest {
                stop_events: vec!["freeze".into()],
                ..start_request_for(&format!("frozen-{i}"), "")
            })
            .await
            .unwrap()
            .into_inner();
        let mut events = watch(&mut on_b, &e.id, 0).await.unwrap();
        let snapshot = next(&mut events).await.unwrap().unwrap();
        assert_eq!(snapshot.revision, 1);
        watchers.push((e.id, events));
    }
    let done = through_a
        .stop_executions(pb::StopExecutionsRequest {
            stop_event: "freeze".into(),
            reason: "change freeze".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.stopped_count, 5);
    for (id, mut events) in watchers {
        let update = next(&mut events).await.unwrap().unwrap();
        let stopped = update.execution.unwrap();
        assert_eq!(stopped.status, ExecutionStatus::Stopped as i32, "{id}");
        assert_eq!(stopped.stop_reason, "change freeze");
        let answered = done.executions.iter().find(|e| e.id == id).unwrap();
        assert_eq!(update.revision, answered.revision);
        // Terminal: the stream ends with OK.
        assert!(next(&mut events).await.unwrap().is_none());
    }
    b.stop().await;
    a.stop().await;
}

/// Two replicas deleting by retention on one PostgreSQL database: finished executions go
/// away once, running ones stay (the deleters take turns on an advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn replicas_share_retention() {
    let a = TestServer::builder()
        .on(Backend::Postgres)
        .retention(Duration::from_secs(1))
        .start()
        .await;
    let b = TestServer::builder()
        .same_database_as(&a)
        .retention(Duration::from_secs(1))
        .start()
        .await;
    let mut client = a.client.clone();
    let mut finished = Vec::new();
    for i in 0..20 {
        let e = start(&mut client, &format!("old-{i}"), chain(1)).await;
        client
            .stop_execution(stop_request(&e.id, ""))
            .await
            .unwrap();
        finished.push(e.id);
    }
    let running = start(&mut client, "young", chain(1)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = client
            .count_executions(pb::CountExecutionsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .count;
        if left == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} left after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        get(&mut client, &running.id).await.status,
        ExecutionStatus::Running as i32
    );
    b.stop().await;
    a.stop().await;
}
