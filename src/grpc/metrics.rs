//! Prometheus metrics of one server, and the plain-HTTP endpoint (`GET /metrics`) that
//! serves them.
//!
//! Each server owns its registry (no process-global recorder), so several servers in one
//! process — the integration tests run many — keep separate figures.
//!
//! - `executions_rpc_requests_total{method, code}`: calls finished, by outcome;
//! - `executions_rpc_duration_seconds{method}`: latency histogram (a stream's whole life
//!   for WatchExecution);
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
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service::Executions;

/// Labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: &'static str,
}

/// Label of a method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

type LatencyFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// The metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    latency: LatencyFamily,
    database_errors: Counter,
}

/// Latency buckets from 100 µs to about 6.5 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Metrics {
    /// Metrics of a server running `executions`.
    pub fn new(executions: Executions) -> Self {
        let mut registry = Registry::with_prefix("executions");
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "gRPC calls finished, by method and status code",
            requests.clone(),
        );
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "rpc_duration_seconds",
            "Time from a call's arrival to its last message, by method",
            latency.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Calls that failed on a database error (outage or refused statement)",
            database_errors.clone(),
        );
        registry.register_collector(Box::new(ServiceFigures(executions)));
        Self {
            registry,
            requests,
            latency,
            database_errors,
        }
    }

    /// Records one finished call.
    pub fn record_call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        self.requests
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
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
            "WatchExecution streams open now",
            None,
            MetricType::Gauge,
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

/// The canonical name of a gRPC code, as metrics and logs write it.
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
