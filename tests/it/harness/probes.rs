//! Probes from outside the API: health checks, metrics scrapes and free ports.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::{ServingStatus, TestServer};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A `grpc.health.v1.Health/Watch` stream of `service` on its own connection.
pub async fn health_watch(
    server: &TestServer,
    service: &str,
) -> tonic::Streaming<HealthCheckResponse> {
    HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health watch")
        .into_inner()
}

/// Waits (up to 10 s) until both health entries report `expected`.
pub async fn assert_health(server: &TestServer, expected: ServingStatus) {
    let mut health = HealthClient::new(server.channel().await);
    for _ in 0..100 {
        let mut all = true;
        for service in ["", "workflow.executions.v1.ExecutionService"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status();
            all &= status == expected;
        }
        if all {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("health did not become {expected:?} within 10 s");
}

/// A plain HTTP GET of `path` on `port`; returns the body.
pub async fn http_get(port: u16, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics port open");
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The value of the sample whose line starts with `series` (name and labels).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}
