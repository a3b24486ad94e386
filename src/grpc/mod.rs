//! The transport: request validation, proto <-> domain conversion, errors as gRPC statuses,
//! and the server itself (the API, server reflection v1 and v1alpha, and grpc.health.v1).

mod from_proto;
mod handler;
mod render_cache;
mod status;
mod structs;
mod to_proto;

use std::future::Future;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use handler::ExecutionApi;
pub use status::ERROR_DOMAIN;
pub use structs::json_to_struct;

use crate::proto::v1::FILE_DESCRIPTOR_SET;
use crate::proto::v1::execution_service_server::ExecutionServiceServer;
use crate::service::Executions;

/// Settings of the gRPC server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Zone for times when a request names none.
    pub default_time_zone: Tz,
    /// How long in-flight calls may run after shutdown begins.
    pub shutdown_grace: Duration,
    /// How often health checks that the database answers.
    pub health_check_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            default_time_zone: Tz::UTC,
            shutdown_grace: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(5),
        }
    }
}

/// Health of the whole server ("") and of the API service.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(
            <ExecutionServiceServer<ExecutionApi> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
}

/// Keeps health in step with the database: NOT_SERVING while it does not answer, so load
/// balancers and probes route around this replica; SERVING again once it does.
async fn report_database_health(
    executions: Executions,
    health: HealthReporter,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut serving = true;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let up = tokio::select! {
            () = stop.cancelled() => return,
            up = executions.database_is_up() => up,
        };
        if up != serving {
            serving = up;
            if up {
                tracing::info!("database answers again: SERVING");
            } else {
                tracing::warn!("database does not answer: NOT_SERVING");
            }
            let status = if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            // A shutdown that began meanwhile has the last word.
            if !stop.is_cancelled() {
                set_health(&health, status).await;
            }
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then marks health NOT_SERVING,
/// ends every watch stream, stops accepting, and lets in-flight calls finish for at most
/// the grace period. On PostgreSQL it also relays changes to and from other replicas
/// while it runs.
pub async fn run(
    config: ServerConfig,
    executions: Executions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.ErrorInfo and BadRequest, so grpcurl -format-error can show the
            // details every error carries.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let feed_stop = tokio_util::sync::CancellationToken::new();
    let feed = executions.start_change_feed(feed_stop.clone());
    let health_stop = tokio_util::sync::CancellationToken::new();
    let health_task = tokio::spawn(report_database_health(
        executions.clone(),
        health.clone(),
        config.health_check_interval,
        health_stop.clone(),
    ));
    let api = ExecutionServiceServer::new(ExecutionApi::new(
        executions.clone(),
        config.default_time_zone,
    ));
    let local_addr = listener.local_addr()?;

    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(api)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = stopped.await;
            },
        );
    let mut server = tokio::spawn(server);
    tracing::info!(%local_addr, "serving workflow.executions.v1.ExecutionService");

    let stop_feed = || async {
        health_stop.cancel();
        feed_stop.cancel();
        for task in feed {
            let _ = task.await;
        }
    };
    tokio::select! {
        result = &mut server => {
            stop_feed().await;
            return Ok(result??);
        }
        () = shutdown => {}
    }
    tracing::info!(open_watches = executions.open_watches(), "shutting down");
    // Not serving from now on, whatever the database says.
    health_stop.cancel();
    let _ = health_task.await;
    set_health(&health, ServingStatus::NotServing).await;
    // End every watch stream now (UNAVAILABLE, naming the last revision it sent), so the
    // graceful stop below only waits for unary calls.
    executions.close_watches();
    let _ = stop_accepting.send(());
    match tokio::time::timeout(config.shutdown_grace, &mut server).await {
        Ok(result) => result??,
        Err(_) => {
            tracing::warn!(grace = ?config.shutdown_grace, "calls still running after the grace period; closing");
            server.abort();
        }
    }
    stop_feed().await;
    Ok(())
}
