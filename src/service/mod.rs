//! The use cases: start an execution, report an action's progress, stop, get and list.
//!
//! Every change goes through [`Executions::change`], the one place where changes are
//! committed: it locks the execution, applies a domain rule, saves the result guarded by
//! the revision it started from, commits, and only then publishes the new revision to the
//! watch hub, so watchers never see a change that could still roll back.

mod caller;
mod page_token;
mod watch;

pub use caller::Caller;
pub use watch::{WatchEvent, WatchSettings, WatchStream};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseTransaction;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::changes::ChangeHub;
use crate::db::{self, Database};
use crate::domain::listing::{Cursor, ListFilter, ListQuery, SortOrder};
use crate::domain::rules::{self, ActionUpdate, NewExecution, Outcome, RuleViolation};
use crate::domain::time::to_stored_precision;
use crate::domain::{Execution, ExecutionId, ExecutionRef, FullExecution, HashidCodec, View};
use crate::error::Error;

/// A page request as the transport hands it over, already validated field by field.
#[derive(Clone, Debug)]
pub struct ListRequest {
    /// What must match.
    pub filter: ListFilter,
    /// In which order.
    pub order: SortOrder,
    /// Rows per page (already defaulted and clamped).
    pub page_size: u64,
    /// Opaque token from the previous page; empty for the first.
    pub page_token: String,
    /// How much of each execution.
    pub view: View,
}

/// One page of executions.
#[derive(Clone, Debug)]
pub struct Page {
    /// The executions, in order.
    pub executions: Vec<Execution>,
    /// Token for the next page; empty on the last page.
    pub next_page_token: String,
}

/// The use cases, over one database and one change hub.
#[derive(Clone, Debug)]
pub struct Executions {
    db: Database,
    hub: ChangeHub,
    hashids: Arc<HashidCodec>,
    watch_settings: WatchSettings,
    watch_permits: Arc<Semaphore>,
    watch_shutdown: CancellationToken,
    /// Changes in flight, each in a task of its own (see [`Executions::in_own_task`]).
    changes: TaskTracker,
}

impl Executions {
    /// Serves executions stored in `db`, announcing changes on `hub`.
    pub fn new(db: Database, hub: ChangeHub, watch_settings: WatchSettings) -> Self {
        Self {
            db,
            hub,
            hashids: Default::default(),
            watch_permits: Arc::new(Semaphore::new(watch_settings.max_watches)),
            watch_settings,
            watch_shutdown: CancellationToken::new(),
            changes: TaskTracker::new(),
        }
    }

    /// Starts relaying changes to and from other replicas (PostgreSQL; a no-op on SQLite)
    /// until `token` is cancelled.
    pub fn start_relay(&self, token: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        crate::changes::relay::start(&self.db, &self.hub, token)
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

    /// Creates an execution of a validated template. With a request id, the tenant's
    /// earlier execution with that id is returned instead of creating a second one.
    pub async fn start(&self, caller: &Caller, new: NewExecution) -> Result<FullExecution, Error> {
        caller.may_create_for(&new.user_key)?;
        let budget = caller.budget()?;
        if let Some(request_id) = &new.request_id
            && let Some(existing) = self
                .find_by_request_id(&new.user_key, request_id, budget)
                .await?
        {
            return Ok(existing);
        }
        let this = self.clone();
        self.in_own_task(
            move |caller_gone| async move { this.create(new, budget, caller_gone).await },
        )
        .await
    }

    async fn create(
        &self,
        new: NewExecution,
        budget: Option<Duration>,
        caller_gone: CancellationToken,
    ) -> Result<FullExecution, Error> {
        let (user_key, request_id) = (new.user_key.clone(), new.request_id.clone());
        let (guard, txn) = tokio::select! {
            () = caller_gone.cancelled() => return Err(Error::DeadlineExceeded),
            began = self.db.begin_write(budget) => began?,
        };
        let prepared = tokio::select! {
            () = caller_gone.cancelled() => Err(Error::DeadlineExceeded),
            prepared = async {
                let now = db::creation_time(&txn, to_stored_precision(Utc::now())).await?;
                let execution = rules::create(new, ExecutionId::generate(), now);
                let seq = db::insert_execution(&txn, &execution, request_id.clone()).await?;
                Ok((execution, seq))
            } => prepared,
        };
        let (mut execution, seq) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => return Err(abandon(txn, guard, err).await),
        };
        let _guard = guard;
        match seq {
            Some(seq) => {
                execution.header.seq = seq;
                self.commit(txn, &execution).await?;
                self.hub.publish(&execution);
                tracing::info!(execution = %execution.header.id, seq, "execution started");
                Ok(execution)
            }
            None => {
                // A concurrent call with the same request id won the race: return its
                // execution.
                txn.rollback().await?;
                let request_id = request_id.unwrap_or_default();
                self.find_by_request_id(&user_key, &request_id, None)
                    .await?
                    .ok_or_else(|| Error::internal("request id collided with no execution"))
            }
        }
    }

    async fn find_by_request_id(
        &self,
        user_key: &str,
        request_id: &str,
        budget: Option<Duration>,
    ) -> Result<Option<FullExecution>, Error> {
        let txn = self.db.begin_read(budget).await?;
        let found = db::find_by_request_id(&txn, user_key, request_id).await?;
        txn.commit().await?;
        Ok(found)
    }

    /// Applies an action's progress report.
    pub async fn update_action(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        update: ActionUpdate,
    ) -> Result<FullExecution, Error> {
        self.change(caller, target, move |execution, now| {
            rules::apply_update(execution, &update, now)
        })
        .await
    }

    /// Stops an execution (a no-op on a stopped one).
    pub async fn stop(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        reason: String,
    ) -> Result<FullExecution, Error> {
        self.change(caller, target, move |execution, now| {
            rules::stop(execution, &reason, now)
        })
        .await
    }

    /// Reads one execution; FULL reads see one snapshot of its row and action rows.
    pub async fn get(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        view: View,
    ) -> Result<Execution, Error> {
        let (tenant, budget) = (caller.tenant.as_deref(), caller.budget()?);
        let found = if view == View::Basic && budget.is_none() {
            // One statement needs no transaction.
            db::load(self.db.conn(), target, tenant, view).await?
        } else {
            // FULL: the row and its actions in one snapshot. With a deadline, the
            // transaction carries its time budget to the database.
            let txn = self.db.begin_read(budget).await?;
            let found = db::load(&txn, target, tenant, view).await?;
            txn.commit().await?;
            found
        };
        found.ok_or_else(|| self.not_found(target))
    }

    /// Reads one page of executions (in one snapshot). A caller confined to a tenant gets
    /// that tenant's executions only, whatever its filter says.
    pub async fn list(&self, caller: &Caller, mut request: ListRequest) -> Result<Page, Error> {
        if let Some(tenant) = &caller.tenant {
            request.filter.user_key = Some(tenant.clone());
        }
        let fingerprint = page_token::fingerprint(&request.filter, request.order);
        let after = page_token::decode(&request.page_token, fingerprint)?;
        let query = ListQuery {
            filter: request.filter,
            order: request.order,
            after,
            // One more than the page: its presence says whether a next page exists.
            limit: request.page_size + 1,
            view: request.view,
        };
        let budget = caller.budget()?;
        let mut executions = if query.view == View::Basic && budget.is_none() {
            db::list(self.db.conn(), &query).await?
        } else {
            // As for `get`: one snapshot, and the deadline's budget in the database.
            let txn = self.db.begin_read(budget).await?;
            let page = db::list(&txn, &query).await?;
            txn.commit().await?;
            page
        };
        let more = executions.len() as u64 > request.page_size;
        executions.truncate(request.page_size as usize);
        let next_page_token = match executions.last() {
            Some(last) if more => page_token::encode(Cursor::of(&last.header), fingerprint),
            _ => String::new(),
        };
        Ok(Page {
            executions,
            next_page_token,
        })
    }

    /// The one place where changes are committed. Locks the execution, lets `apply` change
    /// it, saves the change guarded by the revision it started from, commits, then
    /// publishes. A no-op (`Outcome::Unchanged`) writes nothing and keeps the revision.
    /// An execution the caller may not see is answered as not found, and left alone.
    async fn change<F>(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        apply: F,
    ) -> Result<FullExecution, Error>
    where
        F: FnOnce(&mut FullExecution, chrono::DateTime<Utc>) -> Result<Outcome, RuleViolation>
            + Send
            + 'static,
    {
        let budget = caller.budget()?;
        let (this, tenant) = (self.clone(), caller.tenant.clone());
        self.in_own_task(move |caller_gone| async move {
            let (guard, txn) = tokio::select! {
                () = caller_gone.cancelled() => return Err(Error::DeadlineExceeded),
                began = this.db.begin_write(budget) => began?,
            };
            let prepared = tokio::select! {
                () = caller_gone.cancelled() => Err(Error::DeadlineExceeded),
                prepared = async {
                    let mut execution = db::load_for_change(&txn, target, tenant.as_deref())
                        .await?
                        .ok_or_else(|| this.not_found(target))?;
                    let now = to_stored_precision(Utc::now());
                    let outcome = apply(&mut execution, now)?;
                    if let Outcome::Changed { actions } = &outcome {
                        db::save_change(&txn, &execution, actions).await?;
                    }
                    Ok((execution, outcome))
                } => prepared,
            };
            let (execution, outcome) = match prepared {
                Ok(prepared) => prepared,
                Err(err) => return Err(abandon(txn, guard, err).await),
            };
            let _guard = guard;
            match outcome {
                Outcome::Unchanged => txn.rollback().await?,
                Outcome::Changed { .. } => {
                    this.commit(txn, &execution).await?;
                    this.hub.publish(&execution);
                }
            }
            Ok(execution)
        })
        .await
    }

    /// Commits a change. A commit that fails may still have landed (the connection broke
    /// after COMMIT was sent): the execution is then read again, and if it is at the
    /// change's revision, the commit did land and counts as done, so that it is
    /// published like any other. Otherwise the error stands and nothing changed.
    async fn commit(
        &self,
        txn: DatabaseTransaction,
        execution: &FullExecution,
    ) -> Result<(), Error> {
        let Err(failed) = txn.commit().await else {
            return Ok(());
        };
        let target = ExecutionRef::Id(execution.header.id);
        match db::load(self.db.conn(), target, None, View::Basic).await {
            Ok(Some(stored)) if stored.header.revision == execution.header.revision => {
                tracing::warn!(execution = %execution.header.id, error = %failed, "commit reported a failure but landed");
                Ok(())
            }
            _ => Err(failed.into()),
        }
    }

    /// Runs a change in a task of its own and waits for it.
    ///
    /// The task gets a token that is cancelled when the caller goes away (a cancelled
    /// call, a passed deadline: the caller's future is dropped). Until the change reaches
    /// its commit, it abandons its work on that signal (the transaction rolls back). From
    /// the commit on it ignores it: a commit that may have landed must be published too,
    /// or watchers would never hear of it, and a dropped future could stop between the
    /// two. The tasks are tracked so that shutdown can wait for them
    /// ([`Executions::finish_changes`]) before it stops relaying changes to other replicas.
    async fn in_own_task<T, F, Fut>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let caller_gone = CancellationToken::new();
        let _cancel_when_dropped = caller_gone.clone().drop_guard();
        self.changes
            .spawn(work(caller_gone))
            .await
            .map_err(Error::internal)?
    }

    /// Waits for every change in flight to commit (or roll back) and publish.
    pub async fn finish_changes(&self) {
        self.changes.close();
        self.changes.wait().await;
    }

    fn not_found(&self, target: ExecutionRef) -> Error {
        Error::ExecutionNotFound(match target {
            ExecutionRef::Id(id) => id.to_string(),
            ExecutionRef::Seq(seq) => self.hashids.encode(seq),
        })
    }
}

/// Rolls back a write transaction that will not commit, then lets the next writer in:
/// releasing the writer's turn first would let it queue behind this transaction inside
/// SQLite (where it waits out the busy timeout) instead of on the turn.
async fn abandon(txn: DatabaseTransaction, turn: db::WriteGuard<'_>, err: Error) -> Error {
    if let Err(rollback) = txn.rollback().await {
        tracing::warn!(error = %rollback, "rollback of an abandoned change failed");
    }
    drop(turn);
    err
}
