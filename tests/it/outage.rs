//! A database outage reaches callers as UNAVAILABLE (retryable), never INTERNAL, and the
//! service recovers when the database comes back.

use crate::harness::*;

use sea_orm::ConnectionTrait;
use tonic::Code;

/// With PostgreSQL refusing connections and the service's connections terminated, Get
/// and Start answer UNAVAILABLE with reason DATABASE_UNAVAILABLE, the database error
/// metric counts them, and health turns NOT_SERVING (a health `Watch` stream sees it);
/// once connections are allowed again, the same calls succeed and health is SERVING
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn database_outage_is_unavailable_then_recovers() {
    use executions::grpc::ServerConfig;
    let metrics_port = free_port();
    let config = ServerConfig {
        metrics_listen: Some(([127, 0, 0, 1], metrics_port).into()),
        ..test_config()
    };
    let server = TestServer::builder()
        .on(Backend::Postgres)
        .config(config)
        .start()
        .await;
    let mut client = server.client.clone();
    let mut health = health_watch(&server, "").await;
    let mut next_health = async || {
        next_within(&mut health, 10)
            .await
            .unwrap()
            .unwrap()
            .status()
    };
    assert_eq!(next_health().await, ServingStatus::Serving);
    let e = start(&mut client, "outage", chain(2)).await;
    let database = server.postgres().unwrap().name();
    let admin = server.postgres().unwrap().admin().await;
    let set_connections =
        |allow: bool| format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allow}");
    admin
        .execute_unprepared(&set_connections(false))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ))
        .await
        .unwrap();

    for attempt in 0..3 {
        let err = client.get_execution(get_request(&e.id)).await.unwrap_err();
        assert_error(&err, Code::Unavailable, "DATABASE_UNAVAILABLE", None);
        assert!(
            !err.message().contains("SQL"),
            "attempt {attempt}: {}",
            err.message()
        );
    }
    let err = client
        .start_execution(executions::proto::v1::StartExecutionRequest {
            key: "outage".into(),
            template: Some(chain(1)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::Unavailable, "DATABASE_UNAVAILABLE", None);
    assert_health(&server, ServingStatus::NotServing).await;
    assert_eq!(next_health().await, ServingStatus::NotServing);
    let metrics = http_get(metrics_port, "/metrics").await;
    let errors = sample(&metrics, "executions_database_errors_total");
    assert!(errors.is_some_and(|n| n >= 4.0), "{metrics}");

    admin
        .execute_unprepared(&set_connections(true))
        .await
        .unwrap();
    admin.close().await.ok();
    assert_eq!(
        get(&mut client, &e.id).await.revision,
        1,
        "recovers once the database is back"
    );
    assert_health(&server, ServingStatus::Serving).await;
    assert_eq!(next_health().await, ServingStatus::Serving);
    server.stop().await;
}
