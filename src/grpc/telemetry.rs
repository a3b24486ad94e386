//! One `tracing` span per call, and its metrics, as the outermost tower layer.
//!
//! The span (`rpc`) carries the method and the peer; the handler's own events happen
//! inside it. When the call ends, the span gets its status code and latency, one `rpc`
//! event is logged, and the call is recorded in [`Metrics`]. A call's code is in its
//! response headers when it failed at once, otherwise in the trailers after its last
//! message, so the response body is watched until it ends: for a watch stream, the
//! latency is the stream's whole life. Calls refused by the layers inside (tokens, load
//! shedding) are logged and counted like any other.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

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

/// The tower layer that gives every call its span, log line and metrics.
#[derive(Clone, Debug)]
pub struct TelemetryLayer {
    metrics: Arc<Metrics>,
}

impl TelemetryLayer {
    /// Records calls into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`TelemetryLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Telemetry<S> {
    inner: S,
    metrics: Arc<Metrics>,
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
        let span = tracing::info_span!(
            "rpc",
            method,
            peer,
            code = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let mut call = CallEnd {
            rpc,
            started: Instant::now(),
            span: span.clone(),
            metrics: self.metrics.clone(),
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
    done: bool,
}

impl CallEnd {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let code_name = super::metrics::code_name(code);
        self.span.record("code", code_name);
        self.span.record("latency_ms", latency_ms);
        self.metrics.record_call(self.rpc, code, elapsed);
        let _inside = self.span.enter();
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
