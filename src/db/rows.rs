//! Conversions between table rows and domain types, in both directions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;

use super::entity::{action, event, execution, stop_subscription};
use super::history::StoredEvent;
use crate::domain::{
    ActionLog, ActionState, Counts, Detail, Event, ExecutionId, FullExecution, Header, Provenance,
    RecordedEvent,
};
use crate::error::{Error, OrInternal};

/// Microseconds since the epoch, the stored form of every time.
pub(super) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time a stored microsecond count names.
pub(super) fn from_micros(us: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| Error::internal(format!("stored time {us} out of range")))
}

fn opt_from_micros(us: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    us.map(from_micros).transpose()
}

/// The header of an execution row.
pub(super) fn header(row: &execution::Model) -> Result<Header, Error> {
    Ok(Header {
        id: ExecutionId::new(row.id),
        seq: row.seq,
        user_key: row.user_key.clone(),
        key: row.key.clone(),
        name: row.name.clone(),
        status: row.status.parse().or_internal()?,
        stop_reason: row.stop_reason.clone(),
        revision: row.revision,
        counts: Counts {
            idle: row.idle_count,
            scheduled: row.scheduled_count,
            running: row.running_count,
            completed: row.completed_count,
            failed: row.failed_count,
            stopped: row.stopped_count,
        },
        created_at: from_micros(row.created_at)?,
        updated_at: from_micros(row.updated_at)?,
    })
}

/// The detail of an execution row and its action rows.
pub(super) fn detail(row: execution::Model, actions: Vec<action::Model>) -> Result<Detail, Error> {
    let template = super::templates::parse(&row.template)?;
    let actions = actions
        .into_iter()
        .map(|a| Ok((a.node_id.clone(), action_state(a)?)))
        .collect::<Result<BTreeMap<_, _>, Error>>()?;
    Ok(Detail {
        template,
        execution_data: row.execution_data,
        actions,
        stop_events: serde_json::from_str(&row.stop_events).or_internal()?,
        log_budget: row.log_budget,
    })
}

fn action_state(row: action::Model) -> Result<ActionState, Error> {
    Ok(ActionState {
        status: row.status.parse().or_internal()?,
        scheduled_at: opt_from_micros(row.scheduled_at)?,
        started_at: opt_from_micros(row.started_at)?,
        completed_at: opt_from_micros(row.completed_at)?,
        failed_at: opt_from_micros(row.failed_at)?,
        stopped_at: opt_from_micros(row.stopped_at)?,
        failure_note: row.failure_note,
        log: row
            .log
            .map(|log| {
                Ok::<_, Error>(ActionLog {
                    value: serde_json::from_str(&log).or_internal()?,
                    encoded_bytes: row.log_bytes,
                })
            })
            .transpose()?,
    })
}

/// A full execution from its row and action rows.
pub(super) fn full(
    row: execution::Model,
    actions: Vec<action::Model>,
) -> Result<FullExecution, Error> {
    Ok(FullExecution {
        header: header(&row)?,
        detail: detail(row, actions)?,
    })
}

/// The row to insert for a new execution (`seq` is assigned by the database).
pub(super) fn new_execution_row(
    e: &FullExecution,
    request_id: Option<String>,
) -> Result<execution::ActiveModel, Error> {
    let h = &e.header;
    Ok(execution::ActiveModel {
        id: Set(h.id.as_uuid()),
        user_key: Set(h.user_key.clone()),
        key: Set(h.key.clone()),
        name: Set(h.name.clone()),
        status: Set(h.status.as_str().to_owned()),
        stop_reason: Set(h.stop_reason.clone()),
        revision: Set(h.revision),
        actions_count: Set(h.counts.total()),
        idle_count: Set(h.counts.idle),
        scheduled_count: Set(h.counts.scheduled),
        running_count: Set(h.counts.running),
        completed_count: Set(h.counts.completed),
        failed_count: Set(h.counts.failed),
        stopped_count: Set(h.counts.stopped),
        template: Set(serde_json::to_string(&*e.detail.template).or_internal()?),
        execution_data: Set(e.detail.execution_data.clone()),
        request_id: Set(request_id),
        created_at: Set(to_micros(h.created_at)),
        updated_at: Set(to_micros(h.updated_at)),
        stop_events: Set(serde_json::to_string(&e.detail.stop_events).or_internal()?),
        log_budget: Set(e.detail.log_budget),
        ..Default::default()
    })
}

/// The subscriptions of a new execution to its stop events (with `seq` as its
/// sequence number).
pub(super) fn stop_subscription_rows(
    e: &FullExecution,
    seq: i64,
) -> Vec<stop_subscription::ActiveModel> {
    e.detail
        .stop_events
        .iter()
        .map(|stop_event| stop_subscription::ActiveModel {
            user_key: Set(e.header.user_key.clone()),
            stop_event: Set(stop_event.clone()),
            execution_seq: Set(seq),
        })
        .collect()
}

/// The row of one action.
pub(super) fn action_row(seq: i64, node_id: &str, state: &ActionState) -> action::ActiveModel {
    action::ActiveModel {
        execution_seq: Set(seq),
        node_id: Set(node_id.to_owned()),
        status: Set(state.status.as_str().to_owned()),
        scheduled_at: Set(state.scheduled_at.map(to_micros)),
        started_at: Set(state.started_at.map(to_micros)),
        completed_at: Set(state.completed_at.map(to_micros)),
        failed_at: Set(state.failed_at.map(to_micros)),
        stopped_at: Set(state.stopped_at.map(to_micros)),
        failure_note: Set(state.failure_note.clone()),
        log: Set(state.log.as_ref().map(|log| log.value.to_string())),
        log_bytes: Set(state.log.as_ref().map_or(0, |log| log.encoded_bytes)),
    }
}

pub(super) fn event_row(seq: i64, stored: &StoredEvent<'_>, by: &Provenance) -> event::ActiveModel {
    let e = stored.event;
    event::ActiveModel {
        execution_seq: Set(seq),
        revision: Set(e.revision),
        ordinal: Set(stored.ordinal),
        occurred_at: Set(to_micros(e.occurred_at)),
        kind: Set(e.kind.as_str().to_owned()),
        node_id: Set(e.node_id.clone()),
        from_status: Set(e.from_status.map(|s| s.as_str().to_owned())),
        to_status: Set(e.to_status.map(|s| s.as_str().to_owned())),
        scheduled_at: Set(e.scheduled_at.map(to_micros)),
        note: Set(e.note.clone()),
        actor: Set(by.actor.clone()),
        request_id: Set(by.request_id.clone()),
        folded_actions: Set(stored.folded.clone()),
    }
}

pub(super) fn recorded_event(row: event::Model) -> Result<RecordedEvent, Error> {
    let status = |s: Option<String>| s.map(|s| s.parse()).transpose().or_internal();
    Ok(RecordedEvent {
        event: Event {
            revision: row.revision,
            occurred_at: from_micros(row.occurred_at)?,
            kind: row.kind.parse().or_internal()?,
            node_id: row.node_id,
            from_status: status(row.from_status)?,
            to_status: status(row.to_status)?,
            scheduled_at: opt_from_micros(row.scheduled_at)?,
            note: row.note,
        },
        by: Provenance {
            actor: row.actor,
            request_id: row.request_id,
        },
    })
}
