//! Revisions known without asking the database again (SQLite only).
//!
//! On SQLite this server is the only writer of its file (a second server on it refuses
//! to start), and every write transaction holds the database's write turn, which counts
//! the writes begun and ended: its write epoch, odd while one is in progress (see
//! [`Database::quiet_epoch`]). A revision read while the epoch stayed at one even value
//! is the execution's current revision for as long as the epoch stays there. So until the
//! next write begins, GetExecution may take the revision from here, and answer from the
//! shared encoding of that revision with no database round trip, still strongly
//! consistent: the answer is the stored state at the instant the epoch was read, during
//! the call. A write forgets everything known (it does not say what it changed), and the
//! next reads learn again. On PostgreSQL, other replicas write too: there every Get reads
//! the revision.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::Database;
use crate::domain::{ExecutionId, ExecutionRef};

/// Most revisions kept at once; past it, everything known is forgotten (about 100 bytes
/// each).
const MOST_KNOWN: usize = 16_384;

/// Who asked for which execution: the same reference means another execution to
/// another tenant.
type Asked = (ExecutionRef, Option<Box<str>>);

/// What reads learned since the last write began.
#[derive(Debug, Default)]
pub struct KnownRevisions {
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// The write epoch the revisions were read in.
    epoch: u64,
    revisions: HashMap<Asked, (ExecutionId, i64)>,
}

impl KnownRevisions {
    /// The id and revision of `target` as `tenant` sees it, if a read learned it and no
    /// write has begun since.
    pub fn get(
        &self,
        db: &Database,
        target: ExecutionRef,
        tenant: Option<&str>,
    ) -> Option<(ExecutionId, i64)> {
        let epoch = db.quiet_epoch()?;
        let known = self.known.lock().ok()?;
        if known.epoch != epoch {
            return None;
        }
        known
            .revisions
            .get(&(target, tenant.map(Into::into)))
            .copied()
    }

    /// Keeps what a read found, if the write epoch was `epoch` (even) before the read and
    /// still is after it.
    pub fn learn(
        &self,
        db: &Database,
        epoch: Option<u64>,
        target: ExecutionRef,
        tenant: Option<&str>,
        found: (ExecutionId, i64),
    ) {
        let Some(epoch) = epoch.filter(|&e| db.quiet_epoch() == Some(e)) else {
            return;
        };
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if epoch < known.epoch {
            // Learned before a write that another read already saw end.
            return;
        }
        if known.epoch != epoch || known.revisions.len() >= MOST_KNOWN {
            known.epoch = epoch;
            known.revisions.clear();
        }
        known
            .revisions
            .insert((target, tenant.map(Into::into)), found);
    }
}
