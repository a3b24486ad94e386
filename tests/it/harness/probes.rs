//! Probes from outside the API: health checks and free ports.

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
