//! The transport: request validation, proto <-> domain conversion, errors as gRPC statuses,
//! and the server itself (the API, server reflection v1 and v1alpha, and grpc.health.v1).
//!
//! Every call passes, outermost first: `telemetry` (span, log line, metrics), `edge`
//! (deadlines, and every error settled: its code, an ErrorInfo, a bounded message),
//! [`auth`] (bearer tokens and roles), then its handler, which takes a slot from
//! `admission` (load shedding) once its request has arrived. TLS,
//! message-size limits, HTTP/2 stream limits and keepalive are the transport's settings.
//!
//! Browsers come in outside all of that: `web` answers CORS preflights and turns
//! gRPC-Web calls into gRPC ones (so every layer above applies to them too), and
//! `dashboard` answers `GET /` with the page.

mod admission;
mod answer;
mod api_server;
pub mod auth;
mod caller;
pub mod codec;
pub mod dashboard;
mod edge;
mod from_proto;
mod handler;
mod health;
mod incoming;
pub mod methods;
pub mod metrics;
mod render_cache;
mod size;
mod status;
mod structs;
mod telemetry;
mod to_proto;
mod unsent;
pub mod web;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

pub use auth::Tokens;
pub use handler::ExecutionApi;
pub use status::ERROR_DOMAIN;
pub use structs::json_to_struct;

use crate::proto::v1::FILE_DESCRIPTOR_SET;
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
    /// Known bearer tokens; `None` serves without authentication.
    pub tokens: Option<Tokens>,
    /// Serve TLS (and require client certificates) with these.
    pub tls: Option<TlsSettings>,
    /// Transport limits.
    pub limits: Limits,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Origins other than the server's own whose pages may call the API from a browser
    /// (gRPC-Web with CORS); see [`web::parse_origin`].
    pub cors_origins: Vec<http::HeaderValue>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            default_time_zone: Tz::UTC,
            shutdown_grace: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(5),
            tokens: None,
            tls: None,
            limits: Limits::default(),
            metrics_listen: None,
            cors_origins: Vec::new(),
        }
    }
}

/// Certificates of a TLS server, in PEM.
#[derive(Clone)]
pub struct TlsSettings {
    /// The server's certificate chain.
    pub cert_pem: Vec<u8>,
    /// The server's private key.
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by one of these (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// What the transport allows each caller.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Most calls open at once on one HTTP/2 connection (more wait for a free one).
    pub max_concurrent_streams: u32,
    /// Most calls running their handlers at once; more are refused with
    /// RESOURCE_EXHAUSTED.
    pub max_concurrent_calls: usize,
    /// Idle time after which the server pings a connection (HTTP/2 and TCP keepalive).
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Most connections open at once (lowered to fit the file-descriptor limit).
    pub max_connections: usize,
    /// Time a new connection has to send its first bytes (HTTP/2 preface or TLS hello).
    pub handshake_timeout: Duration,
    /// Most streams of one connection that its client reset before the server accepted
    /// them; past it the connection gets GOAWAY `ENHANCE_YOUR_CALM` (HTTP/2 rapid reset,
    /// CVE-2023-44487). h2's default of 20 also closes the connections of innocent
    /// clients whose short deadlines expire while a busy server has not yet accepted
    /// their calls; thousands are needed for that, while an attack's burst passes any
    /// such number at once.
    pub max_pending_resets: usize,
    /// Bytes that answers not yet taken by their clients may hold, server-wide (a buffer
    /// shared by several answers counts once); past it new calls are refused with
    /// RESOURCE_EXHAUSTED.
    pub max_unsent_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 1024,
            max_concurrent_calls: 1024,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            max_pending_resets: 4096,
            max_unsent_bytes: 256 << 20,
        }
    }
}

impl TlsSettings {
    fn server_config(&self) -> ServerTlsConfig {
        let mut tls =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        if let Some(ca) = &self.client_ca_pem {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        tls
    }
}

/// A generated server that takes gzip and zstd requests, and compresses its responses
/// with whichever of the two the client lists in `grpc-accept-encoding` (tonic's generated
/// servers share no trait for this, hence a macro).
macro_rules! compressed {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
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
    let (health, health_service) = health::health();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.ErrorInfo and BadRequest, so grpcurl -format-error can show the
            // details every error carries.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let relay = executions.start_relay(relay_stop.clone());
    let health_stop = tokio_util::sync::CancellationToken::new();
    let health_task = tokio::spawn(health::follow_database(
        executions.clone(),
        health.clone(),
        config.health_check_interval,
        health_stop.clone(),
    ));
    let metrics = Arc::new(metrics::Metrics::new(executions.clone()));
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "serving Prometheus metrics on /metrics");
            Some(tokio::spawn(metrics::serve(
                metrics.clone(),
                listener,
                metrics_stop.clone(),
            )))
        }
        None => None,
    };
    let limits = &config.limits;
    let api = api_server::ApiServer::new(
        ExecutionApi::new(
            executions.clone(),
            config.default_time_zone,
            metrics.clone(),
            limits,
        ),
        limits.max_message_bytes,
        limits.max_unsent_bytes,
    );
    let local_addr = listener.local_addr()?;

    let mut builder = Server::builder()
        // HTTP/1.1 too, for browsers (gRPC-Web and the dashboard); gRPC clients still
        // speak HTTP/2, which is told apart by its preface.
        .accept_http1(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_pending_accept_reset_streams(Some(limits.max_pending_resets))
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = builder
        .layer(web::cors_layer(&config.cors_origins))
        .layer(dashboard::DashboardLayer)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(telemetry::TelemetryLayer::new(metrics))
        .layer(edge::EdgeLayer)
        .layer(auth::AuthLayer::new(config.tokens.clone()))
        .add_service(compressed!(health_service))
        .add_service(compressed!(reflection().build_v1()?))
        .add_service(compressed!(reflection().build_v1alpha()?))
        .add_service(api)
        .serve_with_incoming_shutdown(
            incoming::accept(
                listener,
                incoming::ConnectionLimits {
                    max_connections: incoming::fit_to_descriptor_limit(limits.max_connections),
                    handshake_timeout: limits.handshake_timeout,
                    // The server pings a connection idle for the keepalive interval; a
                    // live client answers within the keepalive timeout.
                    idle_timeout: limits.keepalive_interval
                        + limits.keepalive_timeout
                        + Duration::from_secs(1),
                    tcp_keepalive: limits.keepalive_interval,
                },
            ),
            async {
                let _ = stopped.await;
            },
        );
    let mut server = tokio::spawn(server);
    tracing::info!(
        %local_addr,
        tls = config.tls.is_some(),
        authenticated = config.tokens.is_some(),
        "serving workflow.executions.v1.ExecutionService"
    );
    tracing::info!(
        url = %format!("{}://{local_addr}/", if config.tls.is_some() { "https" } else { "http" }),
        cors_origins = config.cors_origins.len(),
        "serving the dashboard"
    );

    let stop_relay = || async {
        // Changes still committing publish before the relay to other replicas stops.
        executions.finish_changes().await;
        health_stop.cancel();
        relay_stop.cancel();
        for task in relay {
            let _ = task.await;
        }
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
    };
    tokio::select! {
        result = &mut server => {
            stop_relay().await;
            return Ok(result??);
        }
        () = shutdown => {}
    }
    tracing::info!(open_watches = executions.open_watches(), "shutting down");
    // Not serving from now on, whatever the database says.
    health_stop.cancel();
    let _ = health_task.await;
    health.set(ServingStatus::NotServing);
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
    stop_relay().await;
    Ok(())
}
