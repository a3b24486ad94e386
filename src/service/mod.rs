//! The use cases, one file each: [`start`](Executions::start) an execution,
//! [`change`](Executions::update_action) one (an action's progress, a stop),
//! [`read`](Executions::get) them, and [`watch`](Executions::watch) one as it changes.
//!
//! Every change goes through `Executions::write` (in `write.rs`), the one place where
//! changes are committed: it runs the change's work in a transaction, commits, and only
//! then publishes the new revision to the change hub, so watchers never see a change that
//! could still roll back.

mod caller;
mod change;
mod feed;
mod feed_cursor;
mod fleet;
mod history;
mod horizon;
mod known;
mod page_token;
mod read;
mod retention;
mod revisions;
mod start;
mod watch;
mod write;

pub use caller::Caller;
pub use feed::{FeedEvent, FeedRequest, FeedStream};
pub use history::{EventsPage, EventsRequest};
pub use read::{ListRequest, Page};
pub use watch::{WatchEvent, WatchSettings, WatchStream};

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::changes::ChangeHub;
use crate::changes::reader::ChangeReader;
use crate::db::Database;
use crate::domain::{ExecutionRef, HashidCodec};
use crate::error::Error;

/// The use cases, over one database and one change hub.
#[derive(Clone, Debug)]
pub struct Executions {
    db: Database,
    hub: ChangeHub,
    /// Reads what changed once for every WatchExecutions feed on this replica.
    reader: ChangeReader,
    hashids: Arc<HashidCodec>,
    watch_settings: WatchSettings,
    watch_permits: Arc<Semaphore>,
    /// Turns to read a page of a feed's catch-up (see [`feed::concurrent_catch_ups`]).
    catch_ups: Arc<Semaphore>,
    /// Turns to run a batch of a StopExecutions job, shared by every job of this replica
    /// (see [`fleet::stop_lanes`]).
    stop_turns: Arc<Semaphore>,
    watch_shutdown: CancellationToken,
    /// Revisions read since the last write began (SQLite; see [`known`]).
    known: Arc<known::KnownRevisions>,
    /// Reads of current revisions, batched (see [`revisions`]).
    revisions: Arc<revisions::RevisionReads>,
    /// The creations' horizon of List pages, read once for the pages waiting for it (see
    /// [`horizon`]).
    horizon: Arc<horizon::SharedHorizon>,
    /// Writes in flight, each in a task of its own (see [`Executions::write`]).
    changes: TaskTracker,
}

impl Executions {
    /// Serves executions stored in `db`, announcing changes on `hub`.
    pub fn new(db: Database, hub: ChangeHub, watch_settings: WatchSettings) -> Self {
        let catch_ups = feed::concurrent_catch_ups(db.max_connections());
        Self {
            reader: ChangeReader::new(db.clone(), hub.clone()),
            stop_turns: Arc::new(Semaphore::new(fleet::stop_lanes(&db))),
            db,
            hub,
            hashids: Default::default(),
            watch_permits: Arc::new(Semaphore::new(watch_settings.max_watches)),
            catch_ups: Arc::new(Semaphore::new(catch_ups)),
            watch_settings,
            watch_shutdown: CancellationToken::new(),
            known: Arc::default(),
            revisions: Arc::default(),
            horizon: Arc::default(),
            changes: TaskTracker::new(),
        }
    }

    /// Starts relaying changes to and from other replicas (PostgreSQL) and reading them
    /// for WatchExecutions feeds, until `token` is cancelled.
    pub fn start_relay(&self, token: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = crate::changes::relay::start(&self.db, &self.hub, token.clone());
        tasks.push(self.reader.start(token));
        tasks
    }

    /// Database reads the change reader made for feeds so far, and executions they read.
    pub fn feed_reads(&self) -> (u64, u64) {
        self.reader.reads()
    }

    /// Encodes and decodes hashids.
    pub fn hashids(&self) -> &HashidCodec {
        &self.hashids
    }

    /// Encodes and decodes hashids (shared handle, for streams that outlive a call).
    pub fn hashids_arc(&self) -> Arc<HashidCodec> {
        self.hashids.clone()
    }

    /// True when the database answers (for health checks).
    pub async fn database_is_up(&self) -> bool {
        self.db.ping().await
    }

    /// The answer for an execution that does not exist or that the caller may not see,
    /// naming it as the caller did.
    pub(super) fn not_found(&self, target: ExecutionRef) -> Error {
        Error::ExecutionNotFound(target.to_string())
    }
}
