//! Fleet control: what StopExecutions (the seed's stop event) asks for, and the record of
//! a job that stops many executions in batches.

use std::collections::BTreeMap;

/// Most executions one transaction of a StopExecutions job stops: bounded, so that no
/// transaction holds thousands of rows and other writers keep going between batches.
pub const STOP_BATCH: u64 = 100;
/// Most executions a StopExecutions answer lists.
pub const MAX_LISTED_STOPPED: u64 = 10_000;

/// Which executions a StopExecutions call stops: the RUNNING ones of `user_key` that
/// listen to `stop_event` and whose execution_data matches every entry of `filters`.
#[derive(Clone, Debug, PartialEq)]
pub struct StopScope {
    /// The tenant.
    pub user_key: String,
    /// The stop event.
    pub stop_event: String,
    /// Top-level keys of execution_data that must have these values.
    pub filters: BTreeMap<String, serde_json::Value>,
}

/// A StopExecutions call, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct StopRequest {
    /// What to stop; an empty `user_key` means the caller's tenant (or the default).
    pub scope: StopScope,
    /// The stop reason each execution gets.
    pub reason: String,
    /// Idempotency key of the job, if any.
    pub request_id: Option<String>,
    /// Change nothing; answer what would be stopped.
    pub dry_run: bool,
}

/// Progress of a job with a request id, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StopJob {
    /// What it stops.
    pub scope: StopScope,
    /// The stop reason.
    pub reason: String,
    /// Its request id.
    pub request_id: String,
    /// The last execution (by sequence number) it went past.
    pub after_seq: i64,
    /// Executions it found matching.
    pub matched: i64,
    /// Executions it stopped.
    pub stopped: i64,
    /// True once it went past the last match.
    pub finished: bool,
}

impl StopJob {
    /// True when `request` asks for the same job (same scope and reason).
    pub fn same_as(&self, request: &StopRequest) -> bool {
        self.scope == request.scope && self.reason == request.reason
    }
}

/// One execution a job stopped (or a dry run would stop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedExecution {
    /// Its id.
    pub id: super::ExecutionId,
    /// Its sequence number (the hashid encodes it).
    pub seq: i64,
    /// Revision at which it was stopped (dry run: its current revision).
    pub revision: i64,
    /// When it was created: with `seq`, its place among the oldest (List's order).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl StoppedExecution {
    /// Its place in List's `created_at asc` order.
    pub fn age_order(&self) -> (chrono::DateTime<chrono::Utc>, i64) {
        (self.created_at, self.seq)
    }
}

/// What a StopExecutions call answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopResult {
    /// Executions found matching.
    pub matched: i64,
    /// Executions stopped.
    pub stopped: i64,
    /// The first [`MAX_LISTED_STOPPED`] of those stopped, oldest first.
    pub executions: Vec<StoppedExecution>,
    /// True when more were stopped than listed.
    pub truncated: bool,
}
