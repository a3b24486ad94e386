//! The creations' horizon of List pages (PostgreSQL), read once for all the pages that
//! wait for it.
//!
//! A page reads only executions created before a horizon taken after the page was asked
//! for (see `db::creations`). Taking one is an instant's exclusive hold of a lock, so
//! pages asked for at once would queue on it one by one. Here a page draws a ticket when
//! it arrives; a horizon read records the tickets drawn before it began and serves every
//! one of them, so a page that arrives while a read is in flight waits for the next read
//! (at most two reads), and one read serves every page that queued behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Caller;
use crate::db::{self, Database, Horizon};
use crate::error::Error;

/// The last horizon read and the pages it serves.
#[derive(Debug, Default)]
pub struct SharedHorizon {
    /// Tickets drawn so far (each page draws one as it arrives).
    tickets: AtomicU64,
    /// Held while a horizon is read: one read at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The last horizon read, and how many tickets had been drawn when it began.
    latest: Mutex<Option<(u64, Horizon)>>,
}

impl SharedHorizon {
    /// A horizon taken after this call began (`None` on SQLite), shared with the other
    /// pages that wait for one. A read waits for the creations in flight at most what is
    /// left of its caller's deadline when it begins. It runs in a task of its own, so a
    /// page that gives up (its client left, its deadline passed) does not waste the read
    /// the others wait for.
    pub async fn read(
        self: &Arc<Self>,
        db: &Database,
        caller: &Caller,
    ) -> Result<Option<Horizon>, Error> {
        if !db.is_postgres() {
            return Ok(None);
        }
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
        if let Some(horizon) = self.serving(ticket) {
            return Ok(Some(horizon));
        }
        let turn = Arc::clone(&self.turn).lock_owned().await;
        // A read that began after this ticket was drawn may have ended meanwhile.
        if let Some(horizon) = self.serving(ticket) {
            return Ok(Some(horizon));
        }
        let budget = caller.budget()?;
        let drawn = self.tickets.load(Ordering::SeqCst);
        let (shared, db) = (Arc::clone(self), db.clone());
        let read = tokio::spawn(async move {
            let _turn = turn;
            let horizon = db::horizon(db.conn(), budget).await?;
            if let Some(horizon) = horizon
                && let Ok(mut latest) = shared.latest.lock()
                && latest.is_none_or(|(served, _)| served < drawn)
            {
                *latest = Some((drawn, horizon));
            }
            Ok(horizon)
        });
        read.await
            .map_err(|_| Error::internal("the read of a horizon ended before answering"))?
    }
    /// The last horizon read, if it began after `ticket` was drawn.
    fn serving(&self, ticket: u64) -> Option<Horizon> {
        let latest = self.latest.lock().ok()?;
        latest
            .filter(|(drawn, _)| ticket < *drawn)
            .map(|(_, horizon)| horizon)
    }
}
