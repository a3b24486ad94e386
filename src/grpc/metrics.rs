//! Prometheus metrics of one server, and the plain-HTTP endpoint (`GET /metrics`) that
//! serves them.
//!
//! Each server owns its registry (no process-global recorder), so several servers in one
//! process — the integration tests run many — keep separate figures.
//!
//! The calls are counted under the standard gRPC server names (those of
//! go-grpc-prometheus and linkerd), so existing dashboards for gRPC servers work, with
//! labels `grpc_service`, `grpc_method`, `grpc_type` (`unary`, `server_stream`, ...) and,
//! once handled, `grpc_code` (`OK`, `NotFound`, ... as those libraries spell codes):
//!
//! - `grpc_server_started_total`: calls started;
//! - `grpc_server_handled_total`: calls finished, by code;
//! - `grpc_server_handling_seconds`: histogram of the time from a call's arrival to its
//!   last message (a stream's whole life), with buckets from 0.5 ms to 1 h.
//!
//! The service's own figures are prefixed `executions_`:
//!
//! - `executions_open_watches`: watch streams open now;
//! - `executions_changes_published_total`: changes committed here and published;
//! - `executions_database_errors_total`: calls that failed on a database error.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::methods::Rpc;
use crate::service::Executions;

/// Labels of a call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_type: &'static str,
}

impl RpcLabels {
    fn of(rpc: &'static Rpc) -> Self {
        Self {
            grpc_service: rpc.service(),
            grpc_method: rpc.method(),
            grpc_type: rpc.kind.label(),
        }
    }
}

/// Labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    #[prometheus(flatten)]
    rpc: RpcLabels,
    grpc_code: &'static str,
}

type HandlingFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

/// The metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Family<RpcLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: HandlingFamily,
    database_errors: Counter,
}

/// Upper bounds of the handling-time buckets, in seconds: unary calls take
/// milliseconds, watch streams minutes to hours.
const HANDLING_BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 1800.0, 3600.0,
];

fn handling_histogram() -> Histogram {
    Histogram::new(HANDLING_BUCKETS)
}

impl Metrics {
    /// Metrics of a server running `executions`.
    pub fn new(executions: Executions) -> Self {
        let mut registry = Registry::default();
        let started = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_server_started",
            "RPCs started on the server",
            started.clone(),
        );
        let handled = Family::<HandledLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their outcome",
            handled.clone(),
        );
        let handling = HandlingFamily::new_with_constructor(handling_histogram);
        registry.register(
            "grpc_server_handling_seconds",
            "Time from an RPC's arrival to its last message (a stream's whole life)",
            handling.clone(),
        );
        let ours = registry.sub_registry_with_prefix("executions");
        let database_errors = Counter::default();
        ours.register(
            "database_errors",
            "Calls that failed on a database error (outage or refused statement)",
            database_errors.clone(),
        );
        ours.register_collector(Box::new(ServiceFigures(executions)));
        Self {
            registry,
            started,
            handled,
            handling,
            database_errors,
        }
    }

    /// Records a call as it arrives.
    pub fn record_start(&self, rpc: &'static Rpc) {
        self.started.get_or_create(&RpcLabels::of(rpc)).inc();
    }

    /// Records one finished call.
    pub fn record_call(&self, rpc: &'static Rpc, code: tonic::Code, elapsed: Duration) {
        let labels = RpcLabels::of(rpc);
        self.handling
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.handled
            .get_or_create(&HandledLabels {
                rpc: labels,
                grpc_code: code_label(code),
            })
            .inc();
    }

    /// Counts one call that failed on a database error.
    pub fn count_database_error(&self) {
        self.database_errors.inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Figures the service keeps itself, read at each scrape.
#[derive(Debug)]
struct ServiceFigures(Executions);

impl Collector for ServiceFigures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let open = ConstGauge::new(self.0.open_watches() as i64);
        open.encode(encoder.encode_descriptor(
            "open_watches",
            "WatchExecution and WatchExecutions streams open now",
            None,
            MetricType::Gauge,
        )?)?;
        let (rounds, read) = self.0.feed_reads();
        ConstCounter::new(rounds).encode(encoder.encode_descriptor(
            "feed_reads",
            "Database reads of the change reader, which reads changes once for every WatchExecutions feed on this replica",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(read).encode(encoder.encode_descriptor(
            "feed_executions_read",
            "Changed executions the change reader read for WatchExecutions feeds",
            None,
            MetricType::Counter,
        )?)?;
        let published = ConstCounter::new(self.0.changes_published());
        published.encode(encoder.encode_descriptor(
            "changes_published",
            "Changes committed on this replica and published to watchers",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// The canonical name of a gRPC code, as logs write it.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A gRPC code as the `grpc_code` label of the standard server metrics spells it (the
/// names of Go's `codes.Code`, as go-grpc-prometheus writes them).
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Serves `GET /metrics` over plain HTTP on `listener` until `stop` is cancelled.
pub async fn serve(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
