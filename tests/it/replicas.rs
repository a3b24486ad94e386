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
