//! Shutdown as clients see it: health turns NOT_SERVING as soon as it begins.

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
