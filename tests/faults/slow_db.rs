//! The database slow, then black-holed, then healed, through a TCP proxy.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::cluster::Cluster;
use crate::harness::*;
use crate::proxy::{Mode, Proxy};

/// The deadline every call of the scenario carries.
const DEADLINE: Duration = Duration::from_secs(1);
/// How late past its deadline a call may end (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(700);

/// What a wave of calls got.
#[derive(Debug, Default)]
struct Wave {
    ok: usize,
    deadline_exceeded: usize,
    unavailable: usize,
    /// Ended by the client's own copy of the deadline (tonic's channel enforces
    /// `grpc-timeout` too, as CANCELLED "Timeout expired"), at most a hair before the
    /// server's DEADLINE_EXCEEDED would have arrived; what the server answered is
    /// checked in its metrics.
    client_deadline: usize,
    slowest: Duration,
}

/// `n` calls at once (Get and UpdateAction alternately) with [`DEADLINE`]; each must end
/// by its deadline (plus [`SLACK`]) with OK, DEADLINE_EXCEEDED or UNAVAILABLE.
async fn wave(server: &TestServer, id: &str, n: usize) -> Wave {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut client = server.client.clone();
        let id = id.to_owned();
        calls.spawn(async move {
            let began = Instant::now();
            let answer = tokio::time::timeout(DEADLINE + SLACK, async {
                if i % 2 == 0 {
                    let mut request = tonic::Request::new(get_request(&id));
                    request.set_timeout(DEADLINE);
                    client.get_execution(request).await.map(drop)
                } else {
                    // A no-op report (the action is RUNNING): it still reads and locks.
                    let mut request = tonic::Request::new(report(&id, "p0", ActionStatus::Running));
                    request.set_timeout(DEADLINE);
                    client.update_action(request).await.map(drop)
                }
            })
            .await
            .unwrap_or_else(|_| panic!("a call ended {:?} after its deadline", SLACK));
            (answer, began.elapsed())
        });
    }
    let mut wave = Wave::default();
    while let Some(done) = calls.join_next().await {
        let (answer, took) = done.unwrap();
        wave.slowest = wave.slowest.max(took);
        match answer {
            Ok(()) => wave.ok += 1,
            Err(status) if status.code() == Code::DeadlineExceeded => wave.deadline_exceeded += 1,
            Err(status) if status.code() == Code::Unavailable => wave.unavailable += 1,
            Err(status)
                if status.code() == Code::Cancelled
                    && status.message() == "Timeout expired"
                    && took >= DEADLINE =>
            {
                wave.client_deadline += 1
            }
            Err(status) => panic!("a call answered {status:?} after {took:?}"),
        }
    }
    wave
}

/// Sum of a metric's samples over all labels.
fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Calls the server answered with `code` (its metric's label).
async fn answered(metrics_port: u16, code: &str) -> f64 {
    let metrics = http_get(metrics_port, "/metrics").await;
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("grpc_server_handled_total{")
                && line.contains(&format!("grpc_code=\"{code}\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        .abs()
}

/// Calls the server has begun and not yet answered.
async fn in_flight(metrics_port: u16) -> f64 {
    let metrics = http_get(metrics_port, "/metrics").await;
    total(&metrics, "grpc_server_started_total") - total(&metrics, "grpc_server_handled_total")
}

/// PostgreSQL behind a proxy turns slow (40 ms per chunk each way), then black-holed for
/// 3 s, then healthy: every call ends by its 1 s deadline (DEADLINE_EXCEEDED, UNAVAILABLE,
/// or the client's own copy of the deadline), the server answers none INTERNAL and holds
/// none past its deadline (started minus answered falls back to the metrics probe's own
/// call), and writes succeed again by themselves once healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_pg_cluster), ignore = "needs PostgreSQL's initdb and pg_ctl")]
async fn slow_then_black_holed_database_bounded_by_deadlines_then_recovers() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port).into()).await;
    let url = format!("postgres://postgres@{}/postgres", proxy.addr);
    let metrics_port = free_port();
    let server = TestServer::builder()
        .database_url(Backend::Postgres, &url)
        .config(executions::grpc::ServerConfig {
            metrics_listen: Some(([127, 0, 0, 1], metrics_port).into()),
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "slow", fan(2)).await;
    update(&mut client, &e.id, "p0", ActionStatus::Running).await;
    let healthy = wave(&server, &e.id, 20).await;
    assert_eq!(healthy.ok, 20, "{healthy:?}");

    proxy.set(Mode::Slow(Duration::from_millis(40)));
    let slow = wave(&server, &e.id, 20).await;

    proxy.set(Mode::BlackHole);
    let holed_at = Instant::now();
    let black_hole = wave(&server, &e.id, 100).await;
    let second = wave(&server, &e.id, 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = in_flight(metrics_port).await;
    assert!(
        pending <= 2.0,
        "{pending} calls still in flight on the server after their deadlines"
    );
    // What the server itself answered: only codes a caller may retry, never INTERNAL.
    let server_deadline = answered(metrics_port, "DeadlineExceeded").await;
    let server_unavailable = answered(metrics_port, "Unavailable").await;
    // Calls whose client gave up first (at the same deadline) end on the server as
    // cancelled: the server stopped working on them too.
    let server_cancelled = answered(metrics_port, "Canceled").await;
    for code in ["Internal", "Unknown"] {
        assert_eq!(
            answered(metrics_port, code).await,
            0.0,
            "server answered {code}"
        );
    }
    assert!(
        server_deadline + server_unavailable + server_cancelled >= 200.0,
        "every black-holed call ended on the server: {server_deadline} DEADLINE_EXCEEDED, {server_unavailable} UNAVAILABLE, {server_cancelled} cancelled"
    );
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(holed_at.elapsed())).await;

    proxy.set(Mode::Pass);
    let healed = Instant::now();
    let mut recovered = None;
    while healed.elapsed() < Duration::from_secs(30) {
        let mut request = tonic::Request::new(report(&e.id, "p1", ActionStatus::Running));
        request.set_timeout(DEADLINE);
        if client.update_action(request).await.is_ok() {
            recovered = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("writes succeed again within 30 s of healing");
    let after = wave(&server, &e.id, 20).await;
    assert_eq!(after.ok, 20, "{after:?}");
    assert_health(&server, ServingStatus::Serving).await;
    crate::report_figures(&format!(
        "slow / black-holed database: slow (40 ms per chunk) {slow:?}; black hole, 2 waves of 100 calls {black_hole:?} {second:?}; \
         the server ended them with {server_deadline} DEADLINE_EXCEEDED, {server_unavailable} UNAVAILABLE, {server_cancelled} cancelled by the client at the same deadline, 0 INTERNAL; {pending} calls in flight after their deadlines; writes recovered {recovered:?} after healing; after {after:?}"
    ));
    server.stop().await;
    drop(proxy);
    drop(cluster);
}
