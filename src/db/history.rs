//! The history as stored: one execution's events in (revision, ordinal) order, written
//! with each change and read a page at a time, by keyset (no OFFSET).
//!
//! A stop's ACTION_STOPPED events (one per action it stopped, alike but for the action
//! and its status before) are stored folded into the row of the change's
//! EXECUTION_STOPPED event, which they precede: `folded_actions`, a JSON array of
//! `[node_id, from_status]`, in ordinal order. A stop of 20 actions is then one row
//! instead of 21, which made a StopExecutions of 10,000 such executions about a sixth
//! faster (BENCHMARKS.md, "Batches as columns"). Reads unfold them: every event keeps
//! its own (revision, ordinal), and pages cut anywhere, inside a folded row too.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::event;
use super::rows;
use crate::domain::{ActionStatus, Event, EventKind, RecordedEvent};
use crate::error::{Error, OrInternal};

/// One row of the history of a change: an event at its ordinal, with the events folded
/// into it (see the module docs).
pub(super) struct StoredEvent<'a> {
    /// Place of the event in its change.
    pub(super) ordinal: i32,
    /// The event.
    pub(super) event: &'a Event,
    /// The ACTION_STOPPED events just before it, as `folded_actions` holds them.
    pub(super) folded: Option<String>,
}

/// The rows that store the events of one change: one per event, except the run of
/// ACTION_STOPPED events just before an EXECUTION_STOPPED event, folded into its row.
pub(super) fn fold(events: &[Event]) -> Result<Vec<StoredEvent<'_>>, Error> {
    let mut stored: Vec<StoredEvent<'_>> = Vec::with_capacity(events.len());
    for (ordinal, event) in events.iter().enumerate() {
        let mut folded = None;
        if event.kind == EventKind::ExecutionStopped {
            let run = stored
                .iter()
                .rev()
                .take_while(|row| folded_form(row.event, event).is_some())
                .count();
            if run > 0 {
                let actions: Vec<(&str, &str)> = stored
                    .drain(stored.len() - run..)
                    .filter_map(|row| folded_form(row.event, event))
                    .collect();
                folded = Some(serde_json::to_string(&actions).or_internal()?);
            }
        }
        stored.push(StoredEvent {
            ordinal: i32::try_from(ordinal).or_internal()?,
            event,
            folded,
        });
    }
    Ok(stored)
}

/// `[node_id, from_status]` of an ACTION_STOPPED event that its change's EXECUTION_STOPPED
/// event `by` can hold: one with nothing else of its own.
fn folded_form<'a>(event: &'a Event, by: &Event) -> Option<(&'a str, &'static str)> {
    let plain = event.kind == EventKind::ActionStopped
        && event.to_status == Some(ActionStatus::Stopped)
        && event.scheduled_at.is_none()
        && event.note.is_none()
        && (event.revision, event.occurred_at) == (by.revision, by.occurred_at);
    match (plain, event.node_id.as_deref(), event.from_status) {
        (true, Some(node_id), Some(from)) => Some((node_id, from.as_str())),
        _ => None,
    }
}

/// The events a row stores, in ascending order with their positions: those folded
/// into it, then its own.
fn unfold(row: event::Model) -> Result<Vec<(EventPosition, RecordedEvent)>, Error> {
    let folded: Vec<(String, String)> = match &row.folded_actions {
        Some(json) => serde_json::from_str(json).or_internal()?,
        None => Vec::new(),
    };
    let (revision, ordinal) = (row.revision, row.ordinal);
    let own = rows::recorded_event(row)?;
    let first = ordinal - i32::try_from(folded.len()).or_internal()?;
    let mut events = Vec::with_capacity(folded.len() + 1);
    for (place, (node_id, from)) in (first..).zip(folded) {
        let event = Event {
            kind: EventKind::ActionStopped,
            node_id: Some(node_id),
            from_status: Some(from.parse().or_internal()?),
            to_status: Some(ActionStatus::Stopped),
            scheduled_at: None,
            note: None,
            ..own.event.clone()
        };
        let position = EventPosition {
            revision,
            ordinal: place,
        };
        events.push((
            position,
            RecordedEvent {
                event,
                by: own.by.clone(),
            },
        ));
    }
    events.push((EventPosition { revision, ordinal }, own));
    Ok(events)
}

/// Where a page of events resumes: after this (revision, ordinal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPosition {
    /// Revision of the last event of the previous page.
    pub revision: i64,
    /// Its place in its change.
    pub ordinal: i32,
}

/// Events of execution `seq` strictly after `after` in the given order (oldest first when
/// `ascending`), at most `limit`, each with its position.
pub async fn list_events(
    conn: &impl ConnectionTrait,
    seq: i64,
    after: Option<EventPosition>,
    ascending: bool,
    limit: u64,
) -> Result<Vec<(EventPosition, RecordedEvent)>, Error> {
    use event::Column as C;
    let mut condition = Condition::all().add(C::ExecutionSeq.eq(seq));
    if let Some(after) = after {
        // The same shape as the list's keyset: a leading range on the first key, then
        // the tie broken by the second. A row's ordinal is that of the last event it
        // holds, so newest first also takes the folded row of `after`'s revision, whose
        // first events may come before `after` (at most one row: a change has one
        // EXECUTION_STOPPED event).
        condition = condition.add(if ascending {
            Condition::all().add(C::Revision.gte(after.revision)).add(
                Condition::any()
                    .add(C::Revision.gt(after.revision))
                    .add(C::Ordinal.gt(after.ordinal)),
            )
        } else {
            Condition::all().add(C::Revision.lte(after.revision)).add(
                Condition::any()
                    .add(C::Revision.lt(after.revision))
                    .add(C::Ordinal.lt(after.ordinal))
                    .add(C::FoldedActions.is_not_null()),
            )
        });
    }
    let order = if ascending { Order::Asc } else { Order::Desc };
    // Every row holds at least one event after `after`, but for that one folded row:
    // one more row than the page is enough to fill it.
    let rows = event::Entity::find()
        .filter(condition)
        .order_by(C::Revision, order.clone())
        .order_by(C::Ordinal, order)
        .limit(limit.saturating_add(1))
        .all(conn)
        .await?;
    let mut events = Vec::new();
    for row in rows {
        let mut held = unfold(row)?;
        if !ascending {
            held.reverse();
        }
        events.extend(held.into_iter().filter(|(position, _)| {
            after.is_none_or(|after| {
                let key = (position.revision, position.ordinal);
                let after = (after.revision, after.ordinal);
                if ascending { key > after } else { key < after }
            })
        }));
    }
    events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(events)
}
