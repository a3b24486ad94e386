//! Prometheus metrics over HTTP: calls by method and code, latencies, open watches and
//! changes published, as the calls made them; and the change reader's rounds 20 ms apart.

use std::time::Duration;

use executions::grpc::ServerConfig;
use tonic::Code;

use crate::harness::*;

/// A server on SQLite that serves `/metrics` on the port it answers with.
async fn metered_server() -> (TestServer, u16) {
    let port = free_port();
    let server = TestServer::builder()
        .config(ServerConfig {
            metrics_listen: Some(([127, 0, 0, 1], port).into()),
            ..test_config()
        })
        .start()
        .await;
    (server, port)
}

/// `GET /metrics` on the metrics address shows calls by method and code under the
/// standard gRPC server names, latency histograms, open watches and changes published,
/// as the calls made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http() {
    let (server, port) = metered_server().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "metered", chain(2)).await;
    let updated = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    // One change per revision, the creation included.
    let changes = updated.revision as f64;
    let missing = client
        .get_execution(get_request("01890a5d-ac96-774b-bcce-b302099a8057"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut watch = client
        .watch_execution(watch_request(&e.id))
        .await
        .unwrap()
        .into_inner();
    next_within(&mut watch, 10).await.unwrap();

    let text = http_get(port, "/metrics").await;
    let api = r#"grpc_service="workflow.executions.v1.ExecutionService""#;
    let handled = |method: &str, code: &str| {
        format!(
            r#"grpc_server_handled_total{{{api},grpc_method="{method}",grpc_type="unary",grpc_code="{code}"}}"#
        )
    };
    for (series, expected) in [
        (handled("StartExecution", "OK"), 1.0),
        (handled("UpdateAction", "OK"), 1.0),
        (handled("GetExecution", "NotFound"), 1.0),
        (
            format!(
                r#"grpc_server_started_total{{{api},grpc_method="WatchExecution",grpc_type="server_stream"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"grpc_server_handling_seconds_count{{{api},grpc_method="StartExecution",grpc_type="unary"}}"#
            ),
            1.0,
        ),
        ("executions_open_watches".to_owned(), 1.0),
        ("executions_changes_published_total".to_owned(), changes),
        ("executions_database_errors_total".to_owned(), 0.0),
    ] {
        assert_eq!(
            sample(&text, &series),
            Some(expected),
            "{series} in\n{text}"
        );
    }
    assert!(
        text.contains("grpc_server_handling_seconds_bucket{"),
        "{text}"
    );

    drop(watch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = http_get(port, "/metrics").await;
    assert_eq!(
        sample(&text, "executions_open_watches"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"grpc_server_handled_total{{{api},grpc_method="WatchExecution",grpc_type="server_stream",grpc_code="Canceled"}}"#
            )
        ),
        Some(1.0),
        "a watch its client dropped is counted when it ends:\n{text}"
    );
    server.stop().await;
}

/// The change reader reads a burst of commits in rounds at least
/// `changes::reader::MIN_GAP` (20 ms) apart, counted by `executions_feed_reads_total`:
/// 40 executions started at once reach the feed that follows them in no more rounds
/// than that spacing allows over the time they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_reader_reads_a_burst_in_rounds_twenty_ms_apart() {
    use executions::changes::reader::MIN_GAP;
    let (server, port) = metered_server().await;
    let mut feed = open_feed(&mut server.client.clone(), running_of_key("burst"))
        .await
        .unwrap();
    until_synced(&mut feed).await;
    let rounds = || async {
        sample(
            &http_get(port, "/metrics").await,
            "executions_feed_reads_total",
        )
        .expect("executions_feed_reads_total")
    };
    let before = rounds().await;
    let began = tokio::time::Instant::now();
    let starts: Vec<_> = (0..40)
        .map(|_| {
            let mut client = server.client.clone();
            tokio::spawn(async move { start(&mut client, "burst", chain(2)).await })
        })
        .collect();
    for started in starts {
        started.await.unwrap();
    }
    for _ in 0..40 {
        assert_eq!(
            next_change(&mut feed).await.kind(),
            executions::proto::v1::WatchEventKind::Update
        );
    }
    let elapsed = began.elapsed();
    let read = rounds().await - before;
    // Rounds start MIN_GAP apart; one may have begun just before `began`.
    let most = (elapsed.as_secs_f64() / MIN_GAP.as_secs_f64()).floor() + 2.0;
    assert!(
        read >= 1.0 && read <= most,
        "{read} rounds in {elapsed:?}: at most {most} may start {MIN_GAP:?} apart"
    );
    server.stop().await;
}
