//! Watches under load: a burst of concurrent writers, a watcher that stops reading, a
//! thousand watchers of one execution, no database read per change, and the cap on open
//! watches.

use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use executions::service::WatchSettings;
use tonic::Code;

db_tests!(
    revisions_strictly_increase_under_a_burst_of_concurrent_writers,
    a_watcher_that_stops_reading_gets_the_latest_state,
    a_thousand_watchers_all_see_the_terminal_state,
    changes_reach_local_watchers_without_reading_the_database,
);

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
