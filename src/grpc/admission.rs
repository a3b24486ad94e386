//! Load shedding: at most a set number of calls run their handlers at once on this
//! server; one more is refused at once with RESOURCE_EXHAUSTED (`OVERLOADED`) rather than
//! queued, so that an overloaded replica answers quickly and clients back off or go
//! elsewhere, instead of piling up until every call times out.
//!
//! A call holds its slot until its handler answers: for a watch, until the stream opens
//! (its snapshot read included), not for the stream's life, which `max_watches` bounds.
//! Health checks are never refused: probes must get through when the server is busy.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::error::Error;

/// True for calls that the limit leaves alone.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// The tower layer that sheds calls past the limit.
#[derive(Clone, Debug)]
pub struct AdmissionLayer {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl AdmissionLayer {
    /// Admits at most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            slots: self.slots.clone(),
            limit: self.limit,
        }
    }
}

/// The service [`AdmissionLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Admission<S> {
    inner: S,
    slots: Arc<Semaphore>,
    limit: usize,
}

impl<S> Service<http::Request<Body>> for Admission<S>
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
        if exempt(request.uri().path()) {
            return self.inner.call(request).boxed();
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            let refused = Status::from(Error::Overloaded { limit: self.limit });
            return futures::future::ready(Ok(refused.into_http())).boxed();
        };
        let response = self.inner.call(request);
        async move {
            // Held until the handler has answered (a unary response is complete then; a
            // stream has opened).
            let _slot = slot;
            response.await
        }
        .boxed()
    }
}
