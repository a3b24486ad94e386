//! UpdateAction and StopExecution as use cases: changes of one stored execution.

use chrono::Utc;

use super::write::Write;
use super::{Caller, Executions};
use crate::db;
use crate::domain::rules::{self, ActionUpdate, Outcome, RuleViolation};
use crate::domain::time::to_stored_precision;
use crate::domain::{ExecutionRef, FullExecution};
use crate::error::Error;

impl Executions {
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

    /// Changes one execution: locks it, lets `apply` (a domain rule) change it, and saves
    /// the change guarded by the revision it started from, through the one write path
    /// ([`Executions::write`]). A no-op (`Outcome::Unchanged`) writes nothing and keeps
    /// the revision. An execution the caller may not see is answered as not found, and
    /// left alone.
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
        let (this, tenant, by) = (self.clone(), caller.tenant.clone(), caller.provenance());
        let (mut changed, unchanged) = self
            .write(
                budget,
                Box::new(move |txn| {
                    Box::pin(async move {
                        let mut execution = db::load_for_change(txn, target, tenant.as_deref())
                            .await?
                            .ok_or_else(|| this.not_found(target))?;
                        let now = to_stored_precision(Utc::now());
                        Ok(match apply(&mut execution, now)? {
                            Outcome::Changed { actions, events } => {
                                db::save_change(txn, &execution, &actions).await?;
                                db::insert_events(txn, execution.header.seq, &events, &by).await?;
                                Write::Commit {
                                    changed: vec![execution],
                                    answer: None,
                                }
                            }
                            Outcome::Unchanged => Write::RollBack(Some(execution)),
                        })
                    })
                }),
            )
            .await?;
        changed
            .pop()
            .or(unchanged)
            .ok_or_else(|| Error::internal("a change decided to write nothing"))
    }
}
