//! Answers that carry executions, as the server sends them: each execution already
//! encoded, in bytes shared by every answer of the same (execution, revision, view, zone).
//!
//! An execution at a given revision always has the same wire form, so it is encoded once
//! ([`SharedExecution::encode`], cached by `render_cache`) and each Get, List row and
//! watch event that needs it holds a reference to the same buffer: a thousand watchers of
//! a 1 MB execution, or a thousand answers a client has not read yet, hold one buffer,
//! not a thousand copies or decoded structs. The types encode exactly as the generated
//! `Execution`, `ListExecutionsResponse` and `WatchExecutionResponse` of `proto::v1` do
//! (the tests below check it), so clients see no difference; the server never decodes
//! them.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::proto::v1 as pb;

/// The decoding half of `prost::Message` for types the server only sends: it never
/// decodes one, so fields are skipped.
macro_rules! sent_only {
    () => {
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), DecodeError> {
            encoding::skip_field(wire_type, tag, buf, ctx)
        }
    };
}

/// An encoded `workflow.executions.v1.Execution`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedExecution(Bytes);

impl SharedExecution {
    /// Encodes `execution` once.
    pub fn encode(execution: &pb::Execution) -> Self {
        Self(execution.encode_to_vec().into())
    }

    /// Its encoded size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an execution with every field at its default (never sent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Message for SharedExecution {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    sent_only!();

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// An answer as the chunks of its encoding: shared executions as they are, the rest
/// encoded around them.
pub trait Chunks {
    /// The encoded length, and the chunks that make it up, in order.
    fn chunks(self) -> (usize, Vec<Bytes>);
}

impl Chunks for SharedExecution {
    fn chunks(self) -> (usize, Vec<Bytes>) {
        (self.len(), vec![self.0])
    }
}

impl Chunks for ListPage {
    /// One chunk: a page is encoded for its caller (its rows are mostly small BASIC
    /// forms, and a chunk per row would be a frame per row).
    fn chunks(self) -> (usize, Vec<Bytes>) {
        let bytes = Bytes::from(self.encode_to_vec());
        (bytes.len(), vec![bytes])
    }
}

/// Answers encoded for their one caller, as one chunk.
macro_rules! encoded_for_caller {
    ($($message:ty),+ $(,)?) => {$(
        impl Chunks for $message {
            fn chunks(self) -> (usize, Vec<Bytes>) {
                let bytes = Bytes::from(self.encode_to_vec());
                (bytes.len(), vec![bytes])
            }
        }
    )+};
}

encoded_for_caller!(
    pb::CountExecutionsResponse,
    pb::StopExecutionsResponse,
    pb::ListExecutionEventsResponse,
);

impl Chunks for WatchEvent {
    /// The fields before the execution, the shared execution, and `sent_at`.
    fn chunks(self) -> (usize, Vec<Bytes>) {
        let len = self.encoded_len();
        let WatchEvent {
            kind,
            revision,
            execution,
            sent_at,
        } = self;
        let mut before = Vec::with_capacity(32);
        if kind != 0 {
            encoding::int32::encode(1, &kind, &mut before);
        }
        if revision != 0 {
            encoding::int64::encode(2, &revision, &mut before);
        }
        let mut chunks = Vec::with_capacity(3);
        if let Some(execution) = execution {
            encoding::encode_key(3, WireType::LengthDelimited, &mut before);
            encoding::encode_varint(execution.len() as u64, &mut before);
            chunks.push(Bytes::from(before));
            chunks.push(execution.0);
        } else {
            chunks.push(Bytes::from(before));
        }
        if let Some(sent_at) = &sent_at {
            let mut after = Vec::with_capacity(16);
            encoding::message::encode(4, sent_at, &mut after);
            chunks.push(Bytes::from(after));
        }
        (len, chunks)
    }
}

/// Writes `execution` as the length-delimited field `tag`.
fn encode_execution(tag: u32, execution: &SharedExecution, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(execution.len() as u64, buf);
    buf.put_slice(&execution.0);
}

/// Encoded size of `execution` as field `tag`.
fn execution_len(tag: u32, execution: &SharedExecution) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(execution.len() as u64) + execution.len()
}

/// A `workflow.executions.v1.ListExecutionsResponse` of shared executions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListPage {
    /// The page's executions, in order.
    pub executions: Vec<SharedExecution>,
    /// Token of the next page; empty on the last.
    pub next_page_token: String,
}

impl Message for ListPage {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for execution in &self.executions {
            encode_execution(1, execution, buf);
        }
        if !self.next_page_token.is_empty() {
            encoding::string::encode(2, &self.next_page_token, buf);
        }
    }

    sent_only!();

    fn encoded_len(&self) -> usize {
        self.executions
            .iter()
            .map(|e| execution_len(1, e))
            .sum::<usize>()
            + if self.next_page_token.is_empty() {
                0
            } else {
                encoding::string::encoded_len(2, &self.next_page_token)
            }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A `workflow.executions.v1.WatchExecutionResponse` with a shared execution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchEvent {
    /// `WatchEventKind` as its number.
    pub kind: i32,
    /// Revision the watcher is at.
    pub revision: i64,
    /// The execution (absent on HEARTBEAT).
    pub execution: Option<SharedExecution>,
    /// When the server sent it.
    pub sent_at: Option<prost_types::Timestamp>,
}

impl Message for WatchEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.kind != 0 {
            encoding::int32::encode(1, &self.kind, buf);
        }
        if self.revision != 0 {
            encoding::int64::encode(2, &self.revision, buf);
        }
        if let Some(execution) = &self.execution {
            encode_execution(3, execution, buf);
        }
        if let Some(sent_at) = &self.sent_at {
            encoding::message::encode(4, sent_at, buf);
        }
    }

    sent_only!();

    fn encoded_len(&self) -> usize {
        (if self.kind != 0 {
            encoding::int32::encoded_len(1, &self.kind)
        } else {
            0
        }) + (if self.revision != 0 {
            encoding::int64::encoded_len(2, &self.revision)
        } else {
            0
        }) + self.execution.as_ref().map_or(0, |e| execution_len(3, e))
            + self
                .sent_at
                .as_ref()
                .map_or(0, |t| encoding::message::encoded_len(4, t))
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A `workflow.executions.v1.WatchExecutionsResponse` with a shared execution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedEvent {
    /// `WatchEventKind` as its number.
    pub kind: i32,
    /// The execution (absent on SYNCED and HEARTBEAT).
    pub execution: Option<SharedExecution>,
    /// Where to resume from.
    pub cursor: String,
    /// When the server sent it.
    pub sent_at: Option<prost_types::Timestamp>,
    /// The execution left the filters.
    pub left_filter: bool,
}

impl FeedEvent {
    /// The fields after the execution.
    fn encode_tail(&self, buf: &mut impl BufMut) {
        if !self.cursor.is_empty() {
            encoding::string::encode(3, &self.cursor, buf);
        }
        if let Some(sent_at) = &self.sent_at {
            encoding::message::encode(4, sent_at, buf);
        }
        if self.left_filter {
            encoding::bool::encode(5, &self.left_filter, buf);
        }
    }

    fn tail_len(&self) -> usize {
        (if self.cursor.is_empty() {
            0
        } else {
            encoding::string::encoded_len(3, &self.cursor)
        }) + self
            .sent_at
            .as_ref()
            .map_or(0, |t| encoding::message::encoded_len(4, t))
            + if self.left_filter {
                encoding::bool::encoded_len(5, &self.left_filter)
            } else {
                0
            }
    }
}

impl Message for FeedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.kind != 0 {
            encoding::int32::encode(1, &self.kind, buf);
        }
        if let Some(execution) = &self.execution {
            encode_execution(2, execution, buf);
        }
        self.encode_tail(buf);
    }

    sent_only!();

    fn encoded_len(&self) -> usize {
        (if self.kind != 0 {
            encoding::int32::encoded_len(1, &self.kind)
        } else {
            0
        }) + self.execution.as_ref().map_or(0, |e| execution_len(2, e))
            + self.tail_len()
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl Chunks for FeedEvent {
    /// The kind, the shared execution, and the fields after it.
    fn chunks(self) -> (usize, Vec<Bytes>) {
        let len = self.encoded_len();
        let mut before = Vec::with_capacity(16);
        if self.kind != 0 {
            encoding::int32::encode(1, &self.kind, &mut before);
        }
        let mut chunks = Vec::with_capacity(3);
        if let Some(execution) = &self.execution {
            encoding::encode_key(2, WireType::LengthDelimited, &mut before);
            encoding::encode_varint(execution.len() as u64, &mut before);
            chunks.push(Bytes::from(before));
            chunks.push(execution.0.clone());
        } else {
            chunks.push(Bytes::from(before));
        }
        let mut after = Vec::with_capacity(self.tail_len());
        self.encode_tail(&mut after);
        chunks.push(Bytes::from(after));
        (len, chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution() -> pb::Execution {
        pb::Execution {
            id: "0199b7a3-b994-7588-82bf-549a3600bc27".into(),
            hashid: "v8brp".into(),
            revision: 300,
            name: "é".repeat(200),
            ..Default::default()
        }
    }

    /// The shared forms encode byte for byte as the generated messages, and clients
    /// decode them as such.
    #[test]
    fn shared_forms_encode_as_the_generated_messages() {
        let e = execution();
        let shared = SharedExecution::encode(&e);
        assert_eq!(shared.encode_to_vec(), e.encode_to_vec());
        assert_eq!(shared.encoded_len(), e.encoded_len());

        for token in ["", "next"] {
            let page = ListPage {
                executions: vec![
                    shared.clone(),
                    SharedExecution::encode(&pb::Execution::default()),
                ],
                next_page_token: token.into(),
            };
            let generated = pb::ListExecutionsResponse {
                executions: vec![e.clone(), pb::Execution::default()],
                next_page_token: token.into(),
            };
            assert_eq!(page.encode_to_vec(), generated.encode_to_vec());
            assert_eq!(page.encoded_len(), generated.encoded_len());
        }

        let sent_at = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        };
        for (kind, revision, with) in [(1, 300, true), (3, 0, false), (0, 7, false)] {
            let event = WatchEvent {
                kind,
                revision,
                execution: with.then(|| shared.clone()),
                sent_at: Some(sent_at),
            };
            let generated = pb::WatchExecutionResponse {
                kind,
                revision,
                execution: with.then(|| e.clone()),
                sent_at: Some(sent_at),
            };
            assert_eq!(event.encode_to_vec(), generated.encode_to_vec());
            assert_eq!(event.encoded_len(), generated.encoded_len());
            assert_eq!(
                pb::WatchExecutionResponse::decode(event.encode_to_vec().as_slice()).unwrap(),
                generated
            );
            let (len, chunks) = event.chunks();
            assert_eq!(len, generated.encoded_len());
            assert_eq!(
                chunks.concat(),
                generated.encode_to_vec(),
                "the chunks, joined"
            );
        }

        for (kind, with, cursor, left) in [
            (1, true, "c1", false),
            (2, true, "c2", true),
            (4, false, "c3", false),
            (3, false, "", false),
        ] {
            let event = FeedEvent {
                kind,
                execution: with.then(|| shared.clone()),
                cursor: cursor.into(),
                sent_at: Some(sent_at),
                left_filter: left,
            };
            let generated = pb::WatchExecutionsResponse {
                kind,
                execution: with.then(|| e.clone()),
                cursor: cursor.into(),
                sent_at: Some(sent_at),
                left_filter: left,
            };
            assert_eq!(event.encode_to_vec(), generated.encode_to_vec());
            assert_eq!(event.encoded_len(), generated.encoded_len());
            let (len, chunks) = event.chunks();
            assert_eq!(len, generated.encoded_len());
            assert_eq!(chunks.concat(), generated.encode_to_vec());
        }
    }
}
