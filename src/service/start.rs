//! StartExecution as a use case: create an execution, at most once per request id.

use std::time::Duration;

use chrono::Utc;

use super::write::Write;
use super::{Caller, Executions};
use crate::db;
use crate::domain::rules::{self, NewExecution};
use crate::domain::time::to_stored_precision;
use crate::domain::{
    Event, Execution, ExecutionId, ExecutionRef, FullExecution, Provenance, View, history,
};
use crate::error::Error;

impl Executions {
    /// Creates an execution of a validated template, in the caller's tenant unless the
    /// request names one (see [`Caller::tenant_for_new`]). With a request id, the
    /// tenant's earlier execution with that id is returned instead of creating a second
    /// one.
    pub async fn start(
        &self,
        caller: &Caller,
        mut new: NewExecution,
    ) -> Result<FullExecution, Error> {
        new.user_key = caller.tenant_for_new(&new.user_key)?;
        let budget = caller.budget()?;
        let (user_key, request_id) = (new.user_key.clone(), new.request_id.clone());
        if let Some(request_id) = &request_id
            && let Some(existing) = self
                .find_by_request_id(&user_key, request_id, budget)
                .await?
        {
            return Ok(existing);
        }
        let by = caller.provenance();
        let created = if self.db.is_postgres() {
            self.start_in_one_statement(caller, new, by).await?
        } else {
            self.start_in_transaction(budget, new, by).await?
        };
        match created {
            Some(execution) => {
                tracing::info!(execution = %execution.header.id, seq = execution.header.seq, "execution started");
                Ok(execution)
            }
            // Answer with the execution of the call that won.
            None => self
                .find_by_request_id(&user_key, request_id.as_deref().unwrap_or_default(), None)
                .await?
                .ok_or_else(|| Error::internal("request id collided with no execution")),
        }
    }

    /// SQLite: a start through the write path ([`Executions::write`]), in a write transaction:
    /// the new execution, or `None` when a concurrent call with the same request id won.
    async fn start_in_transaction(
        &self,
        budget: Option<Duration>,
        new: NewExecution,
        by: Provenance,
    ) -> Result<Option<FullExecution>, Error> {
        let (mut created, ()) = self
            .write(
                budget,
                Box::new(move |txn| {
                    Box::pin(async move {
                        let (mut execution, mut events, request_id) = provisional(new);
                        let inserted =
                            db::insert_started(txn, &mut execution, &mut events, request_id, &by)
                                .await?;
                        Ok(if inserted {
                            Write::Commit {
                                changed: vec![execution],
                                answer: (),
                            }
                        } else {
                            Write::RollBack(())
                        })
                    })
                }),
            )
            .await?;
        Ok(created.pop())
    }

    /// PostgreSQL: a start as one statement that commits by itself
    /// (`db::insert_started_alone`: one round trip, no BEGIN and COMMIT), then published;
    /// the new execution, or `None` when a concurrent call with the same request id won.
    ///
    /// It keeps the promises of every write ([`Executions::write`]), in a task of its
    /// own, tracked as theirs: while it waits for a connection it gives up when the
    /// caller goes away (a cancelled call, a passed deadline). Once it has one, it bounds
    /// the statement's lock waits by the time left before the caller's deadline and sends
    /// it; from then on it finishes, and publishes what committed, whether or not the
    /// caller still waits.
    ///
    /// A statement whose outcome is unknown (the connection broke before its answer) may
    /// have committed: the start is then looked for ([`Executions::landed`]), and if it
    /// is there it counts as done, so that an error never hides a committed start.
    async fn start_in_one_statement(
        &self,
        caller: &Caller,
        new: NewExecution,
        by: Provenance,
    ) -> Result<Option<FullExecution>, Error> {
        let caller = caller.clone();
        self.in_change_task(move |this, caller_gone| async move {
            let mut conn = tokio::select! {
                () = caller_gone.cancelled() => return Err(Error::DeadlineExceeded),
                conn = this.db.autocommit() => conn?,
            };
            let budget = caller.budget()?;
            let (mut execution, mut events, request_id) = provisional(new);
            let inserted = db::insert_started_alone(
                &mut conn,
                &mut execution,
                &mut events,
                request_id,
                &by,
                budget,
            )
            .await;
            drop(conn);
            match inserted {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(failed) if failed.may_have_committed => {
                    let Some(stored) = this.landed(&execution).await else {
                        return Err(failed.error);
                    };
                    tracing::warn!(execution = %stored.header.id, error = %failed.error, "start reported a failure but landed");
                    execution = stored;
                }
                Err(failed) => return Err(failed.error),
            }
            this.hub.publish(&execution);
            Ok(Some(execution))
        })
        .await
    }

    /// The start of `execution` as stored, if the statement that wrote it failed with an
    /// unknown outcome but committed. First waits for the creations in flight (as a List
    /// page's horizon does: every start holds the creations' lock until it commits), so
    /// that a statement the database still runs is waited for, not missed.
    async fn landed(&self, execution: &FullExecution) -> Option<FullExecution> {
        let conn = self.db.conn();
        db::horizon(conn, None).await.ok()?;
        let target = ExecutionRef::Id(execution.header.id);
        match db::load(conn, target, None, View::Full).await {
            Ok(Some(Execution {
                header,
                detail: Some(detail),
            })) => Some(FullExecution { header, detail }),
            _ => None,
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
}

/// A new execution and the events of its start, at a provisional creation time (the
/// database takes the real one as it writes; see `db::insert_started`), with its request
/// id.
fn provisional(new: NewExecution) -> (FullExecution, Vec<Event>, Option<String>) {
    let now = to_stored_precision(Utc::now());
    let request_id = new.request_id.clone();
    let execution = rules::create(new, ExecutionId::generate(), now);
    let events = history::started(&execution);
    (execution, events, request_id)
}
