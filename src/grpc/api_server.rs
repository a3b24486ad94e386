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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, Streaming};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Code, Request, Status};

use super::codec::SmallBufferCodec;
use super::handler::ExecutionApi;
use super::unsent::{Held, UnsentBudget};
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

/// One answer message as gRPC frames it: the 5-byte prefix, then its chunks (shared
/// executions uncopied), or one compressed chunk.
fn frame(
    answer: impl Chunks,
    max: usize,
    encoding: Option<&'static str>,
) -> Result<VecDeque<Bytes>, Status> {
    let (len, chunks) = answer.chunks();
    if len > max {
        return Err(too_large(len, max));
    }
    let (flag, chunks) = match encoding {
        None => (0u8, chunks),
        Some(encoding) => (1u8, vec![compress(encoding, &chunks)?]),
    };
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let mut small = BytesMut::with_capacity(5 + len.min(SHARE_FROM_BYTES));
    small.put_u8(flag);
    small.put_u32(u32::try_from(len).map_err(|_| too_large(len, max))?);
    // Each chunk becomes a DATA frame of its own. Small chunks (the prefix, the fields
    // around an execution, a small execution) are joined into one, so that a message is
    // one frame unless it carries a large shared execution: receivers count small frames
    // they hold unread against a budget (h2 0.4.20 sends GOAWAY ENHANCE_YOUR_CALM
    // "too_many_data_frames" past it), and a slow reader of a feed holds many messages.
    let mut framed = VecDeque::with_capacity(chunks.len() + 1);
    for chunk in chunks {
        if chunk.len() < SHARE_FROM_BYTES {
            small.extend_from_slice(&chunk);
        } else {
            if !small.is_empty() {
                framed.push_back(small.split().freeze());
            }
            framed.push_back(chunk);
        }
    }
    if !small.is_empty() {
        framed.push_back(small.freeze());
    }
    Ok(framed)
}

/// Chunks of an answer at least this large are sent as they are (shared); smaller ones
/// are copied together into one frame.
const SHARE_FROM_BYTES: usize = 8 * 1024;

fn too_large(len: usize, max: usize) -> Status {
    Status::out_of_range(format!(
        "Error, encoded message length too large: found {len} bytes, the limit is: {max} bytes"
    ))
}

fn compress(encoding: &str, chunks: &[Bytes]) -> Result<Bytes, Status> {
    use std::io::Write;
    let failed = |err: std::io::Error| Status::internal(format!("Error compressing: {err}"));
    match encoding {
        "gzip" => {
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for chunk in chunks {
                gzip.write_all(chunk).map_err(failed)?;
            }
            Ok(gzip.finish().map_err(failed)?.into())
        }
        _ => {
            let mut zstd = zstd::stream::write::Encoder::new(Vec::new(), 0).map_err(failed)?;
            for chunk in chunks {
                zstd.write_all(chunk).map_err(failed)?;
            }
            Ok(zstd.finish().map_err(failed)?.into())
        }
    }
}

type Framed = BoxStream<'static, Result<VecDeque<Bytes>, Status>>;

/// A response body: each message's chunks in turn, then the trailers with the status.
/// The buffers of the message in hand count against the unsent budget until the next
/// message replaces it or the body is dropped.
struct AnswerBody {
    chunks: VecDeque<Bytes>,
    messages: Option<Framed>,
    trailers: Option<HeaderMap>,
    unsent: UnsentBudget,
    held: Held,
}

impl AnswerBody {
    fn new(messages: Framed, unsent: UnsentBudget) -> Self {
        Self {
            chunks: VecDeque::new(),
            messages: Some(messages),
            trailers: None,
            unsent,
            held: Held::default(),
        }
    }

    fn end_with(&mut self, status: &Status) {
        self.messages = None;
        let mut trailers = HeaderMap::new();
        // Only fails for metadata that is not a valid header, and these statuses have none.
        let _ = status.add_header(&mut trailers);
        self.trailers = Some(trailers);
    }
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if let Some(chunk) = self.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            let Some(messages) = self.messages.as_mut() else {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match messages.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunks))) => {
                    self.held = self.unsent.hold(&chunks);
                    self.chunks = chunks;
                }
                Poll::Ready(Some(Err(status))) => self.end_with(&status),
                Poll::Ready(None) => self.end_with(&Status::new(Code::Ok, "")),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.messages.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
