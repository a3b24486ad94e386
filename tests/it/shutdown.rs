//! Shutdown as clients see it: health turns NOT_SERVING as soon as it begins, and every
//! open watch ends promptly with UNAVAILABLE naming the last revision it sent.

use std::time::Duration;

use tonic::Code;

use crate::harness::*;

/// A health `Watch` stream sees SERVING, then NOT_SERVING as soon as shutdown begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watch_sees_shutdown() {
    let server = TestServer::builder().start().await;
    let mut health = health_watch(&server, "workflow.executions.v1.ExecutionService").await;
    let first = next_within(&mut health, 10).await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let watcher = tokio::spawn(async move {
        next_within(&mut health, 10)
            .await
            .map(|m| m.map(|m| m.status()))
    });
    server.stop().await;
    let seen = watcher.await.unwrap();
    assert!(
        matches!(seen, Ok(Some(ServingStatus::NotServing))),
        "{seen:?}"
    );
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
