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
mod tests {
    use super::*;
    use crate::domain::template::tests::diamond;
    use ActionStatus::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn new_diamond() -> FullExecution {
        create(
            NewExecution {
                key: "wf".into(),
                name: "Wf".into(),
                template: diamond(),
                execution_data: None,
                user_key: "main".into(),
                request_id: None,
            },
            ExecutionId::new(uuid::Uuid::now_v7()),
            t(0),
        )
    }

    fn report(node: &str, status: ActionStatus) -> ActionUpdate {
        ActionUpdate {
            node_id: node.into(),
            status,
            scheduled_at: (status == Scheduled).then(|| t(100)),
            failure_note: (status == Failed).then(|| "boom".into()),
            expected_revision: None,
        }
    }

    fn apply(
        e: &mut FullExecution,
        node: &str,
        status: ActionStatus,
    ) -> Result<Outcome, RuleViolation> {
        apply_update(e, &report(node, status), t(5))
    }

    /// Puts action `node` of a fresh diamond into `status` along an allowed path.
    fn diamond_with(node: &str, status: ActionStatus) -> FullExecution {
        let mut e = new_diamond();
        let path: &[ActionStatus] = match status {
            Idle => &[],
            Scheduled => &[Scheduled],
            Running => &[Running],
            Completed => &[Running, Completed],
            Failed => &[Failed],
            Stopped => {
                stop(&mut e, "test", t(1)).unwrap();
                return e;
            }
        };
        for step in path {
            apply(&mut e, node, *step).unwrap();
        }
        e
    }

    #[test]
    fn a_new_execution_is_running_at_revision_one_with_every_action_idle() {
        let e = new_diamond();
        assert_eq!(e.header.revision, 1);
        assert_eq!(e.header.status, ExecutionStatus::Running);
        assert_eq!(e.header.counts.idle, 3);
        assert_eq!(e.header.counts.total(), 3);
        assert!(e.detail.actions.values().all(|a| a.status == Idle));
    }

    #[test]
    fn every_move_is_allowed_or_refused_as_the_table_says() {
        let allowed = [
            (Idle, Scheduled),
            (Idle, Running),
            (Scheduled, Running),
            (Running, Completed),
            (Idle, Failed),
            (Scheduled, Failed),
            (Running, Failed),
        ];
        for from in ActionStatus::ALL {
            for to in ActionStatus::ALL {
                assert_eq!(
                    transition_allowed(from, to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn every_refused_move_changes_nothing() {
        for from in [Idle, Scheduled, Running, Completed, Failed] {
            for to in [Idle, Scheduled, Running, Completed, Failed, Stopped] {
                if from == to || transition_allowed(from, to) {
                    continue;
                }
                let mut e = diamond_with("a", from);
                let before = e.clone();
                let err = apply(&mut e, "a", to).unwrap_err();
                // Moving "a" to FAILED finishes nothing (b can still run), so every refusal
                // here is the transition itself, not a finished execution.
                assert!(
                    matches!(err, RuleViolation::InvalidTransition { .. }),
                    "{from} -> {to}: {err:?}"
                );
                assert_eq!(e, before, "{from} -> {to} changed the execution");
            }
        }
    }

    #[test]
    fn every_allowed_move_bumps_the_revision_once_and_stamps_the_time() {
        let mut e = new_diamond();
        assert_eq!(
            apply(&mut e, "a", Scheduled).unwrap(),
            Outcome::Changed {
                actions: vec!["a".into()]
            }
        );
        assert_eq!(e.header.revision, 2);
        assert_eq!(e.detail.actions["a"].scheduled_at, Some(t(100)));
        apply(&mut e, "a", Running).unwrap();
        assert_eq!(e.detail.actions["a"].started_at, Some(t(5)));
        apply(&mut e, "a", Completed).unwrap();
        assert_eq!(e.detail.actions["a"].completed_at, Some(t(5)));
        apply(&mut e, "b", Failed).unwrap();
        assert_eq!(e.detail.actions["b"].failed_at, Some(t(5)));
        assert_eq!(e.detail.actions["b"].failure_note.as_deref(), Some("boom"));
        assert_eq!(e.header.revision, 5);
        assert_eq!(e.header.updated_at, t(5));
        assert_eq!(
            e.header.counts,
            Counts {
                idle: 1,
                completed: 1,
                failed: 1,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn the_same_status_again_is_a_no_op() {
        let mut e = diamond_with("a", Running);
        let before = e.clone();
        assert_eq!(apply(&mut e, "a", Running).unwrap(), Outcome::Unchanged);
        assert_eq!(e, before);
    }

    #[test]
    fn an_action_runs_only_when_ready() {
        let mut e = new_diamond();
        for status in [Scheduled, Running] {
            assert_eq!(
                apply(&mut e, "c", status).unwrap_err(),
                RuleViolation::ActionNotReady {
                    node_id: "c".into()
                }
            );
        }
        // Failing an idle action needs no readiness.
        apply(&mut e, "c", Failed).unwrap();
        let mut e = diamond_with("a", Completed);
        apply(&mut e, "c", Running).unwrap();
    }

    #[test]
    fn completing_the_join_completes_the_execution() {
        let mut e = new_diamond();
        for node in ["a", "b", "c"] {
            apply(&mut e, node, Running).unwrap();
            apply(&mut e, node, Completed).unwrap();
        }
        assert_eq!(e.header.status, ExecutionStatus::Completed);
        assert_eq!(e.header.counts.completed, 3);
        assert_eq!(
            apply(&mut e, "a", Failed).unwrap_err(),
            RuleViolation::ExecutionFinished {
                status: ExecutionStatus::Completed
            }
        );
    }

    #[test]
    fn failures_that_block_the_join_fail_the_execution() {
        let mut e = new_diamond();
        apply(&mut e, "a", Failed).unwrap();
        assert_eq!(e.header.status, ExecutionStatus::Running);
        apply(&mut e, "b", Failed).unwrap();
        assert_eq!(e.header.status, ExecutionStatus::Failed);
        assert_eq!(
            apply(&mut e, "c", Failed).unwrap_err(),
            RuleViolation::ExecutionFinished {
                status: ExecutionStatus::Failed
            }
        );
    }

    #[test]
    fn a_stale_expected_revision_is_refused() {
        let mut e = new_diamond();
        let mut update = report("a", Running);
        update.expected_revision = Some(7);
        assert_eq!(
            apply_update(&mut e, &update, t(1)).unwrap_err(),
            RuleViolation::RevisionMismatch {
                expected: 7,
                current: 1
            }
        );
        update.expected_revision = Some(1);
        apply_update(&mut e, &update, t(1)).unwrap();
    }

    #[test]
    fn unknown_and_start_nodes_are_not_actions() {
        let mut e = new_diamond();
        for node in ["ghost", "start"] {
            assert!(matches!(
                apply(&mut e, node, Running).unwrap_err(),
                RuleViolation::ActionNotFound { .. }
            ));
        }
    }

    #[test]
    fn stop_stops_every_unfinished_action_and_keeps_the_rest() {
        let mut e = diamond_with("a", Completed);
        apply(&mut e, "b", Running).unwrap();
        let outcome = stop(&mut e, "operator", t(9)).unwrap();
        assert_eq!(
            outcome,
            Outcome::Changed {
                actions: vec!["b".into(), "c".into()]
            }
        );
        assert_eq!(e.header.status, ExecutionStatus::Stopped);
        assert_eq!(e.header.stop_reason.as_deref(), Some("operator"));
        assert_eq!(e.detail.actions["a"].status, Completed);
        assert_eq!(e.detail.actions["b"].stopped_at, Some(t(9)));
        assert_eq!(
            e.header.counts,
            Counts {
                completed: 1,
                stopped: 2,
                ..Counts::default()
            }
        );
        assert_eq!(e.header.revision, 5);
        // Still open: the edge from the completed action keeps its state.
        assert!(
            e.detail
                .edge_statuses()
                .contains(&("a-c".into(), crate::domain::EdgeStatus::Open))
        );

        let before = e.clone();
        assert_eq!(stop(&mut e, "again", t(10)).unwrap(), Outcome::Unchanged);
        assert_eq!(e, before, "stopping twice changes nothing");
        for status in [Running, Completed, Failed, Scheduled] {
            assert_eq!(
                apply(&mut e, "a", status).unwrap_err(),
                RuleViolation::ExecutionStopped
            );
        }
    }

    #[test]
    fn a_finished_execution_cannot_be_stopped() {
        let mut e = new_diamond();
        apply(&mut e, "a", Failed).unwrap();
        apply(&mut e, "b", Failed).unwrap();
        assert_eq!(
            stop(&mut e, "late", t(9)).unwrap_err(),
            RuleViolation::ExecutionFinished {
                status: ExecutionStatus::Failed
            }
        );
    }
}
