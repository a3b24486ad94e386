//! The edge every call passes (inside telemetry, outside everything else), where the
//! promises about answers are kept whichever layer produced the answer:
//!
//! - **Deadlines bound every call, streams included.** A call whose `grpc-timeout`
//!   passes ends with DEADLINE_EXCEEDED: before its response starts (the handler's work
//!   is dropped, which abandons an uncommitted change), or in the middle of a stream (the
//!   stream ends with DEADLINE_EXCEEDED trailers), whether or not the client enforces its
//!   own deadline.
//! - **Every error carries an `ErrorInfo`.** Errors made below the handlers (tonic's
//!   router for an unknown method, its codec for a message over the size limit or one
//!   that does not decompress) get one, and are given the code a caller expects
//!   (RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE`, INVALID_ARGUMENT `MALFORMED_MESSAGE`, ...).
//! - **No error echoes unbounded input.** The message is cut to
//!   [`MAX_ERROR_MESSAGE_BYTES`], and so are the descriptions in a `BadRequest`, so an
//!   error's headers stay well under 8 KiB (what default clients accept).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use super::ERROR_DOMAIN;
use super::caller::parse_grpc_timeout;
use crate::domain::quoted;

/// Longest error message sent, in bytes; longer ones are cut (on a character boundary)
/// and say so.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// How much earlier than the client's deadline the server answers DEADLINE_EXCEEDED:
/// tonic also times calls out on `grpc-timeout`, with CANCELLED, and the edge must win
/// that race so that the caller sees one code.
const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// The tower layer of the edge.
#[derive(Clone, Copy, Debug, Default)]
pub struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge { inner }
    }
}

/// The service [`EdgeLayer`] wraps around the inner layers and the routes.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for Edge<S>
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
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|timeout| Instant::now() + timeout.saturating_sub(DEADLINE_MARGIN));
        // For the message of an unknown method, which tonic leaves empty (a `Uri` clone
        // shares its bytes).
        let uri = request.uri().clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match deadline {
                None => response.await?,
                Some(deadline) => {
                    tokio::select! {
                        // An answer that is ready is taken, even if the deadline is too:
                        // a change that committed must not be answered as an error.
                        biased;
                        response = response => {
                            let response = response?;
                            // An error past the deadline is the deadline's (e.g. a
                            // statement the database ended at the caller's budget).
                            if Instant::now() >= deadline && is_error(response.headers()) {
                                return Ok(deadline_exceeded().into_http());
                            }
                            response
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            return Ok(deadline_exceeded().into_http());
                        }
                    }
                }
            };
            let (mut parts, body) = response.into_parts();
            if settle(&mut parts.headers, uri.path()) {
                // Trailers-only: the status is in the headers and no body follows.
                return Ok(http::Response::from_parts(parts, body));
            }
            let body = EdgeBody {
                inner: body,
                uri,
                deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                done: false,
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// True for a trailers-only answer with a status other than OK.
fn is_error(headers: &HeaderMap) -> bool {
    headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|code| code.as_bytes() != b"0")
}

fn deadline_exceeded() -> Status {
    Status::with_error_details(
        Code::DeadlineExceeded,
        "deadline exceeded",
        ErrorDetails::with_error_info("DEADLINE_EXCEEDED", ERROR_DOMAIN, HashMap::new()),
    )
}

pin_project_lite::pin_project! {
    /// A response body that ends with DEADLINE_EXCEEDED when the deadline passes, and whose
    /// trailers are settled like the headers.
    struct EdgeBody {
        #[pin]
        inner: Body,
        uri: http::Uri,
        deadline: Option<Pin<Box<Sleep>>>,
        done: bool,
    }
}

impl HttpBody for EdgeBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_trailers() {
                    Ok(mut trailers) => {
                        settle(&mut trailers, this.uri.path());
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    *this.done = true;
                    let mut trailers = HeaderMap::new();
                    // Only fails for metadata that is not a valid header, and there is none.
                    let _ = deadline_exceeded().add_header(&mut trailers);
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Settles the status in `headers` (response headers of a trailers-only answer, or
/// trailers), if there is one: the code a caller expects, an `ErrorInfo`, a bounded
/// message. True when `headers` held a status. `path` is the call's.
fn settle(headers: &mut HeaderMap, path: &str) -> bool {
    match headers.get(Status::GRPC_STATUS) {
        None => return false,
        // OK, the common case, needs nothing.
        Some(code) if code.as_bytes() == b"0" => return true,
        Some(_) => {}
    }
    let Some(status) = Status::from_header_map(headers) else {
        return false;
    };
    if let Some(settled) = settled(&status, path) {
        for name in [
            Status::GRPC_STATUS,
            Status::GRPC_MESSAGE,
            Status::GRPC_STATUS_DETAILS,
        ] {
            headers.remove(name);
        }
        // Only fails for metadata that is not a valid header, and `settled` has none.
        let _ = settled.add_header(headers);
    }
    true
}

/// The status to send instead of `status`, or `None` when it is fine as it is.
fn settled(status: &Status, path: &str) -> Option<Status> {
    if status.code() == Code::Ok {
        return None;
    }
    let mut details = status.get_error_details();
    let mut code = status.code();
    let mut changed = false;
    if details.error_info().is_none() {
        let (fixed_code, reason) = below_the_handlers(status);
        code = fixed_code;
        details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
        changed = true;
    }
    let mut message = bounded(status.message());
    changed |= message.len() != status.message().len();
    if message.is_empty() && code == Code::Unimplemented {
        message = format!(
            "this server has no method {}; see `grpcurl -plaintext HOST list`",
            quoted(path)
        );
    }
    if let Some(bad_request) = details.bad_request() {
        let mut violations = bad_request.field_violations.clone();
        for violation in &mut violations {
            let description = bounded(&violation.description);
            if description.len() != violation.description.len() {
                violation.description = description;
                changed = true;
            }
        }
        details.set_bad_request(violations);
    }
    changed.then(|| Status::with_error_details(code, message, details))
}

/// The code and reason of an error made below the handlers (they give every error of
/// theirs an `ErrorInfo`), recognised by tonic's code and message.
fn below_the_handlers(status: &Status) -> (Code, &'static str) {
    let message = status.message();
    match status.code() {
        // tonic's own deadline, should it fire before the edge's.
        Code::Cancelled if message == "Timeout expired" => {
            (Code::DeadlineExceeded, "DEADLINE_EXCEEDED")
        }
        // What other gRPC servers answer for a message over the size limit, either way.
        Code::OutOfRange if message.contains("message length too large") => {
            (Code::ResourceExhausted, "MESSAGE_TOO_LARGE")
        }
        Code::Unimplemented if message.contains("compressed with") => {
            (Code::Unimplemented, "UNSUPPORTED_COMPRESSION")
        }
        Code::Unimplemented => (Code::Unimplemented, "UNIMPLEMENTED"),
        // A message that does not decompress, a truncated one, a bad compression flag:
        // the caller's mistake, not ours.
        Code::Internal
            if message.starts_with("Error decompressing")
                || message.starts_with("protocol error")
                || message.starts_with("Unexpected EOF") =>
        {
            (Code::InvalidArgument, "MALFORMED_MESSAGE")
        }
        other => (other, code_reason(other)),
    }
}

/// The UPPER_SNAKE name of a code, as the reason of an error that has no other.
fn code_reason(code: Code) -> &'static str {
    super::metrics::code_name(code)
}

/// `message` cut to [`MAX_ERROR_MESSAGE_BYTES`] on a character boundary, saying how long
/// it was.
pub fn bounded(message: &str) -> String {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_ERROR_MESSAGE_BYTES - 40;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(10_000);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with("(20000 bytes in all)"), "{cut}");
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn errors_from_below_get_an_error_info_and_the_expected_code() {
        for (status, code, reason) in [
            (
                Status::unimplemented(""),
                Code::Unimplemented,
                "UNIMPLEMENTED",
            ),
            (
                Status::out_of_range(
                    "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
                ),
                Code::ResourceExhausted,
                "MESSAGE_TOO_LARGE",
            ),
            (
                Status::internal("Error decompressing: corrupt deflate stream"),
                Code::InvalidArgument,
                "MALFORMED_MESSAGE",
            ),
            (
                Status::cancelled("Timeout expired"),
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (Status::unavailable("x"), Code::Unavailable, "UNAVAILABLE"),
        ] {
            let settled = settled(&status, "/x.Y/Z").expect("changed");
            assert_eq!(settled.code(), code);
            let details = settled.get_error_details();
            let info = details.error_info().expect("ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (reason, ERROR_DOMAIN)
            );
        }
    }

    #[test]
    fn our_own_errors_pass_unchanged_unless_too_long() {
        let ours = Status::with_error_details(
            Code::NotFound,
            "execution x not found",
            ErrorDetails::with_error_info("EXECUTION_NOT_FOUND", ERROR_DOMAIN, HashMap::new()),
        );
        assert!(settled(&ours, "/p").is_none());
        let mut details = ErrorDetails::with_error_info("INVALID_X", ERROR_DOMAIN, HashMap::new());
        details.add_bad_request_violation("x", "y".repeat(100_000));
        let long = Status::with_error_details(Code::InvalidArgument, "z".repeat(100_000), details);
        let settled = settled(&long, "/p").expect("cut");
        assert!(settled.message().len() <= MAX_ERROR_MESSAGE_BYTES);
        let details = settled.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        assert!(violations[0].description.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(
            settled.get_error_details().error_info().unwrap().reason,
            "INVALID_X"
        );
    }
}
