//! Reads of current revisions, batched: the FULL Gets in flight at once share one
//! statement.
//!
//! A FULL Get answers from the shared encoding of its execution's current revision, and
//! reads that revision from the database (strong consistency). Under load, each such read
//! was a round trip of its own. Here a Get queues what it asks; whichever caller holds
//! one of the [`BATCHES_AT_ONCE`] turns reads everything queued (at most
//! [`MOST_PER_BATCH`]) with one statement and answers each ask. Every ask is answered by
//! a statement sent after it was queued, so every answer is a revision that was current
//! at an instant during its call, as with a read of its own. At low load a batch holds one
//! ask and costs what a read of its own costs.

use std::sync::Mutex;

use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{Semaphore, oneshot};

use crate::db::{self, Database};
use crate::domain::{ExecutionId, ExecutionRef};

/// Batches read at the same time.
const BATCHES_AT_ONCE: usize = 2;
/// Most asks one statement answers.
const MOST_PER_BATCH: usize = 64;

/// The id and current revision of the execution asked for; `None`: there is none (for
/// that tenant).
type Answer = Option<(ExecutionId, i64)>;

/// The batch that held an ask failed (or its reader gave up): read it alone, and get the
/// error, if any, from that read.
#[derive(Debug)]
pub struct BatchFailed;

/// One queued read.
struct Ask {
    target: ExecutionRef,
    tenant: Option<Box<str>>,
    reply: oneshot::Sender<Answer>,
}

/// Queued reads of current revisions, and the turns to read them.
pub struct RevisionReads {
    queue: Mutex<Vec<Ask>>,
    turns: Semaphore,
}

impl Default for RevisionReads {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            turns: Semaphore::new(BATCHES_AT_ONCE),
        }
    }
}

impl std::fmt::Debug for RevisionReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevisionReads")
            .field("turns", &self.turns.available_permits())
            .finish_non_exhaustive()
    }
}

impl RevisionReads {
    /// The current revision of `target` as `tenant` sees it, read in a batch with the
    /// other reads queued meanwhile.
    pub async fn read(
        &self,
        db: &Database,
        target: ExecutionRef,
        tenant: Option<&str>,
    ) -> Result<Answer, BatchFailed> {
        let (reply, mut answer) = oneshot::channel();
        self.queue.lock().map_err(|_| BatchFailed)?.push(Ask {
            target,
            tenant: tenant.map(Into::into),
            reply,
        });
        loop {
            let turn = tokio::select! {
                biased;
                answered = &mut answer => return answered.map_err(|_| BatchFailed),
                turn = self.turns.acquire() => turn.map_err(|_| BatchFailed)?,
            };
            match answer.try_recv() {
                Ok(answered) => return Ok(answered),
                Err(TryRecvError::Closed) => return Err(BatchFailed),
                Err(TryRecvError::Empty) => {}
            }
            let batch: Vec<Ask> = {
                let mut queue = self.queue.lock().map_err(|_| BatchFailed)?;
                let n = queue.len().min(MOST_PER_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                // This ask is in a batch in flight: wait for its answer, not for turns
                // (taking a free turn again and again would spin).
                drop(turn);
                return answer.await.map_err(|_| BatchFailed);
            }
            answer_batch(db, batch).await;
            drop(turn);
        }
    }
}

/// Reads the revisions `batch` asks for with one statement and answers each ask. If the
/// read fails, the asks are dropped unanswered, which tells their callers to read alone.
async fn answer_batch(db: &Database, batch: Vec<Ask>) {
    if batch.is_empty() {
        return;
    }
    let targets: Vec<ExecutionRef> = batch.iter().map(|ask| ask.target).collect();
    let Ok(found) = db::revisions_of_many(db.conn(), &targets).await else {
        return;
    };
    for ask in batch {
        let answer = found
            .iter()
            .find(|row| row.answers(ask.target, ask.tenant.as_deref()))
            .map(|row| (row.id, row.revision));
        // A caller that gave up no longer listens.
        let _ = ask.reply.send(answer);
    }
}
