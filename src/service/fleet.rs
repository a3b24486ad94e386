//! StopExecutions as a use case: the seed's stop event, applied to every RUNNING execution
//! of a tenant that listens to it, in bounded batches, each execution stopped by the rule
//! and through the write path of StopExecution. With a request id the job is recorded, so
//! that a call that ended early can be finished by the same call again, and a finished
//! job's answer repeated.

use chrono::Utc;

use super::write::Write;
use super::{Caller, Executions};
use crate::db::{self, fleet};
use crate::domain::Provenance;
use crate::domain::fleet::{
    MAX_LISTED_STOPPED, STOP_BATCH, StopJob, StopRequest, StopResult, StopScope, StoppedExecution,
};
use crate::domain::rules::{self, Outcome};
use crate::domain::time::to_stored_precision;
use crate::error::Error;

/// How far a job got after one batch.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    /// The last execution the job went past.
    after_seq: i64,
    /// Executions found matching in this batch.
    matched: i64,
    /// True once no match is left.
    finished: bool,
}

impl Executions {
    /// Stops, by stop event, the RUNNING executions in the request's scope (see the module
    /// docs); with `dry_run`, answers what it would stop.
    pub async fn stop_many(
        &self,
        caller: &Caller,
        mut request: StopRequest,
    ) -> Result<StopResult, Error> {
        request.scope.user_key =
            caller.tenant_to_act_in(&request.scope.user_key, "stop executions")?;
        if request.dry_run {
            return self.stop_dry_run(caller, &request.scope).await;
        }
        match request.request_id.clone() {
            Some(request_id) => self.stop_job(caller, request, request_id).await,
            None => self.stop_unrecorded(caller, request).await,
        }
    }

    async fn stop_dry_run(&self, caller: &Caller, scope: &StopScope) -> Result<StopResult, Error> {
        let txn = self.db.begin_read(caller.budget()?).await?;
        let (matched, mut executions) =
            fleet::scope_now(&txn, scope, MAX_LISTED_STOPPED + 1).await?;
        txn.commit().await?;
        let truncated = executions.len() as u64 > MAX_LISTED_STOPPED;
        executions.truncate(MAX_LISTED_STOPPED as usize);
        Ok(StopResult {
            matched,
            stopped: matched,
            executions,
            truncated,
        })
    }

    /// A job without a request id: nothing recorded; the answer is gathered in memory
    /// (at most [`MAX_LISTED_STOPPED`] listed).
    async fn stop_unrecorded(
        &self,
        caller: &Caller,
        request: StopRequest,
    ) -> Result<StopResult, Error> {
        let mut result = StopResult::default();
        let mut after_seq = 0;
        loop {
            let (stopped, progress) = self.stop_batch(caller, &request, None, after_seq).await?;
            result.matched += progress.matched;
            result.stopped += stopped.len() as i64;
            for execution in stopped {
                if (result.executions.len() as u64) < MAX_LISTED_STOPPED {
                    result.executions.push(execution);
                } else {
                    result.truncated = true;
                }
            }
            if progress.finished {
                return Ok(result);
            }
            after_seq = progress.after_seq;
        }
    }

    /// A job with a request id: recorded on its first call, then advanced batch by batch
    /// (each batch takes the job's row lock, so concurrent calls with the same request id
    /// take turns and never count an execution twice); the answer comes from the record
    /// and the history.
    async fn stop_job(
        &self,
        caller: &Caller,
        request: StopRequest,
        request_id: String,
    ) -> Result<StopResult, Error> {
        let scope = &request.scope;
        let job = self.find_job(caller, scope, &request_id).await?;
        let job = match job {
            Some(job) => job,
            None => {
                let job = StopJob {
                    scope: scope.clone(),
                    reason: request.reason.clone(),
                    request_id: request_id.clone(),
                    after_seq: 0,
                    matched: 0,
                    stopped: 0,
                    finished: false,
                };
                self.record_job(caller, job.clone()).await?;
                // A concurrent first call may have recorded its own: read what won.
                self.find_job(caller, scope, &request_id)
                    .await?
                    .ok_or_else(|| Error::internal("a recorded stop job is missing"))?
            }
        };
        if !job.same_as(&request) {
            return Err(Error::invalid(
                "request_id",
                "REQUEST_ID_REUSED",
                "request_id was used with another stop_event, filters or reason; use a new request_id",
            ));
        }
        let mut finished = job.finished;
        while !finished {
            let (_, progress) = self
                .stop_batch(caller, &request, Some(&request_id), 0)
                .await?;
            finished = progress.finished;
        }
        let txn = self.db.begin_read(caller.budget()?).await?;
        let job = fleet::find_job(&txn, &scope.user_key, &request_id, false)
            .await?
            .ok_or_else(|| Error::internal("a recorded stop job is missing"))?;
        let mut executions =
            fleet::stopped_by_job(&txn, &scope.user_key, &request_id, MAX_LISTED_STOPPED + 1)
                .await?;
        txn.commit().await?;
        let truncated = executions.len() as u64 > MAX_LISTED_STOPPED;
        executions.truncate(MAX_LISTED_STOPPED as usize);
        Ok(StopResult {
            matched: job.matched,
            stopped: job.stopped,
            executions,
            truncated,
        })
    }

    async fn find_job(
        &self,
        caller: &Caller,
        scope: &StopScope,
        request_id: &str,
    ) -> Result<Option<StopJob>, Error> {
        let txn = self.db.begin_read(caller.budget()?).await?;
        let job = fleet::find_job(&txn, &scope.user_key, request_id, false).await?;
        txn.commit().await?;
        Ok(job)
    }

    async fn record_job(&self, caller: &Caller, job: StopJob) -> Result<(), Error> {
        self.write(
            caller.budget()?,
            Box::new(move |txn| {
                Box::pin(async move {
                    fleet::insert_job(txn, &job, Utc::now()).await?;
                    Ok(Write::Commit {
                        changed: Vec::new(),
                        answer: (),
                    })
                })
            }),
        )
        .await?;
        Ok(())
    }

    /// Stops one batch: the next [`STOP_BATCH`] matching executions after the job's
    /// position (the recorded one for a job with `request_id`, else `after_seq`), each
    /// locked, stopped by [`rules::stop`] and saved with its events, in one transaction
    /// that also records the job's progress. An execution that finished since it was
    /// found is left alone: matched, not stopped.
    async fn stop_batch(
        &self,
        caller: &Caller,
        request: &StopRequest,
        request_id: Option<&str>,
        after_seq: i64,
    ) -> Result<(Vec<StoppedExecution>, Progress), Error> {
        let (scope, reason) = (request.scope.clone(), request.reason.clone());
        let request_id = request_id.map(str::to_owned);
        let by = Provenance {
            actor: caller.actor.clone(),
            request_id: request_id.clone(),
        };
        let (changed, progress) = self
            .write(
                caller.budget()?,
                Box::new(move |txn| {
                    Box::pin(async move {
                        let mut job = match &request_id {
                            Some(id) => Some(
                                fleet::find_job(txn, &scope.user_key, id, true)
                                    .await?
                                    .ok_or_else(|| {
                                        Error::internal("a recorded stop job is missing")
                                    })?,
                            ),
                            None => None,
                        };
                        if job.as_ref().is_some_and(|job| job.finished) {
                            let progress = Progress {
                                finished: true,
                                ..Progress::default()
                            };
                            return Ok(Write::RollBack(progress));
                        }
                        let after = job.as_ref().map_or(after_seq, |job| job.after_seq);
                        let seqs = fleet::stop_candidates(txn, &scope, after, STOP_BATCH).await?;
                        let now = to_stored_precision(Utc::now());
                        let mut changed = Vec::new();
                        for mut execution in fleet::load_many_for_change(txn, &seqs).await? {
                            // Stopped or finished since it was found: not this job's.
                            if let Ok(Outcome::Changed { actions, events }) =
                                rules::stop(&mut execution, &reason, now)
                            {
                                db::save_change(txn, &execution, &actions).await?;
                                db::insert_events(txn, execution.header.seq, &events, &by).await?;
                                changed.push(execution);
                            }
                        }
                        let progress = Progress {
                            after_seq: seqs.last().copied().unwrap_or(after),
                            matched: seqs.len() as i64,
                            finished: (seqs.len() as u64) < STOP_BATCH,
                        };
                        if let Some(job) = &mut job {
                            job.after_seq = progress.after_seq;
                            job.matched += progress.matched;
                            job.stopped += changed.len() as i64;
                            job.finished = progress.finished;
                            fleet::save_job(txn, job, now).await?;
                        }
                        Ok(Write::Commit {
                            changed,
                            answer: progress,
                        })
                    })
                }),
            )
            .await?;
        let stopped = changed
            .iter()
            .map(|e| StoppedExecution {
                id: e.header.id,
                seq: e.header.seq,
                revision: e.header.revision,
            })
            .collect();
        Ok((stopped, progress))
    }
}
