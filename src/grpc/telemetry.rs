//! One `tracing` span per call, and its metrics, as the outermost tower layer.
//!
//! The span (`rpc`) carries the method and the peer; the handler's own events happen
//! inside it. When the call ends, one `rpc` event with its status code and latency is
//! logged (the span does not repeat them: recording fields into a span formats them for
//! every call, logged or not), and the call is recorded in [`Metrics`]. A call's code is in its
//! response headers when it failed at once, otherwise in the trailers after its last
//! message, so the response body is watched until it ends: for a watch stream, the
//! latency is the stream's whole life. Calls refused by the layers inside (tokens, load
//! shedding) are logged and counted like any other.
//!
//! Per-call lines are rate-limited: at most [`RPC_LINES_PER_SECOND`] a second; past that
//! they are counted, and the count is logged (one WARN line) with the next line that
//! gets through, so a flood of calls (open-and-cancel churn, say) cannot fill a disk.
//! Metrics count every call whatever the logs say.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument;

use super::methods::{Rpc, rpc_of};
use super::metrics::Metrics;

/// The address a call came from, over plain TCP or TLS.
fn peer<B>(request: &http::Request<B>) -> Option<std::net::SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
}

/// Most per-call log lines written in one second.
pub const RPC_LINES_PER_SECOND: u32 = 200;

/// The per-call lines left this second, and those suppressed since the last one written.
#[derive(Debug)]
struct LineBudget {
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    second_began: Instant,
    written: u32,
    suppressed: u64,
}

impl LineBudget {
    fn new() -> Self {
        Self {
            state: Mutex::new(BudgetState {
                second_began: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(lines suppressed before this one)` when this line may be written.
    fn take(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.second_began.elapsed() >= Duration::from_secs(1) {
            state.second_began = Instant::now();
            state.written = 0;
        }
        if state.written >= RPC_LINES_PER_SECOND {
            state.suppressed += 1;
            return None;
        }
        state.written += 1;
        Some(std::mem::take(&mut state.suppressed))
    }
}

/// The tower layer that gives every call its span, log line and metrics.
#[derive(Clone, Debug)]
pub struct TelemetryLayer {
    metrics: Arc<Metrics>,
    lines: Arc<LineBudget>,
}

impl TelemetryLayer {
    /// Records calls into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            lines: Arc::new(LineBudget::new()),
        }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            metrics: self.metrics.clone(),
            lines: self.lines.clone(),
        }
    }
}

/// The service [`TelemetryLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Telemetry<S> {
    inner: S,
    metrics: Arc<Metrics>,
    lines: Arc<LineBudget>,
}

impl<S> Service<http::Request<Body>> for Telemetry<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let rpc = rpc_of(request.uri().path());
        self.metrics.record_start(rpc);
        let method = rpc.path;
        let peer = peer(&request).map(tracing::field::display);
        let span = tracing::info_span!("rpc", method, peer,);
        let mut call = CallEnd {
            rpc,
            started: Instant::now(),
            span: span.clone(),
            metrics: self.metrics.clone(),
            lines: self.lines.clone(),
            done: false,
        };
        // Inside the span: what the inner layers log as they take the call (a refused
        // token, say) carries its method and peer.
        let response = span.in_scope(|| self.inner.call(request)).instrument(span);
        Box::pin(async move {
            let response = response.await?;
            if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                // Failed at once: the code is in the headers and no message follows.
                call.finish(status.code());
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(WatchedBody {
                    inner: body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// What is known of a call until it ends.
struct CallEnd {
    rpc: &'static Rpc,
    started: Instant,
    span: tracing::Span,
    metrics: Arc<Metrics>,
    lines: Arc<LineBudget>,
    done: bool,
}

impl CallEnd {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        // Rounded to the microsecond: more digits are noise (and 0.9068700000000001).
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let code_name = super::metrics::code_name(code);
        self.metrics.record_call(self.rpc, code, elapsed);
        let Some(suppressed) = self.lines.take() else {
            return;
        };
        let _inside = self.span.enter();
        if suppressed > 0 {
            tracing::warn!(
                target: "executions::rpc",
                suppressed,
                limit_per_second = RPC_LINES_PER_SECOND,
                "rpc lines suppressed"
            );
        }
        tracing::info!(target: "executions::rpc", code = code_name, latency_ms, "rpc");
    }
}

impl Drop for CallEnd {
    /// A call dropped before it ended (its client went away, or its deadline passed).
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

pin_project_lite::pin_project! {
    /// A response body, watched for the trailers that carry the call's status.
    struct WatchedBody {
        #[pin]
        inner: Body,
        call: Option<CallEnd>,
    }
}

impl HttpBody for WatchedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.as_mut()
                {
                    let code = tonic::Status::from_header_map(trailers)
                        .map_or(tonic::Code::Ok, |status| status.code());
                    call.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(call) = this.call.as_mut() {
                    call.finish(status.code());
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.as_mut() {
                    call.finish(tonic::Code::Ok);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_lines_is_cut_to_the_budget_and_counted() {
        let budget = LineBudget::new();
        let written = (0..RPC_LINES_PER_SECOND * 5)
            .filter(|_| budget.take().is_some())
            .count();
        assert_eq!(written, RPC_LINES_PER_SECOND as usize);
        budget.state.lock().unwrap().second_began -= Duration::from_secs(1);
        assert_eq!(
            budget.take(),
            Some(u64::from(RPC_LINES_PER_SECOND) * 4),
            "the next line says how many were left out"
        );
    }
}
