//! PostgreSQL restarted under load: two replicas, 200 watchers, 4 WatchExecutions feeds,
//! 4 writers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tonic::Code;

use crate::cluster::Cluster;
use crate::harness::*;

/// Executions, and actions per execution (each reported RUNNING then COMPLETED).
const EXECUTIONS: usize = 20;
const ACTIONS: usize = 15;
/// An execution's revision once every action completed.
const FINAL_REVISION: i64 = 1 + 2 * ACTIONS as i64;
const WATCHERS: usize = 200;
const WRITERS: usize = 4;
/// How long the database is down: longer than the pool's 5 s acquire timeout, within
/// which a call (and the health probe) waits for a connection rather than failing, so
/// that a shorter outage shows as latency, not as UNAVAILABLE.
const DOWN: Duration = Duration::from_secs(7);

/// What one writer saw.
#[derive(Default)]
struct Writes {
    acknowledged: usize,
    unavailable: usize,
    /// From its first UNAVAILABLE to its first success after it.
    gap: Option<Duration>,
    /// The slowest single call.
    slowest: Duration,
}

/// Reports `request` until it is acknowledged: UNAVAILABLE is retried after 50 ms (a
/// retried report that had committed is an OK no-op), any other error fails the test.
async fn write(client: &mut Client, request: pb::UpdateActionRequest, seen: &mut Writes) {
    let mut first_unavailable: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "a write acknowledged within 60 s"
        );
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(Duration::from_secs(10));
        let began = Instant::now();
        let answer = client.update_action(call).await;
        seen.slowest = seen.slowest.max(began.elapsed());
        match answer {
            Ok(_) => {
                seen.acknowledged += 1;
                if let Some(first) = first_unavailable {
                    seen.gap = Some(seen.gap.unwrap_or_default().max(first.elapsed()));
                }
                return;
            }
            Err(status) if status.code() == Code::Unavailable => {
                seen.unavailable += 1;
                first_unavailable.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("a writer got {status:?} (only UNAVAILABLE is allowed)"),
        }
    }
}

/// Watches `id` to its terminal message, reopening the watch with `since_revision` after
/// an UNAVAILABLE; returns the last revision seen and the number of reopenings.
async fn watch_to_the_end(client: Client, id: String) -> (i64, usize) {
    let mut client = client;
    let (mut last, mut reopened) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    'reopen: loop {
        assert!(Instant::now() < deadline, "watch {id} ends within 60 s");
        let mut events = match watch(&mut client, &id, last).await {
            Ok(events) => events,
            Err(status) if status.code() == Code::Unavailable => {
                reopened += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(status) => panic!("watch {id}: {status:?}"),
        };
        loop {
            match next_within(&mut events, 30).await {
                Ok(Some(message)) => {
                    check_order(&message, &mut last);
                    if message
                        .execution
                        .is_some_and(|e| e.status() != ExecutionStatus::Running)
                    {
                        let end = next_within(&mut events, 10).await;
                        assert!(matches!(end, Ok(None)), "ends with OK: {end:?}");
                        return (last, reopened);
                    }
                }
                Ok(None) => panic!("watch {id} ended before a terminal state"),
                Err(status) if status.code() == Code::Unavailable => {
                    reopened += 1;
                    continue 'reopen;
                }
                Err(status) => panic!("watch {id}: {status:?}"),
            }
        }
    }
}

/// Follows every execution with WatchExecutions until each is at `FINAL_REVISION`,
/// resuming after an UNAVAILABLE from the cursor the error names (or the last one
/// received); revisions strictly increase per execution on each stream. Returns the
/// number of resumptions.
async fn feed_to_the_end(client: Client) -> usize {
    use std::collections::HashMap;
    let mut client = client;
    let mut newest: HashMap<String, i64> = HashMap::new();
    let (mut cursor, mut resumed) = (String::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    'resume: loop {
        assert!(Instant::now() < deadline, "the feed converges within 60 s");
        let request = pb::WatchExecutionsRequest {
            resume_cursor: cursor.clone(),
            ..Default::default()
        };
        let mut feed = match client.watch_executions(request).await {
            Ok(feed) => feed.into_inner(),
            Err(status) if status.code() == Code::Unavailable => {
                resumed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(status) => panic!("feed: {status:?}"),
        };
        let mut on_this_stream: HashMap<String, i64> = HashMap::new();
        loop {
            match next_within(&mut feed, 30).await {
                Ok(Some(message)) => {
                    cursor = message.cursor.clone();
                    if let Some(e) = message.execution {
                        let last = on_this_stream.insert(e.id.clone(), e.revision);
                        assert!(last.is_none_or(|last| last < e.revision), "{}", e.id);
                        newest.insert(e.id, e.revision);
                    }
                    if newest.len() == EXECUTIONS
                        && newest.values().all(|revision| *revision == FINAL_REVISION)
                    {
                        return resumed;
                    }
                }
                Ok(None) => panic!("the feed ended with OK"),
                Err(status) if status.code() == Code::Unavailable => {
                    use tonic_types::StatusExt;
                    if let Some(named) = status
                        .get_error_details()
                        .error_info()
                        .and_then(|info| info.metadata.get("resume_cursor").cloned())
                    {
                        cursor = named;
                    }
                    resumed += 1;
                    continue 'resume;
                }
                Err(status) => panic!("feed: {status:?}"),
            }
        }
    }
}

/// PostgreSQL stopped for 7 s and started again while two replicas serve 200 watchers
/// and 4 writers: writers get UNAVAILABLE (never INTERNAL) during the gap and succeed
/// after; health goes NOT_SERVING and back; every watcher ends at its execution's final
/// revision with strictly increasing revisions, and so does every WatchExecutions feed
/// (two on each replica); no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn postgres_restart_under_watchers_and_writers() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let a = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let b = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .start()
        .await;
    let mut client = a.client.clone();
    let mut ids = Vec::new();
    for i in 0..EXECUTIONS {
        ids.push(
            start(&mut client, &format!("restart-{i}"), fan(ACTIONS))
                .await
                .id,
        );
    }

    // Health of replica A, watched throughout.
    let mut health = health_watch(&a, "").await;
    let health_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Ok(Some(message))) =
            tokio::time::timeout(Duration::from_secs(30), health.message()).await
        {
            seen.push(message.status());
            if seen.ends_with(&[ServingStatus::NotServing, ServingStatus::Serving]) {
                break;
            }
        }
        seen
    });

    // 200 watchers, half on each replica, 5 connections per replica.
    let mut watchers = tokio::task::JoinSet::new();
    let mut connections = Vec::new();
    for server in [&a, &b] {
        for _ in 0..5 {
            connections.push(server.new_client().await);
        }
    }
    for w in 0..WATCHERS {
        let client = connections[w % connections.len()].clone();
        watchers.spawn(watch_to_the_end(client, ids[w % EXECUTIONS].clone()));
    }

    // 4 feeds of every execution, two on each replica.
    let mut feeds = tokio::task::JoinSet::new();
    for f in 0..4 {
        feeds.spawn(feed_to_the_end(
            connections[f * 3 % connections.len()].clone(),
        ));
    }

    // 4 writers, each owning every 4th execution, writing through either replica.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let mut client = if w % 2 == 0 {
            a.new_client().await
        } else {
            b.new_client().await
        };
        let owned: Vec<String> = ids.iter().skip(w).step_by(WRITERS).cloned().collect();
        writers.spawn(async move {
            let mut seen = Writes::default();
            for action in 0..ACTIONS {
                for id in &owned {
                    for status in [ActionStatus::Running, ActionStatus::Completed] {
                        let node = format!("p{action}");
                        write(&mut client, report(id, &node, status), &mut seen).await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            seen
        });
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    let cluster = Arc::new(cluster);
    let restarted = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            cluster.stop();
            std::thread::sleep(DOWN);
            cluster.start_again();
        })
    };
    restarted.await.unwrap();

    let mut writes = Vec::new();
    while let Some(done) = tokio::time::timeout(Duration::from_secs(90), writers.join_next())
        .await
        .expect("writers finish within 90 s")
    {
        writes.push(done.unwrap());
    }
    let mut converged = 0;
    let mut reopened = 0;
    while let Some(done) = tokio::time::timeout(Duration::from_secs(60), watchers.join_next())
        .await
        .expect("watchers finish within 60 s")
    {
        let (last, again) = done.unwrap();
        assert_eq!(last, FINAL_REVISION, "a watcher ends at the final revision");
        converged += 1;
        reopened += again;
    }
    let mut feeds_resumed = 0;
    while let Some(done) = tokio::time::timeout(Duration::from_secs(60), feeds.join_next())
        .await
        .expect("feeds converge within 60 s")
    {
        feeds_resumed += done.unwrap();
    }
    let health_seen = health_task.await.unwrap();
    assert!(
        health_seen.ends_with(&[ServingStatus::NotServing, ServingStatus::Serving]),
        "health went NOT_SERVING and back: {health_seen:?}"
    );

    // No acknowledged write lost: every execution holds every report, once.
    let mut client = b.client.clone();
    for id in &ids {
        let stored = get(&mut client, id).await;
        assert_eq!(stored.status(), ExecutionStatus::Completed, "{id}");
        assert_eq!(stored.revision, FINAL_REVISION, "{id}");
        assert_eq!(stored.completed_actions_count, ACTIONS as i32);
    }
    let acknowledged: usize = writes.iter().map(|w| w.acknowledged).sum();
    let unavailable: usize = writes.iter().map(|w| w.unavailable).sum();
    let gap = writes.iter().filter_map(|w| w.gap).max();
    let slowest = writes.iter().map(|w| w.slowest).max().unwrap_or_default();
    assert_eq!(acknowledged, EXECUTIONS * ACTIONS * 2);
    assert!(unavailable > 0, "the writers felt the restart");
    crate::report_figures(&format!(
        "postgres restart: database down {DOWN:?}; writers' longest gap {gap:?}, slowest call {slowest:?}; \
         {unavailable} UNAVAILABLE answers, 0 other errors; {acknowledged} writes acknowledged, 0 lost; \
         {converged}/{WATCHERS} watchers converged at revision {FINAL_REVISION} ({reopened} reopenings); \
         4/4 feeds converged ({feeds_resumed} resumptions); \
         health {health_seen:?}"
    ));
    a.stop().await;
    b.stop().await;
    drop(cluster);
}
