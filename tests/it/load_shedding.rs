//! Load shedding: past the concurrent-call limit a call is refused at once instead of
//! queueing, and health checks still get through.

use std::time::{Duration, Instant};

use executions::grpc::{Limits, ServerConfig};
use tonic::Code;

use crate::db_tests;
use crate::harness::*;

db_tests!(load_past_the_limit_is_shed_at_once);

/// With one call allowed at a time and that one stuck behind a lock, the next unary call
/// is refused at once with RESOURCE_EXHAUSTED (`OVERLOADED`) instead of waiting, and so
/// is a watch trying to open, while health checks still get through; the stuck call then
/// completes.
async fn load_past_the_limit_is_shed_at_once(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(ServerConfig {
            limits: Limits {
                max_concurrent_calls: 1,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "shed", chain(2)).await;
    let lock = hold_lock(&server, &e.id).await;
    let mut stuck_client = server.new_client().await;
    let id = e.id.clone();
    let stuck = tokio::spawn(async move {
        stuck_client
            .update_action(report(&id, "a1", ActionStatus::Running))
            .await
    });
    // Let the stuck call take the one slot.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_execution(get_request(&e.id)),
    )
    .await
    .expect("refused at once, not queued")
    .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let err = client
        .watch_execution(watch_request(&e.id))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert_health(&server, ServingStatus::Serving).await;

    drop(lock);
    let moved = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("the stuck call finishes once the lock is gone")
        .unwrap()
        .expect("and succeeds")
        .into_inner();
    assert_eq!(moved.revision, 2);
    // The slot is free again.
    assert_eq!(get(&mut client, &e.id).await.revision, 2);
    server.stop().await;
}

/// No connection takes more than its share: with 8 slots, one connection holding 2 calls
/// stuck behind a lock is refused a third (RESOURCE_EXHAUSTED `OVERLOADED`), while
/// another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_gets_a_quarter_of_the_slots() {
    let server = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                max_concurrent_calls: 8,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "share", fan(4)).await;
    let lock = hold_lock(&server, &e.id).await;
    let greedy = server.new_client().await;
    let stuck: Vec<_> = (0..2)
        .map(|i| {
            let (mut greedy, id) = (greedy.clone(), e.id.clone());
            tokio::spawn(async move {
                greedy
                    .update_action(report(&id, &format!("p{i}"), ActionStatus::Running))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = greedy
        .clone()
        .get_execution(get_request(&e.id))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert_eq!(
        get(&mut client, &e.id).await.revision,
        1,
        "another connection is served"
    );
    drop(lock);
    for call in stuck {
        call.await.unwrap().expect("the stuck calls finish");
    }
    server.stop().await;
}
