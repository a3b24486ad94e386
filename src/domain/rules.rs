//! The moves of the state machine: creating an execution, reporting an action's progress,
//! and stopping. Pure functions over [`FullExecution`]; the caller supplies the clock and
//! persists what they report as changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::execution::{
    ActionLog, ActionState, Counts, Detail, FullExecution, Header, derive_status, is_ready,
    log_bytes,
};
use super::history::{self, Event, EventKind};
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
    /// Template to run; must have passed [`Template::validate`]. Shared, as the
    /// execution's (see [`Detail::template`]).
    pub template: Arc<Template>,
    /// Data context, if any.
    pub execution_data: Option<serde_json::Value>,
    /// Owning tenant; empty when the request named none, until the service fills in the
    /// caller's (`crate::service::Caller::tenant_for_new`).
    pub user_key: String,
    /// Idempotency key, if any.
    pub request_id: Option<String>,
    /// Stop events the execution listens to.
    pub stop_events: Vec<String>,
    /// Bytes its actions' logs may take together (see [`Detail::log_budget`]).
    pub log_budget: i64,
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
    /// The action's new log, if it reports one.
    pub log: Option<ActionLog>,
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
    /// The execution's logs would take more than its log budget.
    #[error(
        "with this log, the execution's logs would take {needed} bytes, more than the {budget} its size leaves free"
    )]
    LogFull {
        /// Bytes the logs would take.
        needed: i64,
        /// Bytes they may take.
        budget: i64,
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
        /// What changed, one event per thing, at the new revision.
        events: Vec<Event>,
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
            stop_events: new.stop_events,
            log_budget: new.log_budget,
        },
    }
}

/// Applies a progress report. Checks, in order: the execution is not stopped (after a stop
/// every report is refused); the action exists; the expected revision (if any) is
/// current; a report of the status the action already has changes only its log, if it
/// brings a new one (else it is a no-op); the execution is not finished; the move is
/// allowed; the action is ready (for SCHEDULED and RUNNING); the logs fit the execution's
/// log budget. Then sets the action's status, timestamp and log and re-derives counts,
/// status and revision.
pub fn apply_update(
    execution: &mut FullExecution,
    update: &ActionUpdate,
    now: DateTime<Utc>,
) -> Result<Outcome, RuleViolation> {
    let FullExecution { header, detail } = execution;
    if header.status == ExecutionStatus::Stopped {
        return Err(RuleViolation::ExecutionStopped);
    }
    let current =
        detail
            .actions
            .get(&update.node_id)
            .ok_or_else(|| RuleViolation::ActionNotFound {
                node_id: update.node_id.clone(),
            })?;
    if let Some(expected) = update.expected_revision
        && expected != header.revision
    {
        return Err(RuleViolation::RevisionMismatch {
            expected,
            current: header.revision,
        });
    }
    let new_log = update
        .log
        .as_ref()
        .filter(|log| current.log.as_ref() != Some(*log));
    let from = current.status;
    if from == update.status && new_log.is_none() {
        return Ok(Outcome::Unchanged);
    }
    if header.status.is_terminal() {
        return Err(RuleViolation::ExecutionFinished {
            status: header.status,
        });
    }
    let moves = from != update.status;
    if moves && !transition_allowed(from, update.status) {
        return Err(RuleViolation::InvalidTransition {
            node_id: update.node_id.clone(),
            from,
            to: update.status,
        });
    }
    let graph = Graph::new(&detail.template);
    if moves && update.status.is_active() && !is_ready(&graph, &detail.actions, &update.node_id) {
        return Err(RuleViolation::ActionNotReady {
            node_id: update.node_id.clone(),
        });
    }
    if let Some(log) = new_log {
        let others = log_bytes(
            detail
                .actions
                .iter()
                .filter(|(node_id, _)| **node_id != update.node_id),
        );
        let own = ActionState {
            log: Some(log.clone()),
            ..ActionState::default()
        };
        let needed = others + log_bytes([(&update.node_id, &own)]);
        if needed > detail.log_budget {
            return Err(RuleViolation::LogFull {
                needed,
                budget: detail.log_budget,
            });
        }
    }

    let Some(action) = detail.actions.get_mut(&update.node_id) else {
        return Err(RuleViolation::ActionNotFound {
            node_id: update.node_id.clone(),
        });
    };
    let mut events = Vec::new();
    if moves {
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
        events.extend(
            EventKind::of_action(update.status)
                .map(|kind| Event::of_action(kind, &update.node_id, from, action)),
        );
    }
    if let Some(log) = new_log {
        action.log = Some(log.clone());
        events.push(Event::of_action(
            EventKind::ActionLogged,
            &update.node_id,
            from,
            action,
        ));
    }
    let status = derive_status(&graph, &detail.actions, false);
    finish_change(header, detail, status, now, &mut events);
    Ok(Outcome::Changed {
        actions: vec![update.node_id.clone()],
        events,
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
    let (mut stopped, mut events) = (Vec::new(), Vec::new());
    for (id, action) in detail.actions.iter_mut() {
        if !action.status.is_terminal() {
            let from = action.status;
            action.status = ActionStatus::Stopped;
            action.stopped_at = Some(now);
            events.push(Event::of_action(EventKind::ActionStopped, id, from, action));
            stopped.push(id.clone());
        }
    }
    header.stop_reason = Some(reason.to_owned());
    finish_change(header, detail, ExecutionStatus::Stopped, now, &mut events);
    Ok(Outcome::Changed {
        actions: stopped,
        events,
    })
}

/// The bookkeeping every change shares: set the derived `status` (with its event when it
/// changed), recount, bump the revision by one, stamp the time, and give the change's
/// events its revision and time.
fn finish_change(
    header: &mut Header,
    detail: &Detail,
    status: ExecutionStatus,
    now: DateTime<Utc>,
    events: &mut Vec<Event>,
) {
    if status != header.status {
        let note = (status == ExecutionStatus::Stopped)
            .then(|| header.stop_reason.clone())
            .flatten();
        events.extend(EventKind::of_execution(status).map(|kind| Event::of_execution(kind, note)));
    }
    header.status = status;
    header.counts = Counts::tally(detail.actions.values());
    header.revision += 1;
    header.updated_at = now;
    history::stamp(events, header.revision, now);
}

#[cfg(test)]
mod tests;
