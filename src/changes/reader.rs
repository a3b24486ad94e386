//! The change reader: one per replica, it reads what changed in the database for every
//! WatchExecutions feed on the replica at once, so the database is read once per batch of
//! changes, not once per feed.
//!
//! Each round opens one read snapshot, takes its [`CommitPoint`], reads every execution
//! whose last change the previous round's point did not see, and broadcasts them as one
//! [`Batch`] with the new point. Rounds run when the change hub announces a change (a
//! local commit, or another replica's through the relay), at most one every [`MIN_GAP`],
//! and every [`POLL`] while feeds are open, so a notification lost on the way only delays
//! a change. Nothing is read while no feed is open.
//!
//! Memory is bounded: a batch holds at most [`MAX_BATCH_ROWS`] executions (past that it
//! carries only its point, and each feed catches up from the database with its own
//! filter), and the broadcast keeps the last [`KEPT_BATCHES`] batches for feeds that are
//! behind; a feed further behind is told it lagged and catches up the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ChangeHub;
use crate::db::{self, Database};
use crate::domain::View;
use crate::domain::feed::{Changed, CommitPoint};
use crate::error::Error;

/// Longest time between two rounds while feeds are open.
pub const POLL: Duration = Duration::from_secs(1);
/// Shortest time between the starts of two rounds: the changes committed meanwhile are
/// read in one round, and every feed is woken once for them, not once per change (a
/// replica taking 500 commits a second would otherwise wake each of its feeds 500 times a
/// second). It is the most a change waits for the reader on top of the round itself.
pub const MIN_GAP: Duration = Duration::from_millis(20);
/// Most executions in one batch.
pub const MAX_BATCH_ROWS: u64 = 256;
/// Longest a round's statements may run.
const ROUND_BUDGET: Duration = Duration::from_secs(10);
/// Batches kept for feeds that read behind the others.
pub const KEPT_BATCHES: usize = 64;

/// What one round of the reader found.
#[derive(Debug)]
pub enum Batch {
    /// The executions that changed since the previous point, at their state as of
    /// `point`.
    Changes {
        /// The point of the round's snapshot.
        point: CommitPoint,
        /// The changed executions (FULL while some feed wants FULL, else BASIC).
        changes: Vec<Arc<Changed>>,
    },
    /// More executions changed than a batch holds: every feed catches up from the
    /// database.
    TooMany,
}

/// The replica's change reader (cheap to clone).
#[derive(Clone, Debug)]
pub struct ChangeReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    hub: ChangeHub,
    /// The point the last round read up to; `None` while no feed is open.
    read_up_to: Mutex<Option<CommitPoint>>,
    batches: broadcast::Sender<Arc<Batch>>,
    /// Open feeds that want the FULL view.
    full_feeds: AtomicUsize,
    /// Rounds that read the database, and executions they read (for the benchmark).
    rounds: AtomicU64,
    rows: AtomicU64,
}

/// A feed's place on the reader's broadcast.
#[derive(Debug)]
pub struct Tuned {
    /// The batches, from the first one read after the subscription.
    pub batches: broadcast::Receiver<Arc<Batch>>,
    full: Option<Arc<Inner>>,
}

impl Drop for Tuned {
    fn drop(&mut self) {
        if let Some(inner) = &self.full {
            inner.full_feeds.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl ChangeReader {
    /// A reader of `db` woken by `hub`'s announcements (not running until
    /// [`ChangeReader::start`]).
    pub fn new(db: Database, hub: ChangeHub) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                hub,
                read_up_to: Mutex::new(None),
                batches: broadcast::channel(KEPT_BATCHES).0,
                full_feeds: AtomicUsize::new(0),
                rounds: AtomicU64::new(0),
                rows: AtomicU64::new(0),
            }),
        }
    }

    /// Runs rounds until `token` is cancelled.
    pub fn start(&self, token: CancellationToken) -> JoinHandle<()> {
        let reader = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            let mut last_round: Option<Instant> = None;
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = reader.inner.hub.announced() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
                if let Some(last) = last_round {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep_until(last + MIN_GAP) => {}
                    }
                }
                last_round = Some(Instant::now());
                match reader.round().await {
                    Ok(()) => backoff = Duration::from_millis(50),
                    Err(err) => {
                        // The point did not move: the next round reads the same changes.
                        tracing::warn!(error = %err, ?backoff, "change reader: round failed");
                        tokio::select! {
                            () = token.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    /// Subscribes a feed to the batches. Every batch it receives was read after this
    /// returns, from the point of the previous batch or later, and that point is seen by
    /// any snapshot the feed takes after this returns: a feed that reads the database
    /// after subscribing, then follows the batches, misses nothing.
    pub async fn subscribe(&self, view: View) -> Result<Tuned, Error> {
        let mut read_up_to = self.inner.read_up_to.lock().await;
        if read_up_to.is_none() {
            *read_up_to = Some(db::commit_point(self.inner.db.conn()).await?);
        }
        let full = (view == View::Full).then(|| {
            self.inner.full_feeds.fetch_add(1, Ordering::Relaxed);
            self.inner.clone()
        });
        Ok(Tuned {
            batches: self.inner.batches.subscribe(),
            full,
        })
    }

    /// Rounds that read the database so far, and the executions they read.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.inner.rounds.load(Ordering::Relaxed),
            self.inner.rows.load(Ordering::Relaxed),
        )
    }

    /// One round: reads what changed since the last point and broadcasts it.
    async fn round(&self) -> Result<(), Error> {
        let inner = &self.inner;
        // Held through the broadcast, so that a feed subscribes either before a batch
        // (and receives it) or after it (and its own reads see the batch's point).
        let mut read_up_to = inner.read_up_to.lock().await;
        if inner.batches.receiver_count() == 0 {
            *read_up_to = None;
            return Ok(());
        }
        let Some(since) = read_up_to.clone() else {
            return Ok(());
        };
        let view = if inner.full_feeds.load(Ordering::Relaxed) > 0 {
            View::Full
        } else {
            View::Basic
        };
        // Bounded, so a round that hangs (while it holds what new feeds wait for) fails
        // and is retried instead (PostgreSQL; SQLite statements are not cut short).
        let txn = inner.db.begin_read(Some(ROUND_BUDGET)).await?;
        let point = db::commit_point(&txn).await?;
        if point == since {
            txn.commit().await?;
            return Ok(());
        }
        let changes = db::changed_since(&txn, &since, view, MAX_BATCH_ROWS + 1).await?;
        txn.commit().await?;
        inner.rounds.fetch_add(1, Ordering::Relaxed);
        inner
            .rows
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        let batch = if changes.len() as u64 > MAX_BATCH_ROWS {
            Batch::TooMany
        } else {
            Batch::Changes {
                point: point.clone(),
                changes: changes.into_iter().map(Arc::new).collect(),
            }
        };
        let _ = inner.batches.send(Arc::new(batch));
        *read_up_to = Some(point);
        Ok(())
    }
}
