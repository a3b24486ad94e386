//! StartExecution as a use case: create an execution, at most once per request id.

use std::time::Duration;

use chrono::Utc;

use super::write::Write;
use super::{Caller, Executions};
use crate::db;
use crate::domain::rules::{self, NewExecution};
use crate::domain::time::to_stored_precision;
use crate::domain::{ExecutionId, FullExecution, history};
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
        let (mut created, ()) = self
            .write(
                budget,
                Box::new(move |txn| {
                    Box::pin(async move {
                        // Provisional: the database takes the creation time as it
                        // writes (see `db::insert_started`).
                        let now = to_stored_precision(Utc::now());
                        let request_id = new.request_id.clone();
                        let mut execution = rules::create(new, ExecutionId::generate(), now);
                        let mut events = history::started(&execution);
                        let inserted =
                            db::insert_started(txn, &mut execution, &mut events, request_id, &by)
                                .await?;
                        Ok(if inserted {
                            Write::Commit {
                                changed: vec![execution],
                                answer: (),
                            }
                        } else {
                            // A concurrent call with the same request id won the race.
                            Write::RollBack(())
                        })
                    })
                }),
            )
            .await?;
        match created.pop() {
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
