//! Answers as HTTP/2 bodies: each message framed as gRPC frames it (the 5-byte prefix,
//! then its chunks, shared executions uncopied, or one compressed chunk), then the
//! trailers with the status. The buffers of the message in hand count against the unsent
//! budget.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::BoxStream;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Code, Status};

use super::unsent::{Held, UnsentBudget};
use super::wire::Chunks;

/// One answer message as gRPC frames it: the 5-byte prefix, then its chunks (shared
/// executions uncopied), or one compressed chunk.
pub(super) fn frame(
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

pub(super) type Framed = BoxStream<'static, Result<VecDeque<Bytes>, Status>>;

/// A response body: each message's chunks in turn, then the trailers with the status.
/// The buffers of the message in hand count against the unsent budget until the next
/// message replaces it or the body is dropped.
pub(super) struct AnswerBody {
    chunks: VecDeque<Bytes>,
    messages: Option<Framed>,
    trailers: Option<HeaderMap>,
    unsent: UnsentBudget,
    held: Held,
}

impl AnswerBody {
    pub(super) fn new(messages: Framed, unsent: UnsentBudget) -> Self {
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
