//! Wire forms of executions, encoded once and shared.
//!
//! The same (execution, revision) always has the same state, so its wire form for a
//! (view, zone) is converted and encoded once, and every Get, List row and watch event
//! that needs it shares the same bytes (see `wire`): a change watched by a thousand
//! watchers is encoded once, not a thousand times, and held once while they read it. A
//! WatchExecutions snapshot, a scan, uses what is cached but adds nothing to it
//! ([`RenderCache::scanned_execution`]).

use std::sync::Arc;

use chrono_tz::Tz;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::to_proto::Presentation;
use super::wire::SharedExecution;
use crate::domain::{Execution, ExecutionId, FullExecution, View};

/// Bytes of encoded executions kept. 16 MiB holds the FULL forms of about 1,000
/// 20-action executions; with 32 MiB, `loadgen mixed` left the server at 69 MiB of RSS
/// instead of 52 MiB, and Get FULL was no faster (BENCHMARKS.md, "Memory under mixed").
const CAPACITY_BYTES: u64 = 16 << 20;
/// Expected number of entries, for sizing.
const EXPECTED_ENTRIES: usize = 4_096;

type Key = (ExecutionId, i64, View, Tz);

#[derive(Clone)]
struct EncodedSize;

impl Weighter<Key, SharedExecution> for EncodedSize {
    fn weight(&self, _key: &Key, value: &SharedExecution) -> u64 {
        value.len() as u64 + 64
    }
}

/// Recently encoded executions, by (id, revision, view, zone).
#[derive(Clone)]
pub struct RenderCache {
    cache: Arc<Cache<Key, SharedExecution, EncodedSize>>,
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
    /// The encoded wire form of `execution` as `out` presents it (its view must be what
    /// `execution` was read with: FULL needs the detail).
    pub fn execution(&self, out: &Presentation<'_>, execution: &Execution) -> SharedExecution {
        self.get_or_encode(out, &execution.header, || out.execution(execution))
    }

    /// The encoded wire form of `execution` met in a scan (a feed's snapshot): shared if
    /// it is cached, else encoded for this answer alone and not kept. A scan passes each
    /// execution once; keeping its renders would push out the revisions that many
    /// streams are sending at once (what the cache is for), and hold a snapshot's worth of
    /// bytes after every feed that read it has gone idle.
    pub fn scanned_execution(
        &self,
        out: &Presentation<'_>,
        execution: &Execution,
    ) -> SharedExecution {
        let header = &execution.header;
        self.cached(out, header.id, header.revision)
            .unwrap_or_else(|| SharedExecution::encode(&out.execution(execution)))
    }

    /// The encoded wire form of an execution held whole.
    pub fn full_execution(
        &self,
        out: &Presentation<'_>,
        execution: &FullExecution,
    ) -> SharedExecution {
        self.get_or_encode(out, &execution.header, || out.full_execution(execution))
    }

    /// The encoded form of `id` at `revision` as `out` presents it, if it is cached.
    pub fn cached(
        &self,
        out: &Presentation<'_>,
        id: ExecutionId,
        revision: i64,
    ) -> Option<SharedExecution> {
        self.cache.get(&(id, revision, out.view, out.zone))
    }

    fn get_or_encode(
        &self,
        out: &Presentation<'_>,
        header: &crate::domain::Header,
        convert: impl FnOnce() -> crate::proto::v1::Execution,
    ) -> SharedExecution {
        let key = (header.id, header.revision, out.view, out.zone);
        self.cache
            .get_or_insert_with(&key, || {
                Ok::<_, std::convert::Infallible>(SharedExecution::encode(&convert()))
            })
            .unwrap_or_else(|never| match never {})
    }
}
