//! StopExecutions as a use case: the seed's stop event, applied to every RUNNING execution
//! of a tenant that listens to it, in bounded batches, each execution stopped by the rule
//! and through the write path of StopExecution. With a request id the job is recorded, so
//! that a call that ended early can be finished by the same call again, and a finished
//! job's answer repeated.
//!
//! On PostgreSQL a job runs its batches in several lanes at once ([`stop_lanes`];
//! listeners split by `seq` modulo the lanes), so its work spreads over several backends
//! and cores as the work of many callers would. A batch takes one of the replica's
//! turns for stop batches first (as many as a job's lanes), so jobs running at once
//! share them and never hold more than half of the connection pool. Lanes never stop an
//! execution twice: each batch locks its executions and stops only those still RUNNING,
//! so a batch that overlaps another (a resumed job, a second call with the same request
//! id) finds them STOPPED and leaves them, uncounted. The recorded position of a job is
//! the lowest of its lanes', so a resumed job redoes at most what was in flight.

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
use crate::error::{Error, OrInternal};

/// Most lanes of a job on PostgreSQL. More than one per core: a lane mostly waits (a
/// round trip to the database between statements, the commit's flush), and the others
/// fill the wait. Measured on two cores: 3.19 s with 4 lanes, 2.11 s with 8 for 10,000
/// executions (BENCHMARKS.md, "Batches as columns").
const MAX_POSTGRES_LANES: u32 = 8;

/// Lanes of a job, which are also the replica's turns for stop batches: on PostgreSQL,
/// half the connection pool, at most [`MAX_POSTGRES_LANES`]; on SQLite one (it has one
/// writer: more lanes would only queue).
pub(super) fn stop_lanes(db: &db::Database) -> usize {
    if db.is_postgres() {
        (db.max_connections() / 2).clamp(1, MAX_POSTGRES_LANES) as usize
    } else {
        1
    }
}

/// How far one lane of a job got after one batch.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    /// The last listener the lane went past.
    after_seq: i64,
    /// Executions of the batch that were RUNNING, or finished first, when locked.
    matched: i64,
    /// True once the lane has no listener left (or the job was finished already).
    finished: bool,
}

/// One lane of a job: listeners whose `seq` modulo `of` is `index`.
#[derive(Clone, Copy, Debug)]
struct Lane {
    index: i64,
    of: i64,
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
        /// What the lanes gathered: counts, and the oldest stopped executions (lanes
        /// finish batches in any order, so the listed ones are kept in List's order).
        #[derive(Default)]
        struct Gathered {
            matched: i64,
            stopped: i64,
            oldest:
                std::collections::BTreeMap<(chrono::DateTime<chrono::Utc>, i64), StoppedExecution>,
            truncated: bool,
        }
        let gathered = std::sync::Mutex::new(Gathered::default());
        self.run_lanes(caller, &request, None, 0, |stopped, progress| {
            let mut gathered = lock(&gathered);
            gathered.matched += progress.matched;
            gathered.stopped += stopped.len() as i64;
            for execution in stopped {
                gathered.oldest.insert(execution.age_order(), execution);
                if gathered.oldest.len() as u64 > MAX_LISTED_STOPPED {
                    gathered.oldest.pop_last();
                    gathered.truncated = true;
                }
            }
        })
        .await?;
        let gathered = gathered
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(StopResult {
            matched: gathered.matched,
            stopped: gathered.stopped,
            executions: gathered.oldest.into_values().collect(),
            truncated: gathered.truncated,
        })
    }

    /// Runs every lane of a job from `after_seq` until each has no listener left,
    /// reporting each batch to `record`.
    async fn run_lanes(
        &self,
        caller: &Caller,
        request: &StopRequest,
        request_id: Option<&str>,
        after_seq: i64,
        record: impl Fn(Vec<StoppedExecution>, Progress),
    ) -> Result<(), Error> {
        let lanes = stop_lanes(&self.db) as i64;
        // Each lane's position; the job records the lowest.
        let positions = std::sync::Mutex::new(vec![after_seq; lanes as usize]);
        let lane_work = (0..lanes).map(|index| {
            let (positions, record) = (&positions, &record);
            async move {
                let lane = Lane { index, of: lanes };
                let mut after = after_seq;
                loop {
                    let turn = self.stop_turns.acquire().await.or_internal()?;
                    let low = lock(positions).iter().copied().min().unwrap_or(after_seq);
                    let (stopped, progress) = self
                        .stop_batch(caller, request, request_id, lane, after, low)
                        .await?;
                    drop(turn);
                    record(stopped, progress);
                    if progress.finished {
                        return Ok::<_, Error>(());
                    }
                    after = progress.after_seq;
                    lock(positions)[index as usize] = after;
                }
            }
        });
        futures::future::try_join_all(lane_work).await?;
        Ok(())
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
        if !job.finished {
            self.run_lanes(
                caller,
                &request,
                Some(&request_id),
                job.after_seq,
                |_, _| {},
            )
            .await?;
            self.finish_job(caller, job).await?;
        }
        let txn = self.db.begin_read(caller.budget()?).await?;
        let job = fleet::find_job(&txn, &scope.user_key, &request_id)
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
        let job = fleet::find_job(&txn, &scope.user_key, request_id).await?;
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

    async fn finish_job(&self, caller: &Caller, job: StopJob) -> Result<(), Error> {
        self.write(
            caller.budget()?,
            Box::new(move |txn| {
                Box::pin(async move {
                    fleet::finish_job(txn, &job.scope.user_key, &job.request_id, Utc::now())
                        .await?;
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

    /// Stops one batch of one lane: of the lane's next [`STOP_BATCH`] listeners after
    /// `after_seq`, the executions RUNNING and matching, each locked, stopped by
    /// [`rules::stop`] and saved with its events, in one transaction that also adds to
    /// the counts of the job with `request_id` (and records `low`, the lowest position of
    /// its lanes). An execution that finished (or was stopped) since it was found is
    /// left alone: one that completed or failed counts as matched, not stopped; one
    /// already stopped is not counted.
    async fn stop_batch(
        &self,
        caller: &Caller,
        request: &StopRequest,
        request_id: Option<&str>,
        lane: Lane,
        after_seq: i64,
        low: i64,
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
                        if let Some(id) = &request_id
                            && fleet::find_job(txn, &scope.user_key, id)
                                .await?
                                .is_none_or(|job| job.finished)
                        {
                            let progress = Progress {
                                finished: true,
                                ..Progress::default()
                            };
                            return Ok(Write::RollBack(progress));
                        }
                        let found = fleet::stop_candidates(
                            txn,
                            &scope,
                            after_seq,
                            (lane.of, lane.index),
                            STOP_BATCH,
                        )
                        .await?;
                        let now = to_stored_precision(Utc::now());
                        let (mut changed, mut stops, mut finished_first) =
                            (Vec::new(), Vec::new(), 0);
                        for mut execution in
                            fleet::load_many_for_change(txn, &found.matching).await?
                        {
                            match rules::stop(&mut execution, &reason, now) {
                                Ok(Outcome::Changed { actions, events }) => {
                                    stops.push((actions, events));
                                    changed.push(execution);
                                }
                                // Completed or failed since it was found.
                                Err(_) => finished_first += 1,
                                // Stopped since it was found (by another call).
                                Ok(Outcome::Unchanged) => {}
                            }
                        }
                        let saved: Vec<_> = changed
                            .iter()
                            .zip(&stops)
                            .map(|(e, (actions, _))| (e, actions.as_slice()))
                            .collect();
                        db::save_stops(txn, &saved, now).await?;
                        let events = changed
                            .iter()
                            .zip(&stops)
                            .map(|(e, (_, events))| (e.header.seq, events.as_slice()));
                        db::insert_events_of_many(txn, events, &by).await?;
                        let progress = Progress {
                            after_seq: found.last_listener,
                            matched: changed.len() as i64 + finished_first,
                            finished: (found.listeners as u64) < STOP_BATCH,
                        };
                        if let Some(id) = &request_id {
                            let counted = (progress.matched, changed.len() as i64);
                            fleet::add_to_job(txn, &scope.user_key, id, counted, low, now).await?;
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
                created_at: e.header.created_at,
            })
            .collect();
        Ok((stopped, progress))
    }
}

/// The value behind a mutex the lanes share (a lane that panicked left it whole: each
/// update is one assignment).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
