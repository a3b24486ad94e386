//! Failover: a synchronous streaming standby promoted after the primary stops, the
//! service pointed at it through the proxy.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tonic::Code;

use crate::cluster::Cluster;
use crate::harness::*;
use crate::proxy::Proxy;

const EXECUTIONS: usize = 6;
const ACTIONS: usize = 15;
const FINAL_REVISION: i64 = 1 + 2 * ACTIONS as i64;
const WATCHERS: usize = 30;

/// Reports until acknowledged, retrying UNAVAILABLE (and DEADLINE_EXCEEDED, which a call
/// hung on the dead primary's connection may end with); returns the UNAVAILABLE count.
async fn report_until_acknowledged(
    client: &mut Client,
    id: &str,
    node: &str,
    status: ActionStatus,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        assert!(Instant::now() < deadline, "acknowledged within 60 s");
        let mut request = tonic::Request::new(report(id, node, status));
        request.set_timeout(Duration::from_secs(3));
        match client.update_action(request).await {
            Ok(_) => return refused,
            Err(s)
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
                ) =>
            {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("a writer got {s:?}"),
        }
    }
}

/// The primary has a synchronous standby (`synchronous_standby_names = '*'`); while two
/// writers report progress and 30 watchers watch, the primary is stopped, the standby
/// promoted, and the proxy sent to it: the service reconnects without a restart, no
/// acknowledged write is lost, and every watcher converges at the final revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn failover_to_a_synchronous_standby() {
    let primary = Cluster::start();
    let standby = Cluster::standby_of(&primary);
    primary
        .execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .await;
    primary.execute("SELECT pg_reload_conf()").await;
    let admin = primary.admin().await;
    let mut synchronous = false;
    for _ in 0..200 {
        let row = admin
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_replication WHERE sync_state = 'sync'",
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() == 1 {
            synchronous = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.close().await.ok();
    assert!(synchronous, "the standby replicates synchronously");

    let proxy = Proxy::start(([127, 0, 0, 1], primary.port).into()).await;
    let url = format!("postgres://postgres@{}/postgres", proxy.addr);
    let server = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let mut client = server.client.clone();
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        ids.push(
            start(&mut client, &format!("failover-{i}"), fan(ACTIONS))
                .await
                .id,
        );
    }
    let mut watchers = tokio::task::JoinSet::new();
    for w in 0..WATCHERS {
        let mut client = server.client.clone();
        let id = ids[w % EXECUTIONS].clone();
        watchers.spawn(async move {
            let mut last = 0;
            let mut reopened = 0;
            let deadline = Instant::now() + Duration::from_secs(90);
            'reopen: loop {
                assert!(Instant::now() < deadline, "converges within 90 s");
                let mut events = match watch(&mut client, &id, last).await {
                    Ok(events) => events,
                    Err(_) => {
                        reopened += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                loop {
                    match next_within(&mut events, 60).await {
                        Ok(Some(m)) => {
                            check_order(&m, &mut last);
                            if m.execution
                                .is_some_and(|e| e.status() != ExecutionStatus::Running)
                            {
                                return (last, reopened);
                            }
                        }
                        Ok(None) => panic!("ended before a terminal state"),
                        Err(_) => {
                            reopened += 1;
                            continue 'reopen;
                        }
                    }
                }
            }
        });
    }
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..2 {
        let mut client = server.new_client().await;
        let owned: Vec<String> = ids.iter().skip(w).step_by(2).cloned().collect();
        writers.spawn(async move {
            let mut refused = 0;
            for action in 0..ACTIONS {
                for id in &owned {
                    for status in [ActionStatus::Running, ActionStatus::Completed] {
                        refused += report_until_acknowledged(
                            &mut client,
                            id,
                            &format!("p{action}"),
                            status,
                        )
                        .await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            refused
        });
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let failing_over = Instant::now();
    let standby_port = standby.port;
    let primary = std::sync::Arc::new(primary);
    let standby = std::sync::Arc::new(standby);
    {
        let (primary, standby) = (primary.clone(), standby.clone());
        tokio::task::spawn_blocking(move || {
            primary.stop();
            standby.promote();
        })
        .await
        .unwrap();
    }
    proxy.redirect(([127, 0, 0, 1], standby_port).into());
    let promoted = failing_over.elapsed();

    let mut refused = 0;
    while let Some(done) = tokio::time::timeout(Duration::from_secs(90), writers.join_next())
        .await
        .expect("writers finish within 90 s")
    {
        refused += done.unwrap();
    }
    let writes_done = failing_over.elapsed();
    let (mut converged, mut reopened) = (0, 0);
    while let Some(done) = tokio::time::timeout(Duration::from_secs(90), watchers.join_next())
        .await
        .expect("watchers finish within 90 s")
    {
        let (last, again) = done.unwrap();
        assert_eq!(
            last, FINAL_REVISION,
            "a watcher converges at the final revision"
        );
        converged += 1;
        reopened += again;
    }
    for id in &ids {
        let e = get(&mut client, id).await;
        assert_eq!(
            e.revision, FINAL_REVISION,
            "{id}: no acknowledged write lost"
        );
        assert_eq!(e.completed_actions_count, ACTIONS as i32);
    }
    crate::report_figures(&format!(
        "failover: primary stopped and standby promoted in {promoted:?}; writers refused {refused} times, all {} writes acknowledged and kept (0 lost), \
         writing done {writes_done:?} after the failover began; {converged}/{WATCHERS} watchers converged ({reopened} reopenings); no server restart",
        EXECUTIONS * ACTIONS * 2
    ));
    server.stop().await;
    drop(proxy);
    drop(standby);
    drop(primary);
}
