//! Wire forms of executions shared between watch streams.
//!
//! A change to an execution with a thousand watchers would otherwise be converted to its
//! wire form a thousand times (hashid, time formats, stats map). The same (execution,
//! revision) always has the same state, so its wire form for a (view, zone) is converted
//! once and cloned for each watcher.

use std::sync::Arc;

use chrono_tz::Tz;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::to_proto::Presentation;
use crate::domain::{ExecutionId, FullExecution, View};
use crate::proto::v1 as pb;

/// Estimated heap bytes of the wire forms kept.
const CAPACITY_BYTES: u64 = 32 << 20;
/// Heap bytes of a decoded `pb::Execution` per byte of its encoding, measured: its strings,
/// `Struct` maps and stats map take about seven times their encoded size. (Weighing
/// entries by encoded size let the cache hold ~240 MiB where 32 MiB was meant: the server
/// sat at 362 MiB under `loadgen mixed`, 124 MiB with this estimate.)
const HEAP_PER_ENCODED_BYTE: u64 = 8;
/// Expected number of entries, for sizing.
const EXPECTED_ENTRIES: usize = 4_096;

type Key = (ExecutionId, i64, View, Tz);

#[derive(Clone)]
struct EncodedSize;

impl Weighter<Key, Arc<pb::Execution>> for EncodedSize {
    fn weight(&self, _key: &Key, value: &Arc<pb::Execution>) -> u64 {
        prost::Message::encoded_len(value.as_ref()) as u64 * HEAP_PER_ENCODED_BYTE + 64
    }
}

/// Recently converted executions, by (id, revision, view, zone).
#[derive(Clone)]
pub struct RenderCache {
    cache: Arc<Cache<Key, Arc<pb::Execution>, EncodedSize>>,
}

impl std::fmt::Debug for RenderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderCache")
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl Default for RenderCache {
    fn default() -> Self {
        Self {
            cache: Arc::new(Cache::with_weighter(
                EXPECTED_ENTRIES,
                CAPACITY_BYTES,
                EncodedSize,
            )),
        }
    }
}

impl RenderCache {
    /// The wire form of `execution` as `out` presents it.
    pub fn execution(&self, out: &Presentation<'_>, execution: &FullExecution) -> pb::Execution {
        let key = (
            execution.header.id,
            execution.header.revision,
            out.view,
            out.zone,
        );
        let rendered = self
            .cache
            .get_or_insert_with(&key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(out.full_execution(execution)))
            })
            .unwrap_or_else(|never| match never {});
        pb::Execution::clone(&rendered)
    }
}
