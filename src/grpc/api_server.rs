//! The HTTP/2 side of `ExecutionService`: decodes each request with tonic's machinery
//! (framing, gzip/zstd, the size limit), calls the handler ([`ExecutionApi`]), and writes
//! its answer as a body whose chunks are the shared encoded executions themselves.
//!
//! Why not tonic's generated server: it encodes every answer into a buffer of its own
//! call, and hyper takes one such chunk from each stream before it knows whether the
//! client has room for it. A watcher that never reads would then hold a whole copy of the
//! execution (a thousand of them, a thousand copies). Here the body hands hyper the
//! shared buffer (`wire`) itself, so an unread answer costs a reference to it. Unary
//! answers are compressed (gzip or zstd) when the client accepts it, as one copy each;
//! streams are not, so that their events stay shared.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, Streaming};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Request, Status};

use super::answer::{AnswerBody, frame};
use super::codec::SmallBufferCodec;
use super::handler::ExecutionApi;
use super::unsent::UnsentBudget;
use super::wire::Chunks;
use crate::error::Error;
use crate::proto::server::execution_service_server::ExecutionService;
use crate::proto::v1 as pb;

const SERVICE: &str = "workflow.executions.v1.ExecutionService";
/// The path of its methods, up to their names.
const PATH_PREFIX: &str = "/workflow.executions.v1.ExecutionService/";

/// `ExecutionService` over HTTP/2 (see the module docs).
#[derive(Clone, Debug)]
pub struct ApiServer {
    api: Arc<ExecutionApi>,
    max_message_bytes: usize,
    unsent: UnsentBudget,
}

impl ApiServer {
    /// Serves `api`, refusing messages larger than `max_message_bytes` either way, and
    /// new calls while answers not yet taken by their clients hold more than
    /// `max_unsent_bytes`.
    pub fn new(api: ExecutionApi, max_message_bytes: usize, max_unsent_bytes: usize) -> Self {
        Self {
            api: Arc::new(api),
            max_message_bytes,
            unsent: UnsentBudget::new(max_unsent_bytes),
        }
    }
}

impl NamedService for ApiServer {
    const NAME: &'static str = SERVICE;
}

impl tower::Service<http::Request<Body>> for ApiServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (api, max, unsent) = (
            self.api.clone(),
            self.max_message_bytes,
            self.unsent.clone(),
        );
        if let Some((held, limit)) = self.unsent.spent() {
            let refused = Status::from(Error::UnsentBacklog { held, limit });
            return Box::pin(async move { Ok(refused.into_http()) });
        }
        // Owned, so the future does not borrow the request it consumes.
        let method = request
            .uri()
            .path()
            .strip_prefix(PATH_PREFIX)
            .unwrap_or_default()
            .to_owned();
        Box::pin(async move {
            /// A unary method of the API, answered by `unary`.
            macro_rules! unary {
                ($method:ident) => {
                    unary(
                        request,
                        max,
                        unsent,
                        |r| async move { api.$method(r).await },
                    )
                    .await
                };
            }
            let answer = match method.as_str() {
                "GetExecution" => unary!(get_execution),
                "ListExecutions" => unary!(list_executions),
                "CountExecutions" => unary!(count_executions),
                "StopExecution" => unary!(stop_execution),
                "StopExecutions" => unary!(stop_executions),
                "ListExecutionEvents" => unary!(list_execution_events),
                "StartExecution" => unary!(start_execution),
                "UpdateAction" => unary!(update_action),
                "WatchExecution" => {
                    let handle = |r| async move {
                        let stream = api.watch_execution(r).await?.into_inner();
                        Ok(stream.boxed())
                    };
                    streaming(request, max, unsent, handle).await
                }
                "WatchExecutions" => {
                    let handle = |r| async move {
                        let stream = api.watch_executions(r).await?.into_inner();
                        Ok(stream.boxed())
                    };
                    streaming(request, max, unsent, handle).await
                }
                _ => Err(Status::unimplemented("")),
            };
            Ok(answer.unwrap_or_else(|status| status.into_http()))
        })
    }
}

/// The `grpc-encoding` of a request: none, or one this server decodes.
fn request_encoding(headers: &HeaderMap) -> Result<Option<CompressionEncoding>, Status> {
    match headers.get("grpc-encoding").map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(None),
        Some(b"gzip") => Ok(Some(CompressionEncoding::Gzip)),
        Some(b"zstd") => Ok(Some(CompressionEncoding::Zstd)),
        Some(other) => Err(Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The encoding to compress a unary answer with: the first of gzip and zstd that the
/// client lists in `grpc-accept-encoding`.
fn answer_encoding(headers: &HeaderMap) -> Option<&'static str> {
    let accepted = headers.get("grpc-accept-encoding")?.to_str().ok()?;
    accepted
        .split(',')
        .map(str::trim)
        .find_map(|name| match name {
            "gzip" => Some("gzip"),
            "zstd" => Some("zstd"),
            _ => None,
        })
}

/// The one request message of a call, decoded (with the size limit and decompression)
/// and wrapped with the call's metadata and extensions.
async fn request_of<T>(request: http::Request<Body>, max: usize) -> Result<Request<T>, Status>
where
    T: Message + Default + Send + 'static,
{
    let encoding = request_encoding(request.headers())?;
    let (parts, body) = request.into_parts();
    let mut codec = SmallBufferCodec::<pb::Execution, T>::default();
    let mut messages = Streaming::new_request(codec.decoder(), body, encoding, Some(max));
    let message = messages.message().await?.ok_or_else(|| {
        Status::from(Error::invalid(
            "request",
            "MALFORMED_MESSAGE",
            "the call carries no request message",
        ))
    })?;
    Ok(Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    ))
}

/// The headers of an answer.
fn answer_headers(encoding: Option<&'static str>) -> http::response::Builder {
    let builder = http::Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-accept-encoding", "gzip,zstd");
    match encoding {
        Some(encoding) => builder.header("grpc-encoding", encoding),
        None => builder,
    }
}

async fn unary<T, A, F, Fut>(
    request: http::Request<Body>,
    max: usize,
    unsent: UnsentBudget,
    handle: F,
) -> Result<http::Response<Body>, Status>
where
    T: Message + Default + Send + 'static,
    A: Chunks + Send + 'static,
    F: FnOnce(Request<T>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<A>, Status>>,
{
    let encoding = answer_encoding(request.headers());
    let request = request_of(request, max).await?;
    let answer = handle(request).await?.into_inner();
    let framed = frame(answer, max, encoding)?;
    let body = AnswerBody::new(
        futures::stream::once(async move { Ok(framed) }).boxed(),
        unsent,
    );
    Ok(answer_headers(encoding)
        .body(Body::new(body))
        .unwrap_or_else(|_| Status::internal("answer headers").into_http()))
}

async fn streaming<T, A, F, Fut>(
    request: http::Request<Body>,
    max: usize,
    unsent: UnsentBudget,
    handle: F,
) -> Result<http::Response<Body>, Status>
where
    T: Message + Default + Send + 'static,
    F: FnOnce(Request<T>) -> Fut,
    A: Chunks + Send + 'static,
    Fut: std::future::Future<Output = Result<BoxStream<'static, Result<A, Status>>, Status>>,
{
    let request = request_of(request, max).await?;
    let events = handle(request).await?;
    let framed = events.map(move |event| event.and_then(|e| frame(e, max, None)));
    Ok(answer_headers(None)
        .body(Body::new(AnswerBody::new(framed.boxed(), unsent)))
        .unwrap_or_else(|_| Status::internal("answer headers").into_http()))
}
