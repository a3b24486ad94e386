//! The execution aggregate: its header (identity, status, counts, revision), the per-action
//! state, and the derived views of it (counts, edge statuses, readiness, execution status).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ids::ExecutionId;
use super::status::{ActionStatus, EdgeStatus, ExecutionStatus};
use super::template::{Graph, Template};

/// Tenant an execution belongs to when the caller names none.
pub const DEFAULT_USER_KEY: &str = "main";

/// The part of an execution every view carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Public UUIDv7 id.
    pub id: ExecutionId,
    /// Internal sequence number; the hashid encodes it.
    pub seq: i64,
    /// Owning tenant.
    pub user_key: String,
    /// Key of the workflow.
    pub key: String,
    /// Name of the execution.
    pub name: String,
    /// Derived status.
    pub status: ExecutionStatus,
    /// Reason given when stopped.
    pub stop_reason: Option<String>,
    /// 1 at creation, +1 with every change.
    pub revision: i64,
    /// Number of actions in each status.
    pub counts: Counts,
    /// Creation time (microsecond precision).
    pub created_at: DateTime<Utc>,
    /// Time of the latest change (microsecond precision).
    pub updated_at: DateTime<Utc>,
}

/// What only the FULL view carries: the template, the data and the per-action state.
#[derive(Clone, Debug, PartialEq)]
pub struct Detail {
    /// Template the execution runs, shared by the executions read with the same one.
    pub template: Arc<Template>,
    /// Data context given at start (a JSON object), if any.
    pub execution_data: Option<serde_json::Value>,
    /// State of every action, by node id.
    pub actions: BTreeMap<String, ActionState>,
    /// Stop events the execution listens to (see StopExecutions).
    pub stop_events: Vec<String>,
    /// Bytes the actions' logs may take together, as encoded in the execution's `log`
    /// (what the largest form of the execution leaves free of the message limit, decided
    /// at start; see [`log_bytes`]).
    pub log_budget: i64,
}

/// An execution as read: always its header, its detail when the view asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    /// Identity, status, counts and revision.
    pub header: Header,
    /// Template, data and per-action state (FULL view only).
    pub detail: Option<Detail>,
}

/// An execution with everything a change needs.
#[derive(Clone, Debug, PartialEq)]
pub struct FullExecution {
    /// Identity, status, counts and revision.
    pub header: Header,
    /// Template, data and per-action state.
    pub detail: Detail,
}

impl From<FullExecution> for Execution {
    fn from(full: FullExecution) -> Self {
        Self {
            header: full.header,
            detail: Some(full.detail),
        }
    }
}

/// State of one action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionState {
    /// Current status.
    pub status: ActionStatus,
    /// When the engine scheduled it to run.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// When it was stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// What went wrong, when it failed.
    pub failure_note: Option<String>,
    /// The last log the action reported, if any.
    pub log: Option<ActionLog>,
}

/// The log an action reported: a JSON object, and its size as the caller encoded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionLog {
    /// The log (a JSON object).
    pub value: serde_json::Value,
    /// Its size in bytes as encoded on the wire (a protobuf Struct).
    pub encoded_bytes: i64,
}

/// Bytes that the logs of `actions` take in an execution's `log`: each log's own size
/// plus what its entry under the node id adds (the key, field tags and lengths, counted
/// generously).
pub fn log_bytes<'a>(actions: impl IntoIterator<Item = (&'a String, &'a ActionState)>) -> i64 {
    /// Tags and length prefixes of one entry of the `log` Struct, at most.
    const ENTRY_OVERHEAD: i64 = 24;
    actions
        .into_iter()
        .filter_map(|(node_id, action)| {
            let log = action.log.as_ref()?;
            Some(log.encoded_bytes + node_id.len() as i64 + ENTRY_OVERHEAD)
        })
        .sum()
}

/// Number of actions in each status; the six add up to the number of actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// IDLE actions.
    pub idle: i32,
    /// SCHEDULED actions.
    pub scheduled: i32,
    /// RUNNING actions.
    pub running: i32,
    /// COMPLETED actions.
    pub completed: i32,
    /// FAILED actions.
    pub failed: i32,
    /// STOPPED actions.
    pub stopped: i32,
}

impl Counts {
    /// Tallies the statuses of a set of actions.
    pub fn tally<'a>(actions: impl IntoIterator<Item = &'a ActionState>) -> Self {
        let mut counts = Self::default();
        for action in actions {
            *counts.slot(action.status) += 1;
        }
        counts
    }

    /// Total number of actions.
    pub fn total(&self) -> i32 {
        self.idle + self.scheduled + self.running + self.completed + self.failed + self.stopped
    }

    fn slot(&mut self, status: ActionStatus) -> &mut i32 {
        match status {
            ActionStatus::Idle => &mut self.idle,
            ActionStatus::Scheduled => &mut self.scheduled,
            ActionStatus::Running => &mut self.running,
            ActionStatus::Completed => &mut self.completed,
            ActionStatus::Failed => &mut self.failed,
            ActionStatus::Stopped => &mut self.stopped,
        }
    }
}

/// True when `node_id` may be scheduled or run: it has no incoming edge, or at least one
/// of its incoming edges is open.
pub fn is_ready(graph: &Graph<'_>, actions: &BTreeMap<String, ActionState>, node_id: &str) -> bool {
    let predecessors = graph.predecessors(node_id);
    predecessors.is_empty()
        || predecessors
            .iter()
            .any(|source| edge_status(graph, actions, source) == EdgeStatus::Open)
}

/// Status of every edge leaving `source`: open once the source is the Start node or a
/// completed action, closed otherwise. Edge status is derived, never stored.
pub fn edge_status(
    graph: &Graph<'_>,
    actions: &BTreeMap<String, ActionState>,
    source: &str,
) -> EdgeStatus {
    let open = source == graph.start_id()
        || actions
            .get(source)
            .is_some_and(|a| a.status == ActionStatus::Completed);
    if open {
        EdgeStatus::Open
    } else {
        EdgeStatus::Closed
    }
}

/// Derives the execution's status from its actions: STOPPED if stopped; RUNNING while any
/// action is scheduled or running, or any idle action is ready; else FAILED if any action
/// failed; else COMPLETED.
pub fn derive_status(
    graph: &Graph<'_>,
    actions: &BTreeMap<String, ActionState>,
    stopped: bool,
) -> ExecutionStatus {
    if stopped {
        return ExecutionStatus::Stopped;
    }
    let can_progress = actions.iter().any(|(id, action)| {
        action.status.is_active()
            || (action.status == ActionStatus::Idle && is_ready(graph, actions, id))
    });
    if can_progress {
        ExecutionStatus::Running
    } else if actions.values().any(|a| a.status == ActionStatus::Failed) {
        ExecutionStatus::Failed
    } else {
        ExecutionStatus::Completed
    }
}

impl Detail {
    /// Status of every edge, keyed by edge id, in template order.
    pub fn edge_statuses(&self) -> Vec<(String, EdgeStatus)> {
        let graph = Graph::new(&self.template);
        graph
            .edges()
            .iter()
            .map(|edge| (edge.id(), edge_status(&graph, &self.actions, &edge.source)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::tests::diamond;

    fn actions(states: &[(&str, ActionStatus)]) -> BTreeMap<String, ActionState> {
        states
            .iter()
            .map(|(id, status)| {
                (
                    id.to_string(),
                    ActionState {
                        status: *status,
                        ..ActionState::default()
                    },
                )
            })
            .collect()
    }

    use ActionStatus::*;

    #[test]
    fn readiness_follows_open_edges() {
        let t = diamond();
        let g = Graph::new(&t);
        let a = actions(&[("a", Idle), ("b", Idle), ("c", Idle)]);
        assert!(is_ready(&g, &a, "a"), "edges from Start are open");
        assert!(!is_ready(&g, &a, "c"));
        let a = actions(&[("a", Completed), ("b", Running), ("c", Idle)]);
        assert!(is_ready(&g, &a, "c"), "one open incoming edge is enough");
        let a = actions(&[("a", Failed), ("b", Stopped), ("c", Idle)]);
        assert!(!is_ready(&g, &a, "c"));
    }

    #[test]
    fn a_node_without_incoming_edges_is_ready() {
        let mut t = diamond();
        t.nodes
            .push(crate::domain::template::tests::node("lonely", "Http"));
        let g = Graph::new(&t);
        assert!(is_ready(&g, &actions(&[("lonely", Idle)]), "lonely"));
    }

    #[test]
    fn edges_open_when_their_source_completes() {
        let detail = Detail {
            template: diamond().into(),
            execution_data: None,
            actions: actions(&[("a", Completed), ("b", Running), ("c", Idle)]),
            stop_events: Vec::new(),
            log_budget: 0,
        };
        let edges = detail.edge_statuses();
        assert_eq!(
            edges,
            [
                ("start-a".to_string(), EdgeStatus::Open),
                ("start-b".to_string(), EdgeStatus::Open),
                ("a-c".to_string(), EdgeStatus::Open),
                ("b-c".to_string(), EdgeStatus::Closed),
            ]
        );
    }

    #[test]
    fn derived_status_in_order() {
        let t = diamond();
        let g = Graph::new(&t);
        let derive =
            |states: &[(&str, ActionStatus)], stopped| derive_status(&g, &actions(states), stopped);
        assert_eq!(
            derive(&[("a", Idle), ("b", Idle), ("c", Idle)], false),
            ExecutionStatus::Running
        );
        assert_eq!(
            derive(&[("a", Idle), ("b", Idle), ("c", Idle)], true),
            ExecutionStatus::Stopped
        );
        assert_eq!(
            derive(&[("a", Failed), ("b", Running), ("c", Idle)], false),
            ExecutionStatus::Running,
            "a running action keeps the execution running"
        );
        assert_eq!(
            derive(&[("a", Failed), ("b", Completed), ("c", Idle)], false),
            ExecutionStatus::Running,
            "c is ready through b"
        );
        assert_eq!(
            derive(&[("a", Failed), ("b", Failed), ("c", Idle)], false),
            ExecutionStatus::Failed,
            "nothing can run and something failed"
        );
        assert_eq!(
            derive(
                &[("a", Completed), ("b", Completed), ("c", Completed)],
                false
            ),
            ExecutionStatus::Completed
        );
    }

    #[test]
    fn counts_add_up() {
        let a = actions(&[("a", Completed), ("b", Running), ("c", Idle), ("d", Failed)]);
        let counts = Counts::tally(a.values());
        assert_eq!(
            counts,
            Counts {
                idle: 1,
                running: 1,
                completed: 1,
                failed: 1,
                ..Counts::default()
            }
        );
        assert_eq!(counts.total(), 4);
    }
}
