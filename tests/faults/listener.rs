//! One replica's listening connection killed (`pg_terminate_backend`) while changes land
//! through the other replica.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::cluster::{Cluster, eventually};
use crate::harness::*;

const EXECUTIONS: usize = 4;
const ACTIONS: usize = 15;
const FINAL_REVISION: i64 = 1 + 2 * ACTIONS as i64;
const WATCHERS_PER_EXECUTION: usize = 5;

/// Terminates the backends of pg_stat_activity that match `condition`.
async fn terminate(admin: &sea_orm::DatabaseConnection, condition: &str) {
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {condition}"
        ))
        .await
        .unwrap();
}

/// Waits (up to 20 s) until replica A listens on a backend other than `old`; its pid.
async fn relistened(admin: &sea_orm::DatabaseConnection, old: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "replica A listens again within 20 s"
        );
        if let Some(pid) = listening_pid(admin, "replica_a").await
            && pid != old
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The pid of the backend where `user` runs LISTEN, if there is one.
async fn listening_pid(admin: &sea_orm::DatabaseConnection, user: &str) -> Option<i32> {
    let row = admin
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "SELECT pid FROM pg_stat_activity WHERE usename = '{user}' AND query ILIKE 'LISTEN%' ORDER BY backend_start DESC LIMIT 1"
            ),
        ))
        .await
        .unwrap()?;
    row.try_get::<i32>("", "pid").ok()
}

/// While every action of 4 executions completes through replica B, replica A's listening
/// connection is terminated from SQL three times, then A is cut off from the database for
/// 1 s: A's 20 watchers still receive every change (each ends at the final revision,
/// revisions strictly increasing) within 2 s of A's last reconnect or of the last write,
/// whichever is later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn killed_listener_catches_up_after_reconnect() {
    let cluster = Cluster::start();
    let url = cluster.url();
    // A connects as a user of its own, so its LISTEN backend can be told apart.
    cluster
        .execute("CREATE ROLE replica_a LOGIN SUPERUSER")
        .await;
    let a = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .connect_as("replica_a")
        .start()
        .await;
    let b = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let admin = cluster.admin().await;
    assert!(
        eventually(Duration::from_secs(10), async || listening_pid(
            &admin,
            "replica_a"
        )
        .await
        .is_some())
        .await,
        "replica A listens"
    );
    let old_pid = listening_pid(&admin, "replica_a").await.unwrap();

    let mut writer = b.client.clone();
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        ids.push(
            start(&mut writer, &format!("listener-{i}"), fan(ACTIONS))
                .await
                .id,
        );
    }
    let mut watchers = tokio::task::JoinSet::new();
    for id in &ids {
        for _ in 0..WATCHERS_PER_EXECUTION {
            let mut client = a.client.clone();
            let mut events = watch(&mut client, id, 0).await.unwrap();
            // The snapshot: the watch is subscribed before the fault.
            let mut last = 0;
            check_order(&next(&mut events).await.unwrap().unwrap(), &mut last);
            watchers.spawn(async move {
                loop {
                    let message = next_within(&mut events, 30).await.unwrap().unwrap();
                    check_order(&message, &mut last);
                    if last == FINAL_REVISION {
                        return (last, Instant::now());
                    }
                }
            });
        }
    }

    // Changes land through B throughout, paced, while A loses its listener.
    let writes = {
        let (mut writer, ids) = (writer.clone(), ids.clone());
        tokio::spawn(async move {
            for action in 0..ACTIONS {
                for id in &ids {
                    for status in [ActionStatus::Running, ActionStatus::Completed] {
                        update(&mut writer, id, &format!("p{action}"), status).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            Instant::now()
        })
    };
    // Three plain kills: the relay reconnects at once.
    let mut pid = old_pid;
    let mut reconnects = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let killed_at = Instant::now();
        terminate(&admin, &format!("pid = {pid}")).await;
        pid = relistened(&admin, pid).await;
        reconnects.push(killed_at.elapsed());
    }
    // Then A is kept away for 1 s (its role may not log in, its connections are cut), so
    // changes surely land while it does not listen; then let back in.
    let mut reader = b.client.clone();
    let before = get(&mut reader, &ids[0]).await.revision;
    admin
        .execute_unprepared("ALTER ROLE replica_a NOLOGIN")
        .await
        .unwrap();
    let blocked_at = Instant::now();
    terminate(&admin, "usename = 'replica_a'").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    admin
        .execute_unprepared("ALTER ROLE replica_a LOGIN")
        .await
        .unwrap();
    let landed = get(&mut reader, &ids[0]).await.revision - before;
    assert!(landed > 0, "changes landed while A was cut off");
    relistened(&admin, pid).await;
    let reconnected = Instant::now();
    let blocked = blocked_at.elapsed();
    let last_write = tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .expect("writes end within 60 s")
        .unwrap();
    let settled = reconnected.max(last_write);
    let mut latest_lag = Duration::ZERO;
    let mut converged = 0;
    while let Some(done) = tokio::time::timeout(Duration::from_secs(30), watchers.join_next())
        .await
        .expect("watchers converge within 30 s")
    {
        let (last, at) = done.unwrap();
        assert_eq!(last, FINAL_REVISION);
        latest_lag = latest_lag.max(at.saturating_duration_since(settled));
        converged += 1;
    }
    assert!(
        latest_lag <= Duration::from_secs(2),
        "watchers caught up {latest_lag:?} after the reconnect / last write"
    );
    crate::report_figures(&format!(
        "listener killed: 3 kills, replica A listened again after {reconnects:?}; then cut off for {blocked:?} while {landed} changes of one execution landed; {converged}/{} watchers on A reached revision {FINAL_REVISION}, the last {latest_lag:?} after the reconnect or last write (limit 2 s)",
        EXECUTIONS * WATCHERS_PER_EXECUTION
    ));
    admin.close().await.ok();
    a.stop().await;
    b.stop().await;
    drop(cluster);
}
