//! The history of an execution: one [`Event`] per thing a change changed, written with
//! the change, and [`replay`], which rebuilds the state the events describe (the proof
//! that the history is complete).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::execution::{ActionState, FullExecution};
use super::status::{ActionStatus, ExecutionStatus};

/// Events per page of ListExecutionEvents when the caller asks for no size.
pub const DEFAULT_EVENTS_PAGE_SIZE: u64 = 100;
/// Largest page of events; larger requests are clamped to it.
pub const MAX_EVENTS_PAGE_SIZE: u64 = 1_000;

/// The page size of a ListExecutionEvents request: 0 means the default, above the most
/// means the most, negative is refused (`None`).
pub fn events_page_size(requested: i32) -> Option<u64> {
    match requested {
        n if n < 0 => None,
        0 => Some(DEFAULT_EVENTS_PAGE_SIZE),
        n => Some((n as u64).min(MAX_EVENTS_PAGE_SIZE)),
    }
}

/// What one event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The execution was created (revision 1).
    ExecutionStarted,
    /// An action became SCHEDULED.
    ActionScheduled,
    /// An action became RUNNING.
    ActionStarted,
    /// An action COMPLETED.
    ActionCompleted,
    /// An action FAILED.
    ActionFailed,
    /// An action was STOPPED with its execution.
    ActionStopped,
    /// The execution became STOPPED.
    ExecutionStopped,
    /// The execution became COMPLETED.
    ExecutionCompleted,
    /// The execution became FAILED.
    ExecutionFailed,
    /// An action reported a new log without changing its status.
    ActionLogged,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::ExecutionStarted,
        Self::ActionScheduled,
        Self::ActionStarted,
        Self::ActionCompleted,
        Self::ActionFailed,
        Self::ActionStopped,
        Self::ExecutionStopped,
        Self::ExecutionCompleted,
        Self::ExecutionFailed,
        Self::ActionLogged,
    ];

    /// The spelling stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExecutionStarted => "EXECUTION_STARTED",
            Self::ActionScheduled => "ACTION_SCHEDULED",
            Self::ActionStarted => "ACTION_STARTED",
            Self::ActionCompleted => "ACTION_COMPLETED",
            Self::ActionFailed => "ACTION_FAILED",
            Self::ActionStopped => "ACTION_STOPPED",
            Self::ExecutionStopped => "EXECUTION_STOPPED",
            Self::ExecutionCompleted => "EXECUTION_COMPLETED",
            Self::ExecutionFailed => "EXECUTION_FAILED",
            Self::ActionLogged => "ACTION_LOGGED",
        }
    }

    /// The event of an action reaching `status` (none for IDLE, which no action returns
    /// to).
    pub fn of_action(status: ActionStatus) -> Option<Self> {
        Some(match status {
            ActionStatus::Idle => return None,
            ActionStatus::Scheduled => Self::ActionScheduled,
            ActionStatus::Running => Self::ActionStarted,
            ActionStatus::Completed => Self::ActionCompleted,
            ActionStatus::Failed => Self::ActionFailed,
            ActionStatus::Stopped => Self::ActionStopped,
        })
    }

    /// The event of an execution reaching a terminal `status` (none for RUNNING, which
    /// only a new execution has).
    pub fn of_execution(status: ExecutionStatus) -> Option<Self> {
        Some(match status {
            ExecutionStatus::Running => return None,
            ExecutionStatus::Completed => Self::ExecutionCompleted,
            ExecutionStatus::Failed => Self::ExecutionFailed,
            ExecutionStatus::Stopped => Self::ExecutionStopped,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// One thing that changed in one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Revision the change produced.
    pub revision: i64,
    /// Time of the change.
    pub occurred_at: DateTime<Utc>,
    /// What changed.
    pub kind: EventKind,
    /// The action, on action events.
    pub node_id: Option<String>,
    /// The action's status before, on action events.
    pub from_status: Option<ActionStatus>,
    /// The action's status after, on action events.
    pub to_status: Option<ActionStatus>,
    /// When the action is scheduled to run, on `ActionScheduled`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The failure note (`ActionFailed`) or the stop reason (`ExecutionStopped`).
    pub note: Option<String>,
}

impl Event {
    /// An event of the execution as a whole, stamped later by [`stamp`].
    pub(super) fn of_execution(kind: EventKind, note: Option<String>) -> Self {
        Self {
            revision: 0,
            occurred_at: DateTime::<Utc>::UNIX_EPOCH,
            kind,
            node_id: None,
            from_status: None,
            to_status: None,
            scheduled_at: None,
            note,
        }
    }

    /// An event of one action, stamped later by [`stamp`].
    pub(super) fn of_action(
        kind: EventKind,
        node_id: &str,
        from: ActionStatus,
        to: &ActionState,
    ) -> Self {
        Self {
            node_id: Some(node_id.to_owned()),
            from_status: Some(from),
            to_status: Some(to.status),
            scheduled_at: (kind == EventKind::ActionScheduled)
                .then_some(to.scheduled_at)
                .flatten(),
            note: (kind == EventKind::ActionFailed)
                .then(|| to.failure_note.clone())
                .flatten(),
            ..Self::of_execution(kind, None)
        }
    }
}

/// Gives every event of one change that change's revision and time.
pub(super) fn stamp(events: &mut [Event], revision: i64, at: DateTime<Utc>) {
    for event in events {
        event.revision = revision;
        event.occurred_at = at;
    }
}

/// The events of a new execution: one `ExecutionStarted` at revision 1.
pub fn started(execution: &FullExecution) -> Vec<Event> {
    let mut events = vec![Event::of_execution(EventKind::ExecutionStarted, None)];
    stamp(
        &mut events,
        execution.header.revision,
        execution.header.created_at,
    );
    events
}

/// Who made a change, recorded with its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Name of the caller's token; empty without authentication.
    pub actor: String,
    /// `request_id` of the StopExecutions job that made the change, if one did.
    pub request_id: Option<String>,
}

/// An event as stored: what changed and who changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// What changed.
    pub event: Event,
    /// Who changed it.
    pub by: Provenance,
}

/// The state a history describes: what [`replay`] rebuilds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Status of the execution.
    pub status: Option<ExecutionStatus>,
    /// Stop reason, when stopped.
    pub stop_reason: Option<String>,
    /// Revision of the last event.
    pub revision: i64,
    /// State of every action an event named (without logs), by node id.
    pub actions: BTreeMap<String, ActionState>,
}

/// Rebuilds the state a history describes, events in order. Actions no event names are
/// IDLE: fill them in from the template before comparing.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Replayed {
    let mut state = Replayed::default();
    for event in events {
        state.revision = event.revision;
        let at = Some(event.occurred_at);
        match event.kind {
            EventKind::ExecutionStarted => state.status = Some(ExecutionStatus::Running),
            EventKind::ExecutionCompleted => state.status = Some(ExecutionStatus::Completed),
            EventKind::ExecutionFailed => state.status = Some(ExecutionStatus::Failed),
            EventKind::ExecutionStopped => {
                state.status = Some(ExecutionStatus::Stopped);
                state.stop_reason = event.note.clone();
            }
            EventKind::ActionLogged => {}
            kind => {
                let action = state
                    .actions
                    .entry(event.node_id.clone().unwrap_or_default())
                    .or_default();
                action.status = event.to_status.unwrap_or_default();
                match kind {
                    EventKind::ActionScheduled => action.scheduled_at = event.scheduled_at,
                    EventKind::ActionStarted => action.started_at = at,
                    EventKind::ActionCompleted => action.completed_at = at,
                    EventKind::ActionFailed => {
                        action.failed_at = at;
                        action.failure_note = event.note.clone();
                    }
                    _ => action.stopped_at = at,
                }
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_stored_spelling() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert!("NOPE".parse::<EventKind>().is_err());
    }
}
