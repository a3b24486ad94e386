//! WatchExecutions as a use case: one live, resumable feed of every execution that
//! matches a filter.
//!
//! A feed subscribes to the replica's change reader first, then reads the database in
//! keyset pages: without a cursor, every execution that matches now (SNAPSHOTs); with one,
//! every execution that changed since the cursor's point (UPDATEs). Then SYNCED, then the
//! reader's batches as UPDATEs, with a HEARTBEAT after each quiet interval.
//!
//! The feed remembers what it has sent as [`Knowledge`]: per stretch of the keyset
//! order, the commit point up to which every change has been handled. A change it already
//! knows is never sent again, so revisions strictly increase per execution on a stream.
//! A feed that falls behind the reader's broadcast (its client reads slowly or not at
//! all) is not buffered for: when it reads again it catches up from the database with
//! its own filter, which yields each changed execution once, at its newest state.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Caller, Executions, feed_cursor};
use crate::changes::reader::Batch;
use crate::db;
use crate::domain::View;
use crate::domain::feed::{
    Changed, CommitPoint, Knowledge, Membership, Seen, fixed_fields_match, membership,
};
use crate::domain::listing::{Cursor, ListFilter};
use crate::error::Error;

/// Executions per page of a feed's catch-up.
pub const CATCH_UP_PAGE: u64 = 100;
/// Most pages of catch-up read at once on a replica, whatever the number of feeds
/// catching up: a thousand feeds opening (or resuming after a restart) at once read their
/// pages a few at a time, instead of taking every connection of the pool from the other
/// calls and holding a thousand pages in memory at once. At most half the pool
/// ([`concurrent_catch_ups`]).
pub const CONCURRENT_CATCH_UPS: usize = 4;

/// Pages of catch-up read at once with a pool of `pool` connections: at most
/// [`CONCURRENT_CATCH_UPS`], and at most half the pool, so that catch-ups never hold every
/// connection (SQLite's default pool on 2 cores has 4).
pub fn concurrent_catch_ups(pool: u32) -> usize {
    (pool as usize / 2).clamp(1, CONCURRENT_CATCH_UPS)
}

/// What a feed asks for, already validated field by field.
#[derive(Clone, Debug)]
pub struct FeedRequest {
    /// Which executions (ListExecutions' filters).
    pub filter: ListFilter,
    /// How much of each execution.
    pub view: View,
    /// A cursor of an earlier feed with the same filter; empty to start with a snapshot.
    pub resume_cursor: String,
}

/// One message of a feed.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    /// An execution that matched when the feed opened.
    Snapshot {
        /// Its state.
        execution: Arc<Changed>,
        /// Where to resume from after this message.
        cursor: Arc<str>,
    },
    /// The initial state (or the catch-up of a resumed feed) is complete.
    Synced {
        /// Where to resume from.
        cursor: Arc<str>,
    },
    /// An execution changed.
    Update {
        /// Its new state.
        execution: Arc<Changed>,
        /// True when it no longer matches the filter: nothing more about it follows.
        left_filter: bool,
        /// Where to resume from after this message.
        cursor: Arc<str>,
    },
    /// Nothing matching changed for a while.
    Heartbeat {
        /// Where to resume from.
        cursor: Arc<str>,
    },
}

/// The stream a feed returns.
pub type FeedStream = Pin<Box<dyn Stream<Item = Result<FeedEvent, Error>> + Send>>;

impl Executions {
    /// Opens a feed. Fails before any message: INVALID_ARGUMENT for a cursor that is not
    /// one of this database's or was handed out for other filters (or lies ahead of the
    /// database), RESOURCE_EXHAUSTED past the watch limit (feeds count as watches). A
    /// caller confined to a tenant follows that tenant's executions only, whatever its
    /// filter says.
    pub async fn watch_many(
        &self,
        caller: &Caller,
        mut request: FeedRequest,
    ) -> Result<FeedStream, Error> {
        let permit = self.watch_permit()?;
        if let Some(tenant) = &caller.tenant {
            request.filter.user_key = Some(tenant.clone());
        }
        let fingerprint = feed_cursor::fingerprint(&request.filter);
        // A cursor handed out before SYNCED (with the first SNAPSHOTs) is the origin:
        // resuming from it starts over with a snapshot.
        let resume =
            feed_cursor::decode(&request.resume_cursor, fingerprint, self.db.is_postgres())?
                .filter(|point| *point != CommitPoint::Origin);
        // Subscribe before any read: every change after the subscription comes through
        // the reader, every change before it is in the reads below.
        let mut tuned = self.reader.subscribe(request.view).await?;
        if let Some(point) = &resume {
            let now = db::commit_point(self.db.conn()).await?;
            if !now.includes(point) {
                return Err(Error::invalid(
                    "resume_cursor",
                    "INVALID_RESUME_CURSOR",
                    "resume_cursor lies ahead of this database: it was handed out by another one",
                ));
            }
        }
        let feed = Feed {
            executions: self.clone(),
            filter: request.filter,
            view: request.view,
            fingerprint,
        };
        let heartbeat = self.watch_settings.heartbeat;
        let shutdown = self.watch_shutdown.clone();
        Ok(Box::pin(async_stream::stream! {
            let _permit = permit;
            let mut knowledge = Knowledge::up_to(resume.clone().unwrap_or(CommitPoint::Origin));
            let mut synced = false;
            let mut quiet = tokio::time::interval_at(
                tokio::time::Instant::now() + heartbeat,
                heartbeat,
            );
            quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Catch up from the database: the first time, and whenever the feed fell
                // behind the reader. The first catch-up of a feed without a cursor sends
                // what matches now as SNAPSHOTs; later ones send what changed as UPDATEs.
                let first = resume.is_none() && !synced;
                let from = knowledge.oldest();
                let cursor = feed.cursor(&from);
                let mut read = Knowledge::unread();
                let mut behind = false;
                let mut after = None;
                while !read.is_complete() {
                    // Boxed: the reads' future is large, and held inline it would
                    // size every idle feed's state as well.
                    let (point, page) = match Box::pin(feed.page(first, &from, after)).await {
                        Ok(page) => page,
                        Err(err) => {
                            yield Err(err);
                            return;
                        }
                    };
                    let end = (page.len() as u64 == CATCH_UP_PAGE)
                        .then(|| page.last().map(Changed::position))
                        .flatten();
                    for changed in page {
                        if knowledge.knows(changed.position(), changed.mark) {
                            continue;
                        }
                        let Some(joined) = membership(&feed.filter, changed.execution.header.status) else {
                            continue;
                        };
                        let execution = Arc::new(changed);
                        yield Ok(if first {
                            FeedEvent::Snapshot { execution, cursor: cursor.clone() }
                        } else {
                            FeedEvent::Update {
                                execution,
                                left_filter: joined == Membership::Left,
                                cursor: cursor.clone(),
                            }
                        });
                    }
                    read.read_up_to(end, point);
                    after = end;
                    // What the reader announced meanwhile, for the part already read (the
                    // rest is read from the database, at its newest state): keeps what
                    // the feed knows to a few points, and the broadcast from running
                    // ahead of a long catch-up.
                    loop {
                        let batch = match tuned.batches.try_recv() {
                            Ok(batch) => batch,
                            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                            Err(TryRecvError::Lagged(_)) => {
                                behind = true;
                                continue;
                            }
                        };
                        let Batch::Changes { point, changes } = &*batch else {
                            behind = true;
                            continue;
                        };
                        for (execution, joined) in feed.pick(&read, changes) {
                            yield Ok(FeedEvent::Update {
                                execution,
                                left_filter: joined == Membership::Left,
                                cursor: cursor.clone(),
                            });
                        }
                        read.advance(point);
                    }
                }
                knowledge = read;
                if !synced {
                    synced = true;
                    yield Ok(FeedEvent::Synced { cursor: feed.cursor(&knowledge.oldest()) });
                }
                quiet.reset();
                if behind {
                    // Batches were lost while catching up: catch up once more.
                    continue;
                }
                // Live: the reader's batches, until the feed falls behind.
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => {
                            yield Err(Error::FeedShuttingDown {
                                cursor: feed.cursor(&knowledge.oldest()).to_string(),
                            });
                            return;
                        }
                        received = tuned.batches.recv() => {
                            let batch = match received {
                                Ok(batch) => batch,
                                Err(RecvError::Lagged(_)) => break,
                                Err(RecvError::Closed) => {
                                    yield Err(Error::FeedShuttingDown {
                                        cursor: feed.cursor(&knowledge.oldest()).to_string(),
                                    });
                                    return;
                                }
                            };
                            let Batch::Changes { point, changes } = &*batch else {
                                break;
                            };
                            let picked = feed.pick(&knowledge, changes);
                            let before = feed.cursor(&knowledge.oldest());
                            knowledge.advance(point);
                            let after = feed.cursor(&knowledge.oldest());
                            let last = picked.len();
                            for (i, (execution, joined)) in picked.into_iter().enumerate() {
                                yield Ok(FeedEvent::Update {
                                    execution,
                                    left_filter: joined == Membership::Left,
                                    // Resuming from `before` repeats the rest of this
                                    // batch; `after` only once all of it was sent.
                                    cursor: if i + 1 == last { after.clone() } else { before.clone() },
                                });
                                quiet.reset();
                            }
                        }
                        _ = quiet.tick() => {
                            yield Ok(FeedEvent::Heartbeat { cursor: feed.cursor(&knowledge.oldest()) });
                        }
                    }
                }
            }
        }))
    }
}

/// What a feed's stream holds besides its state.
struct Feed {
    executions: Executions,
    filter: ListFilter,
    view: View,
    fingerprint: [u8; 8],
}

impl Feed {
    fn cursor(&self, point: &CommitPoint) -> Arc<str> {
        feed_cursor::encode(point, self.fingerprint).into()
    }

    /// The executions of a reader's batch the feed sends, given what it knows: the new
    /// changes (not in a stretch still unread) of executions that match or left.
    fn pick(
        &self,
        knowledge: &Knowledge,
        changes: &[Arc<Changed>],
    ) -> Vec<(Arc<Changed>, Membership)> {
        changes
            .iter()
            .filter(|c| knowledge.seen(c.position(), c.mark) == Seen::New)
            .filter_map(|c| {
                let header = &c.execution.header;
                fixed_fields_match(&self.filter, header, c.data())
                    .then(|| membership(&self.filter, header.status))
                    .flatten()
                    .map(|joined| (c.clone(), joined))
            })
            .collect()
    }

    /// One page of a catch-up from `from`, strictly after `after`, with the point it was
    /// read at. The `first` catch-up of a new feed reads what matches now; later ones
    /// also read what changed and no longer matches its statuses (it may have left).
    async fn page(
        &self,
        first: bool,
        from: &CommitPoint,
        after: Option<Cursor>,
    ) -> Result<(CommitPoint, Vec<Changed>), Error> {
        let filter = if first {
            self.filter.clone()
        } else {
            ListFilter {
                statuses: Vec::new(),
                ..self.filter.clone()
            }
        };
        // Never closed.
        let _turn = self
            .executions
            .catch_ups
            .acquire()
            .await
            .map_err(|_| Error::internal("catch-up turns closed"))?;
        let db = &self.executions.db;
        let txn = db.begin_read(None).await?;
        let point = db::commit_point(&txn).await?;
        let page = db::changed_page(&txn, &filter, from, after, self.view, CATCH_UP_PAGE).await?;
        txn.commit().await?;
        Ok((point, page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_ups_take_at_most_half_the_pool() {
        assert_eq!(concurrent_catch_ups(1), 1);
        assert_eq!(concurrent_catch_ups(4), 2);
        assert_eq!(concurrent_catch_ups(16), CONCURRENT_CATCH_UPS);
    }
}
