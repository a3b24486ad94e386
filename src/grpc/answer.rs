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

/// Messages ready one after the other are joined into one chunk of at most this many
/// bytes (h2's largest DATA frame by default).
const JOIN_UP_TO_BYTES: usize = 16 * 1024;

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

    /// Joins the small messages the stream has ready now to the one in hand, into one
    /// chunk of at most [`JOIN_UP_TO_BYTES`]: a feed's page of snapshots, or a batch of
    /// updates, goes out as a few DATA frames instead of one per message. Each frame a
    /// connection queues costs it memory that it keeps (h2's send queue grows to the
    /// largest burst and does not shrink), and receivers count small frames they hold
    /// against a budget. A message with a large shared chunk is not copied: it ends the
    /// join, as do the stream's end and its first `Pending`.
    fn join_ready(&mut self, cx: &mut Context<'_>) {
        if self.chunks.len() != 1 || self.chunks[0].len() >= JOIN_UP_TO_BYTES {
            return;
        }
        let mut joined = BytesMut::new();
        let mut unjoined = VecDeque::new();
        let mut ended = None;
        while let Some(messages) = self.messages.as_mut() {
            let next = match messages.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(next))) => next,
                Poll::Ready(Some(Err(status))) => {
                    ended = Some(status);
                    break;
                }
                Poll::Ready(None) => {
                    ended = Some(Status::new(Code::Ok, ""));
                    break;
                }
            };
            let so_far = joined.len().max(self.chunks[0].len());
            let fits = next.len() == 1 && so_far + next[0].len() <= JOIN_UP_TO_BYTES;
            if !fits {
                unjoined = next;
                break;
            }
            if joined.is_empty() {
                joined.reserve(JOIN_UP_TO_BYTES.min(4 * (so_far + next[0].len())));
                joined.extend_from_slice(&self.chunks[0]);
            }
            joined.extend_from_slice(&next[0]);
        }
        if !joined.is_empty() {
            self.chunks = VecDeque::from([joined.freeze()]);
        }
        self.chunks.extend(unjoined);
        if let Some(status) = ended {
            self.end_with(&status);
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
                    self.chunks = chunks;
                    self.join_ready(cx);
                    self.held = self.unsent.hold(&self.chunks);
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

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use http_body_util::BodyExt;

    use super::*;

    fn message(byte: u8, len: usize) -> Result<VecDeque<Bytes>, Status> {
        Ok(VecDeque::from([Bytes::from(vec![byte; len])]))
    }

    /// The frames of a body over `messages`: (data lengths, trailers' grpc-status).
    async fn frames(messages: Vec<Result<VecDeque<Bytes>, Status>>) -> (Vec<Vec<u8>>, String) {
        let mut body = AnswerBody::new(
            futures::stream::iter(messages).boxed(),
            UnsentBudget::new(usize::MAX),
        );
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("a frame");
            match frame.into_data() {
                Ok(chunk) => data.push(chunk.to_vec()),
                Err(frame) => {
                    let trailers = frame.into_trailers().expect("trailers");
                    let status = trailers["grpc-status"].to_str().unwrap().to_owned();
                    return (data, status);
                }
            }
        }
        panic!("no trailers")
    }

    #[tokio::test]
    async fn ready_small_messages_go_out_joined_in_order_up_to_the_bound() {
        let (data, status) = frames(vec![
            message(1, 6_000),
            message(2, 6_000),
            message(3, 6_000),
            message(4, 100),
        ])
        .await;
        // 1 and 2 fit in 16 KiB; 3 does not fit with them and goes out alone (it was
        // taken from the stream already); 4 is the next frame.
        let lengths: Vec<usize> = data.iter().map(Vec::len).collect();
        assert_eq!(lengths, [12_000, 6_000, 100]);
        assert_eq!(data[0], [vec![1; 6_000], vec![2; 6_000]].concat());
        assert_eq!(data[1], vec![3; 6_000]);
        assert_eq!(status, "0");
    }

    #[tokio::test]
    async fn a_message_of_several_chunks_is_not_copied_and_an_error_still_ends_the_body() {
        let shared = Bytes::from(vec![9; 20_000]);
        let (data, status) = frames(vec![
            message(1, 10),
            Ok(VecDeque::from([Bytes::from(vec![2; 5]), shared.clone()])),
            message(3, 10),
            Err(Status::unavailable("going away")),
        ])
        .await;
        let lengths: Vec<usize> = data.iter().map(Vec::len).collect();
        assert_eq!(lengths, [10, 5, 20_000, 10]);
        assert_eq!(status, (Code::Unavailable as i32).to_string());
    }

    #[tokio::test]
    async fn a_stream_not_ready_sends_what_it_has() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut body = AnswerBody::new(rx.boxed(), UnsentBudget::new(usize::MAX));
        tx.unbounded_send(message(1, 10)).unwrap();
        tx.unbounded_send(message(2, 10)).unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 20);
        tx.unbounded_send(message(3, 10)).unwrap();
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], &[3; 10]);
    }
}
