//! WatchExecution as a use case: a stream of the states an execution goes through.
//!
//! The stream subscribes to the change hub *before* reading the snapshot (so no change
//! falls in between), then yields a SNAPSHOT (unless the caller already has the current
//! revision), an UPDATE whenever a newer state is published, and a HEARTBEAT after each
//! quiet interval. Revisions on one stream strictly increase. A watcher that stops reading
//! is not buffered for: the hub keeps only the latest state, which it gets when it reads
//! again. The stream ends after the first terminal state, and with
//! [`Error::ShuttingDown`] when the server stops.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::{Caller, Executions};
use crate::changes::Subscription;
use crate::domain::{ExecutionRef, FullExecution, View};
use crate::error::Error;

/// One message of a watch.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// The state when the watch opened.
    Snapshot(Arc<FullExecution>),
    /// A newer state.
    Update(Arc<FullExecution>),
    /// Nothing changed; the revision the watcher is at.
    Heartbeat {
        /// Current revision.
        revision: i64,
    },
}

/// How long a new watcher waits for another watcher's read of the same execution before
/// reading it itself.
const SHARED_READ_PATIENCE: Duration = Duration::from_secs(2);

/// The stream a watch returns.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>;

/// Settings of watches.
#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// Quiet time after which a HEARTBEAT is sent.
    pub heartbeat: Duration,
    /// Most watches open at once on this replica.
    pub max_watches: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            max_watches: 100_000,
        }
    }
}

impl Executions {
    /// Opens a watch of `target` for a caller that has seen `since_revision` (0: nothing).
    /// Fails before any message: NOT_FOUND for an unknown execution, OUT_OF_RANGE for a
    /// revision ahead of the current one, RESOURCE_EXHAUSTED past the watch limit. An
    /// execution the caller may not see is not found.
    pub async fn watch(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        since_revision: i64,
    ) -> Result<WatchStream, Error> {
        let permit = self.watch_permit()?;
        let id = match (target, &caller.tenant) {
            // An unconfined watcher of a known id goes straight to the shared slot.
            (ExecutionRef::Id(id), None) => id,
            // A confined one first shows, with a read filtered on its tenant, that the
            // execution is its own: nothing shared with other watchers (whether a slot
            // exists, what it holds, how long a read takes) may tell it anything about
            // executions it cannot see.
            _ => self.get(caller, target, View::Basic).await?.header.id,
        };
        // Subscribe first, then take the snapshot: a change committed after it is
        // published to the subscription; one committed before it is in the snapshot.
        let mut subscription = self.hub.subscribe(id);
        let current = match subscription.latest() {
            // Others already watch this execution: their slot holds the latest published
            // state (every later change will be published to us too), so share it rather
            // than read the database once more per watcher.
            Some(published) if published.header.revision >= since_revision => published,
            _ => {
                self.snapshot(target, &mut subscription, since_revision)
                    .await?
            }
        };
        if since_revision > current.header.revision {
            return Err(Error::RevisionAhead {
                requested: since_revision,
                current: current.header.revision,
            });
        }
        Ok(Box::pin(watch_stream(
            subscription,
            current,
            since_revision,
            self.watch_settings.heartbeat,
            self.watch_shutdown.clone(),
            permit,
        )))
    }

    /// The state a new watcher starts from when the slot has none recent enough: one
    /// watcher reads it from the database and shares it through the slot, while watchers
    /// arriving meanwhile wait for that read rather than each making their own.
    async fn snapshot(
        &self,
        target: ExecutionRef,
        subscription: &mut Subscription,
        since_revision: i64,
    ) -> Result<Arc<FullExecution>, Error> {
        // Given up when dropped: after the read below, or if it fails or its caller goes
        // away mid-read.
        let claim = subscription.claim_reader();
        if claim.is_none()
            && let Some(shared) = subscription
                .wait_for_state(since_revision, SHARED_READ_PATIENCE)
                .await
        {
            return Ok(shared);
        }
        let read = async {
            // One snapshot of the row and its actions (see `Executions::get`). It is shared
            // with every watcher of the execution, so it is read for no one in particular;
            // `watch` checks what each caller may see.
            let read = self
                .get(
                    &Caller::unrestricted(),
                    ExecutionRef::Id(subscription.id()),
                    View::Full,
                )
                .await?;
            Ok::<_, Error>(Arc::new(FullExecution {
                header: read.header,
                detail: read
                    .detail
                    .ok_or_else(|| Error::internal("FULL read without detail"))?,
            }))
        }
        .await
        .map_err(|err| match err {
            Error::ExecutionNotFound(_) => self.not_found(target),
            other => other,
        })?;
        self.hub.offer(read.clone());
        // The slot has a state now; a later watcher that needs a newer one reads itself.
        drop(claim);
        Ok(match subscription.latest() {
            Some(published) if published.header.revision > read.header.revision => published,
            _ => read,
        })
    }

    /// One of the replica's watches (WatchExecution and WatchExecutions streams count
    /// alike), held for the stream's life; RESOURCE_EXHAUSTED when none is left.
    pub(super) fn watch_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.watch_permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::TooManyWatches {
                limit: self.watch_settings.max_watches,
            })
    }

    /// Ends every open watch with [`Error::ShuttingDown`].
    pub fn close_watches(&self) {
        self.watch_shutdown.cancel();
    }

    /// Changes committed on this replica so far.
    pub fn changes_published(&self) -> u64 {
        self.hub.changes_published()
    }

    /// Number of watches open on this replica.
    pub fn open_watches(&self) -> usize {
        self.watch_settings.max_watches - self.watch_permits.available_permits()
    }
}

fn watch_stream(
    mut subscription: Subscription,
    current: Arc<FullExecution>,
    since_revision: i64,
    heartbeat: Duration,
    shutdown: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<WatchEvent, Error>> + Send {
    async_stream::stream! {
        let _permit = permit;
        let mut last = since_revision;
        let terminal = current.header.status.is_terminal();
        if since_revision < current.header.revision {
            last = current.header.revision;
            yield Ok(WatchEvent::Snapshot(current));
            if terminal {
                return;
            }
        } else if terminal {
            // The caller already has the terminal state; nothing will follow.
            return;
        }
        let mut quiet = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        // A watcher that stalled gets one heartbeat when it reads again, not a burst.
        quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    yield Err(Error::ShuttingDown { last_revision: last });
                    return;
                }
                alive = subscription.changed() => {
                    if !alive {
                        yield Err(Error::ShuttingDown { last_revision: last });
                        return;
                    }
                    // Level-based: only the newest state matters, whatever was skipped.
                    if let Some(state) = subscription.latest()
                        && state.header.revision > last
                    {
                        last = state.header.revision;
                        let terminal = state.header.status.is_terminal();
                        yield Ok(WatchEvent::Update(state));
                        if terminal {
                            return;
                        }
                        quiet.reset();
                    }
                }
                _ = quiet.tick() => {
                    yield Ok(WatchEvent::Heartbeat { revision: last });
                }
            }
        }
    }
}
