//! The moves of the state machine: creating an execution, reporting an action's progress,
//! and stopping. Pure functions over [`FullExecution`]; the caller supplies the clock and
//! persists what they report as changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::execution::{
    ActionState, Counts, Detail, FullExecution, Header, derive_status, is_ready,
};
use super::ids::ExecutionId;
use super::status::{ActionStatus, ExecutionStatus};
use super::template::{Graph, Template};

/// What a caller asks to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExecution {
    /// Key of the workflow.
    pub key: String,
    /// Name of the execution.
    pub name: String,
    /// Template to run; must have passed [`Template::validate`].
    pub template: Template,
    /// Data context, if any.
    pub execution_data: Option<serde_json::Value>,
    /// Owning tenant; empty when the request named none, until the service fills in the
    /// caller's (`crate::service::Caller::tenant_for_new`).
    pub user_key: String,
    /// Idempotency key, if any.
    pub request_id: Option<String>,
}

/// A progress report for one action.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionUpdate {
    /// Node id of the action.
    pub node_id: String,
    /// Status the action moves to.
    pub status: ActionStatus,
    /// When the engine scheduled it (with `Scheduled` only).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// What went wrong (with `Failed` only).
    pub failure_note: Option<String>,
    /// Apply only at this revision, when set.
    pub expected_revision: Option<i64>,
}

/// Why a move is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// The node id is not an action of the execution.
    #[error("execution has no action {node_id:?}")]
    ActionNotFound {
        /// The node id asked for.
        node_id: String,
    },
    /// The execution was stopped; it accepts no more reports.
    #[error("execution is stopped")]
    ExecutionStopped,
    /// The execution is COMPLETED or FAILED.
    #[error("execution already finished with status {status}")]
    ExecutionFinished {
        /// Its terminal status.
        status: ExecutionStatus,
    },
    /// The caller's expected revision is not the current one.
    #[error("expected revision {expected}, current revision is {current}")]
    RevisionMismatch {
        /// What the caller expected.
        expected: i64,
        /// What the execution has.
        current: i64,
    },
    /// The state machine has no such move.
    #[error("action {node_id:?} cannot move from {from} to {to}")]
    InvalidTransition {
        /// The action.
        node_id: String,
        /// Its current status.
        from: ActionStatus,
        /// The status asked for.
        to: ActionStatus,
    },
    /// No incoming edge of the action is open yet.
    #[error("action {node_id:?} is not ready: no incoming edge is open")]
    ActionNotReady {
        /// The action.
        node_id: String,
    },
}

/// What a move did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed; the revision did not move.
    Unchanged,
    /// The execution changed; these actions have a new state.
    Changed {
        /// Node ids of the actions whose state changed.
        actions: Vec<String>,
    },
}

/// True when the state machine allows an action to move from `from` to `to`:
/// IDLE -> SCHEDULED, IDLE|SCHEDULED -> RUNNING, RUNNING -> COMPLETED, and any
/// non-terminal status -> FAILED. STOPPED is reached only through [`stop`].
pub fn transition_allowed(from: ActionStatus, to: ActionStatus) -> bool {
    use ActionStatus::*;
    match (from, to) {
        (Idle, Scheduled) | (Idle | Scheduled, Running) | (Running, Completed) => true,
        (from, Failed) => !from.is_terminal(),
        _ => false,
    }
}

/// Builds a new execution at revision 1: every action IDLE, status derived (RUNNING for
/// any valid template, since an action whose only incoming edges come from Start, or that
/// has none, is ready).
pub fn create(new: NewExecution, id: ExecutionId, now: DateTime<Utc>) -> FullExecution {
    let actions: BTreeMap<String, ActionState> = new
        .template
        .action_ids()
        .map(|id| (id.to_owned(), ActionState::default()))
        .collect();
    let status = derive_status(&Graph::new(&new.template), &actions, false);
    FullExecution {
        header: Header {
            id,
            seq: 0,
            user_key: new.user_key,
            key: new.key,
            name: new.name,
            status,
            stop_reason: None,
            revision: 1,
            counts: Counts::tally(actions.values()),
            created_at: now,
            updated_at: now,
        },
        detail: Detail {
            template: new.template,
            execution_data: new.execution_data,
            actions,
        },
    }
}

/// Applies a progress report. Checks, in order: the execution is not stopped (after a stop
/// every report is refused); the action exists; the expected revision (if any) is current; a report of the status the action
/// already has is a no-op; the execution is not finished; the move is allowed; the action
/// is ready (for SCHEDULED and RUNNING). Then sets the action's status and timestamp and
/// re-derives counts, status and revision.
pub fn apply_update(
    execution: &mut FullExecution,
    update: &ActionUpdate,
    now: DateTime<Utc>,
) -> Result<Outcome, RuleViolation> {
    let FullExecution { header, detail } = execution;
    if header.status == ExecutionStatus::Stopped {
        return Err(RuleViolation::ExecutionStopped);
    }
    let current = detail
        .actions
        .get(&update.node_id)
        .ok_or_else(|| RuleViolation::ActionNotFound {
            node_id: update.node_id.clone(),
        })?
        .status;
    if let Some(expected) = update.expected_revision
        && expected != header.revision
    {
        return Err(RuleViolation::RevisionMismatch {
            expected,
            current: header.revision,
        });
    }
    if current == update.status {
        return Ok(Outcome::Unchanged);
    }
    if header.status.is_terminal() {
        return Err(RuleViolation::ExecutionFinished {
            status: header.status,
        });
    }
    if !transition_allowed(current, update.status) {
        return Err(RuleViolation::InvalidTransition {
            node_id: update.node_id.clone(),
            from: current,
            to: update.status,
        });
    }
    let graph = Graph::new(&detail.template);
    if update.status.is_active() && !is_ready(&graph, &detail.actions, &update.node_id) {
        return Err(RuleViolation::ActionNotReady {
            node_id: update.node_id.clone(),
        });
    }

    let Some(action) = detail.actions.get_mut(&update.node_id) else {
        return Err(RuleViolation::ActionNotFound {
            node_id: update.node_id.clone(),
        });
    };
    action.status = update.status;
    match update.status {
        ActionStatus::Scheduled => action.scheduled_at = update.scheduled_at,
        ActionStatus::Running => action.started_at = Some(now),
        ActionStatus::Completed => action.completed_at = Some(now),
        ActionStatus::Failed => {
            action.failed_at = Some(now);
            action.failure_note = update.failure_note.clone();
        }
        ActionStatus::Idle | ActionStatus::Stopped => {}
    }
    header.status = derive_status(&graph, &detail.actions, false);
    finish_change(header, detail, now);
    Ok(Outcome::Changed {
        actions: vec![update.node_id.clone()],
    })
}

/// Stops an execution: every IDLE, SCHEDULED or RUNNING action becomes STOPPED at `now`,
/// the execution becomes STOPPED with `reason`. Stopping a stopped execution is a no-op;
/// stopping a COMPLETED or FAILED one is refused.
pub fn stop(
    execution: &mut FullExecution,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, RuleViolation> {
    let FullExecution { header, detail } = execution;
    match header.status {
        ExecutionStatus::Stopped => return Ok(Outcome::Unchanged),
        ExecutionStatus::Completed | ExecutionStatus::Failed => {
            return Err(RuleViolation::ExecutionFinished {
                status: header.status,
            });
        }
        ExecutionStatus::Running => {}
    }
    let mut stopped = Vec::new();
    for (id, action) in detail.actions.iter_mut() {
        if !action.status.is_terminal() {
            action.status = ActionStatus::Stopped;
            action.stopped_at = Some(now);
            stopped.push(id.clone());
        }
    }
    header.status = ExecutionStatus::Stopped;
    header.stop_reason = Some(reason.to_owned());
    finish_change(header, detail, now);
    Ok(Outcome::Changed { actions: stopped })
}

/// The bookkeeping every change shares: recount, bump the revision by one, stamp the time.
fn finish_change(header: &mut Header, detail: &Detail, now: DateTime<Utc>) {
    header.counts = Counts::tally(detail.actions.values());
    header.revision += 1;
    header.updated_at = now;
}

#[cfg(test)]
mod tests;
