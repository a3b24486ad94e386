//! Domain -> responses: an execution in the requested view and time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::render_cache::RenderCache;
use super::structs::json_to_struct;
use super::wire;
use crate::domain::fleet::StopResult;
use crate::domain::{
    ActionState, ActionStatus, Detail, EdgeStatus, EventKind, Execution, ExecutionStatus,
    FullExecution, HashidCodec, Header, RecordedEvent, Template, View, time,
};
use crate::proto::v1 as pb;
use crate::service::{EventsPage, FeedEvent, WatchEvent};

/// `Execution.object` of every execution.
pub const OBJECT_TYPE: &str = "execution";

/// How to write an execution: which view, in which zone.
#[derive(Clone, Copy, Debug)]
pub struct Presentation<'a> {
    /// BASIC leaves out template, stats, data and log.
    pub view: View,
    /// Zone of `created_at` and `created_at_string`.
    pub zone: Tz,
    /// For `hashid`.
    pub hashids: &'a HashidCodec,
}

impl Presentation<'_> {
    /// The wire form of an execution.
    pub fn execution(&self, e: &Execution) -> pb::Execution {
        self.parts(&e.header, e.detail.as_ref())
    }

    /// The wire form of an execution held whole.
    pub fn full_execution(&self, e: &FullExecution) -> pb::Execution {
        self.parts(&e.header, Some(&e.detail))
    }

    /// The wire form of a watch event, its execution encoded through `cache`.
    pub fn watch_event(&self, event: &WatchEvent, cache: &RenderCache) -> wire::WatchEvent {
        let (kind, revision, execution) = match event {
            WatchEvent::Snapshot(e) => (pb::WatchEventKind::Snapshot, e.header.revision, Some(e)),
            WatchEvent::Update(e) => (pb::WatchEventKind::Update, e.header.revision, Some(e)),
            WatchEvent::Heartbeat { revision } => (pb::WatchEventKind::Heartbeat, *revision, None),
        };
        wire::WatchEvent {
            kind: kind as i32,
            revision,
            execution: execution.map(|e| cache.full_execution(self, e)),
            sent_at: Some(timestamp(Utc::now())),
        }
    }

    /// The wire form of a WatchExecutions message, its execution encoded through
    /// `cache`.
    pub fn feed_event(&self, event: &FeedEvent, cache: &RenderCache) -> wire::FeedEvent {
        let (kind, execution, cursor, left_filter) = match event {
            // A snapshot is a scan: it does not fill the cache (see `scanned_execution`).
            FeedEvent::Snapshot { execution, cursor } => (
                pb::WatchEventKind::Snapshot,
                Some(cache.scanned_execution(self, &execution.execution)),
                cursor,
                false,
            ),
            FeedEvent::Update {
                execution,
                left_filter,
                cursor,
            } => (
                pb::WatchEventKind::Update,
                Some(cache.execution(self, &execution.execution)),
                cursor,
                *left_filter,
            ),
            FeedEvent::Synced { cursor } => (pb::WatchEventKind::Synced, None, cursor, false),
            FeedEvent::Heartbeat { cursor } => (pb::WatchEventKind::Heartbeat, None, cursor, false),
        };
        wire::FeedEvent {
            kind: kind as i32,
            execution,
            cursor: cursor.to_string(),
            sent_at: Some(timestamp(Utc::now())),
            left_filter,
        }
    }

    fn parts(&self, h: &Header, detail: Option<&Detail>) -> pb::Execution {
        let mut out = pb::Execution {
            hashid: self.hashids.encode(h.seq),
            actions_count: h.counts.total(),
            completed_actions_count: h.counts.completed,
            created_at: time::format_in_zone(h.created_at, self.zone),
            created_at_string: time::format_for_people(h.created_at, self.zone),
            created_at_utc: time::format_utc(h.created_at),
            failed_actions_count: h.counts.failed,
            id: h.id.to_string(),
            idle_actions_count: h.counts.idle,
            key: h.key.clone(),
            name: h.name.clone(),
            object: OBJECT_TYPE.to_owned(),
            running_actions_count: h.counts.running,
            status: execution_status(h.status) as i32,
            stopped_actions_count: h.counts.stopped,
            revision: h.revision,
            user_key: h.user_key.clone(),
            scheduled_actions_count: h.counts.scheduled,
            updated_at_utc: time::format_utc(h.updated_at),
            stop_reason: h.stop_reason.clone().unwrap_or_default(),
            ..Default::default()
        };
        if let (View::Full, Some(detail)) = (self.view, detail) {
            out.template = Some(template(&detail.template));
            out.stats = stats(detail);
            out.execution_data = detail
                .execution_data
                .as_ref()
                .and_then(|v| v.as_object())
                .map(json_to_struct);
            out.log = Some(log(detail));
            out.stop_events = detail.stop_events.clone();
        }
        out
    }
}

/// `Execution.log`: each action's last log under its node id.
fn log(detail: &Detail) -> prost_types::Struct {
    let fields = detail
        .actions
        .iter()
        .filter_map(|(node_id, action)| {
            let log = action.log.as_ref()?.value.as_object()?;
            let value = prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(json_to_struct(log))),
            };
            Some((node_id.clone(), value))
        })
        .collect();
    prost_types::Struct { fields }
}

fn stats(detail: &Detail) -> std::collections::HashMap<String, pb::Stat> {
    let actions = detail
        .actions
        .iter()
        .map(|(id, a)| (id.clone(), action_stat_entry(a)));
    let edges = detail
        .edge_statuses()
        .into_iter()
        .map(|(id, status)| (id, edge_stat_entry(status)));
    actions.chain(edges).collect()
}

/// An action's entry in `Execution.stats`.
pub(super) fn action_stat_entry(a: &ActionState) -> pb::Stat {
    let stat = pb::ActionStat {
        status: action_status(a.status) as i32,
        scheduled_at: a.scheduled_at.map(timestamp),
        completed_at: a.completed_at.map(timestamp),
        stopped_at: a.stopped_at.map(timestamp),
        failed_at: a.failed_at.map(timestamp),
        started_at: a.started_at.map(timestamp),
        failure_note: a.failure_note.clone().unwrap_or_default(),
    };
    pb::Stat {
        kind: Some(pb::stat::Kind::Action(stat)),
    }
}

/// An edge's entry in `Execution.stats`.
pub(super) fn edge_stat_entry(status: EdgeStatus) -> pb::Stat {
    let status = match status {
        EdgeStatus::Open => pb::EdgeStatus::Open,
        EdgeStatus::Closed => pb::EdgeStatus::Closed,
    };
    pb::Stat {
        kind: Some(pb::stat::Kind::Edge(pb::EdgeStat {
            status: status as i32,
        })),
    }
}

fn template(t: &Template) -> pb::Template {
    pb::Template {
        nodes: t
            .nodes
            .iter()
            .map(|n| pb::Node {
                id: n.id.clone(),
                r#type: n.node_type.clone(),
                name: n.name.clone(),
                data: n.data.as_ref().map(json_to_struct),
            })
            .collect(),
        edges: t
            .edges
            .iter()
            .map(|e| pb::Edge {
                source: e.source.clone(),
                target: e.target.clone(),
            })
            .collect(),
        positions: t
            .positions
            .iter()
            .map(|(id, p)| (id.clone(), pb::Position { x: p.x, y: p.y }))
            .collect(),
        width: t.width,
        height: t.height,
        action_types: t.action_types.clone(),
    }
}

/// The wire form of a time.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// The answer of CountExecutions: every status present, zero included.
pub fn counts(by_status: &[(ExecutionStatus, i64)]) -> pb::CountExecutionsResponse {
    let mut counts_by_status: std::collections::HashMap<String, i64> = [
        ExecutionStatus::Running,
        ExecutionStatus::Completed,
        ExecutionStatus::Failed,
        ExecutionStatus::Stopped,
    ]
    .into_iter()
    .map(|status| (execution_status(status).as_str_name().to_owned(), 0))
    .collect();
    for (status, n) in by_status {
        *counts_by_status
            .entry(execution_status(*status).as_str_name().to_owned())
            .or_default() += n;
    }
    pb::CountExecutionsResponse {
        count: by_status.iter().map(|(_, n)| n).sum(),
        counts_by_status,
    }
}

/// The answer of StopExecutions.
pub fn stop_result(result: &StopResult, hashids: &HashidCodec) -> pb::StopExecutionsResponse {
    pb::StopExecutionsResponse {
        matched_count: result.matched,
        stopped_count: result.stopped,
        executions: result
            .executions
            .iter()
            .map(|e| pb::StoppedExecution {
                id: e.id.to_string(),
                hashid: hashids.encode(e.seq),
                revision: e.revision,
            })
            .collect(),
        executions_truncated: result.truncated,
    }
}

/// The answer of ListExecutionEvents.
pub fn events_page(page: EventsPage) -> pb::ListExecutionEventsResponse {
    pb::ListExecutionEventsResponse {
        events: page.events.into_iter().map(event).collect(),
        next_page_token: page.next_page_token,
    }
}

fn event(recorded: RecordedEvent) -> pb::ExecutionEvent {
    let RecordedEvent { event: e, by } = recorded;
    let (failure_note, stop_reason) = match e.kind {
        EventKind::ExecutionStopped => (String::new(), e.note.unwrap_or_default()),
        _ => (e.note.unwrap_or_default(), String::new()),
    };
    pb::ExecutionEvent {
        revision: e.revision,
        occurred_at: Some(timestamp(e.occurred_at)),
        kind: event_kind(e.kind) as i32,
        node_id: e.node_id.unwrap_or_default(),
        from_status: e.from_status.map_or(0, |s| action_status(s) as i32),
        to_status: e.to_status.map_or(0, |s| action_status(s) as i32),
        scheduled_at: e.scheduled_at.map(timestamp),
        failure_note,
        stop_reason,
        actor: by.actor,
        request_id: by.request_id.unwrap_or_default(),
    }
}

fn event_kind(kind: EventKind) -> pb::ExecutionEventKind {
    use pb::ExecutionEventKind as K;
    match kind {
        EventKind::ExecutionStarted => K::ExecutionStarted,
        EventKind::ActionScheduled => K::ActionScheduled,
        EventKind::ActionStarted => K::ActionStarted,
        EventKind::ActionCompleted => K::ActionCompleted,
        EventKind::ActionFailed => K::ActionFailed,
        EventKind::ActionStopped => K::ActionStopped,
        EventKind::ExecutionStopped => K::ExecutionStopped,
        EventKind::ExecutionCompleted => K::ExecutionCompleted,
        EventKind::ExecutionFailed => K::ExecutionFailed,
        EventKind::ActionLogged => K::ActionLogged,
    }
}

fn execution_status(s: ExecutionStatus) -> pb::ExecutionStatus {
    match s {
        ExecutionStatus::Running => pb::ExecutionStatus::Running,
        ExecutionStatus::Completed => pb::ExecutionStatus::Completed,
        ExecutionStatus::Failed => pb::ExecutionStatus::Failed,
        ExecutionStatus::Stopped => pb::ExecutionStatus::Stopped,
    }
}

fn action_status(s: ActionStatus) -> pb::ActionStatus {
    match s {
        ActionStatus::Idle => pb::ActionStatus::Idle,
        ActionStatus::Scheduled => pb::ActionStatus::Scheduled,
        ActionStatus::Running => pb::ActionStatus::Running,
        ActionStatus::Completed => pb::ActionStatus::Completed,
        ActionStatus::Failed => pb::ActionStatus::Failed,
        ActionStatus::Stopped => pb::ActionStatus::Stopped,
    }
}
