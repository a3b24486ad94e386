//! The write path: every change of the stored state (a new execution, an action's
//! progress, a stop) runs through [`Executions::write`], which commits it and only then
//! publishes it to the change hub, so watchers never see a change that could still roll
//! back, and never miss one that landed. One exception keeps the same promises: a start
//! on PostgreSQL is a single statement that commits by itself, published once it has
//! (`Executions::start`, in `start.rs`).

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use tokio_util::sync::CancellationToken;

use super::Executions;
use crate::db;
use crate::domain::{ExecutionRef, FullExecution, View};
use crate::error::{Error, OrInternal};

/// What a write's work decided, inside its transaction, with what it answers (`A`).
pub(super) enum Write<A> {
    /// New states were saved: commit them, then publish each.
    Commit {
        /// The executions changed, at their new revisions.
        changed: Vec<FullExecution>,
        /// What the work answers besides.
        answer: A,
    },
    /// Nothing to write (a no-op report, a stop of a stopped execution, a concurrent
    /// call that did the work): roll back.
    RollBack(A),
}

/// The work of one write: reads and saves through the transaction it is given, and
/// decides what happens to it.
pub(super) type WriteWork<A> = Box<
    dyn for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Write<A>, Error>> + Send,
>;

impl Executions {
    /// Runs one write, in a task of its own, and waits for it: waits for this replica's
    /// turn to write, opens a transaction (with the caller's time `budget` on
    /// PostgreSQL), lets `work` read and save through it, then commits and publishes
    /// ([`Write::Commit`]), or rolls back. Answers the executions committed (none after a
    /// roll-back) and what the work answered.
    ///
    /// Why a task of its own: the task gets a token that is cancelled when the caller
    /// goes away (a cancelled call, a passed deadline: the caller's future is dropped).
    /// Until the write reaches its commit, it abandons its work on that signal (the
    /// transaction rolls back). From the commit on it ignores it: a commit that may have
    /// landed must be published too, or watchers would never hear of it, and a dropped
    /// future could stop between the two. The tasks are tracked so that shutdown can wait
    /// for them ([`Executions::finish_changes`]) before it stops relaying changes to other
    /// replicas.
    pub(super) async fn write<A: Send + 'static>(
        &self,
        budget: Option<Duration>,
        work: WriteWork<A>,
    ) -> Result<(Vec<FullExecution>, A), Error> {
        self.in_change_task(move |this, caller_gone| async move {
            this.write_in_task(budget, caller_gone, work).await
        })
        .await
    }

    /// Runs a change's `task` in a task of its own, tracked for shutdown, and waits for
    /// it. The task gets this service and a token cancelled when the caller goes away
    /// (this future is dropped); see [`Executions::write`] for why.
    pub(super) async fn in_change_task<T, F>(
        &self,
        task: impl FnOnce(Executions, CancellationToken) -> F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let caller_gone = CancellationToken::new();
        let _cancel_when_dropped = caller_gone.clone().drop_guard();
        self.changes
            .spawn(task(self.clone(), caller_gone))
            .await
            .or_internal()?
    }

    async fn write_in_task<A>(
        &self,
        budget: Option<Duration>,
        caller_gone: CancellationToken,
        work: WriteWork<A>,
    ) -> Result<(Vec<FullExecution>, A), Error> {
        let (turn, txn) = tokio::select! {
            () = caller_gone.cancelled() => return Err(Error::DeadlineExceeded),
            began = self.db.begin_write(budget) => began?,
        };
        let decided = tokio::select! {
            () = caller_gone.cancelled() => Err(Error::DeadlineExceeded),
            decided = work(&txn) => decided,
        };
        let decided = match decided {
            Ok(decided) => decided,
            Err(err) => return Err(abandon(txn, turn, err).await),
        };
        // The turn is held until the transaction ends, whichever way.
        let _turn = turn;
        match decided {
            Write::Commit { changed, answer } => {
                self.commit(txn, &changed).await?;
                for execution in &changed {
                    self.hub.publish(execution);
                }
                Ok((changed, answer))
            }
            Write::RollBack(answer) => {
                txn.rollback().await?;
                Ok((Vec::new(), answer))
            }
        }
    }

    /// Commits a change. A commit that fails may still have landed (the connection broke
    /// after COMMIT was sent): a changed execution is then read again, and if it is at
    /// the change's revision, the commit did land and counts as done, so that it is
    /// published like any other. Otherwise the error stands and nothing changed.
    async fn commit(
        &self,
        txn: DatabaseTransaction,
        changed: &[FullExecution],
    ) -> Result<(), Error> {
        let Err(failed) = txn.commit().await else {
            return Ok(());
        };
        // One transaction: if one of its changes landed, all did.
        let Some(execution) = changed.first() else {
            return Err(failed.into());
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

    /// Waits for every write in flight to commit (or roll back) and publish.
    pub async fn finish_changes(&self) {
        self.changes.close();
        self.changes.wait().await;
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
