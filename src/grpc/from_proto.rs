//! Requests -> domain: every field is checked here, and a bad one becomes
//! INVALID_ARGUMENT naming it, before anything is read or written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::structs::{UnstorableJson, struct_to_json};
use crate::domain::listing::{ListFilter, SortOrder, page_size};
use crate::domain::rules::{ActionUpdate, NewExecution};
use crate::domain::template::MAX_NODE_ID_CHARS;
use crate::domain::{
    ActionStatus, Edge, ExecutionRef, ExecutionStatus, HashidCodec, Node, Position, Template, View,
    time,
};
use crate::error::{Error, OrInternal};
use crate::proto::v1 as pb;
use crate::service::ListRequest;

/// Longest workflow key, execution name or node id reference, in characters.
const MAX_KEY_CHARS: usize = 256;
/// Longest tenant key or request id, in characters.
const MAX_USER_KEY_CHARS: usize = 128;
/// Longest stop reason, in characters.
const MAX_REASON_CHARS: usize = 1_024;
/// Longest failure note, in characters.
const MAX_FAILURE_NOTE_CHARS: usize = 4_096;
/// Largest `execution_data`, as JSON.
pub const MAX_EXECUTION_DATA_BYTES: usize = 1 << 20;

/// Reads an execution reference (UUID or hashid) from `field`.
pub fn execution_ref(hashids: &HashidCodec, field: &str, raw: &str) -> Result<ExecutionRef, Error> {
    hashids
        .parse_ref(raw)
        .map_err(|e| Error::invalid(field, "INVALID_ID", format!("{field}: {e}")))
}

/// The view a request asks for, or the RPC's default.
pub fn view(raw: i32, default: View) -> Result<View, Error> {
    match pb::ExecutionView::try_from(raw) {
        Ok(pb::ExecutionView::Unspecified) => Ok(default),
        Ok(pb::ExecutionView::Basic) => Ok(View::Basic),
        Ok(pb::ExecutionView::Full) => Ok(View::Full),
        Err(_) => Err(Error::invalid(
            "view",
            "INVALID_VIEW",
            format!("unknown view {raw}"),
        )),
    }
}

/// The zone a request asks for, or the server's default.
pub fn time_zone(raw: &str, default: Tz) -> Result<Tz, Error> {
    if raw.is_empty() {
        return Ok(default);
    }
    time::parse_time_zone(raw).ok_or_else(|| {
        Error::invalid(
            "time_zone",
            "INVALID_TIME_ZONE",
            format!("unknown time zone {raw:?}; use an IANA name such as America/New_York"),
        )
    })
}

fn bounded(
    field: &str,
    reason: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::invalid(
            field,
            reason,
            format!("{field} must not contain a NUL character"),
        ));
    }
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(Error::invalid(
            field,
            reason,
            format!("{field} must have {min} to {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// A workflow `key` (at least `min_key_chars` long) and a tenant `user_key`, as Start
/// takes them and List filters on them.
fn workflow_and_tenant(key: &str, min_key_chars: usize, user_key: &str) -> Result<(), Error> {
    bounded("key", "INVALID_KEY", key, min_key_chars, MAX_KEY_CHARS)?;
    bounded(
        "user_key",
        "INVALID_USER_KEY",
        user_key,
        0,
        MAX_USER_KEY_CHARS,
    )
}

fn timestamp(field: &str, ts: prost_types::Timestamp) -> Result<DateTime<Utc>, Error> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .map(time::to_stored_precision)
        .ok_or_else(|| {
            Error::invalid(
                field,
                "INVALID_TIMESTAMP",
                format!("{field} is not a valid time"),
            )
        })
}

fn json_object(
    field: &str,
    s: prost_types::Struct,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    struct_to_json(s).map_err(|err| {
        let what = match err {
            UnstorableJson::NonFiniteNumber => "a number JSON cannot hold (NaN or infinite)",
            UnstorableJson::NulCharacter => "a NUL character",
        };
        Error::invalid(field, "INVALID_JSON", format!("{field} holds {what}"))
    })
}

/// A StartExecution request as a validated [`NewExecution`].
pub fn new_execution(req: pb::StartExecutionRequest) -> Result<NewExecution, Error> {
    workflow_and_tenant(&req.key, 1, &req.user_key)?;
    bounded("name", "INVALID_NAME", &req.name, 0, MAX_KEY_CHARS)?;
    bounded(
        "request_id",
        "INVALID_REQUEST_ID",
        &req.request_id,
        0,
        MAX_USER_KEY_CHARS,
    )?;
    let template =
        template(req.template.ok_or_else(|| {
            Error::invalid("template", "TEMPLATE_MISSING", "template is required")
        })?)?;
    template
        .validate()
        .map_err(|e| Error::invalid(format!("template.{}", e.field), e.reason, e.message))?;
    let execution_data = match req.execution_data {
        None => None,
        Some(data) => {
            let value = serde_json::Value::Object(json_object("execution_data", data)?);
            let size = serde_json::to_vec(&value).or_internal()?.len();
            if size > MAX_EXECUTION_DATA_BYTES {
                return Err(Error::invalid(
                    "execution_data",
                    "EXECUTION_DATA_TOO_LARGE",
                    format!(
                        "execution_data is {size} bytes as JSON; the limit is {MAX_EXECUTION_DATA_BYTES}"
                    ),
                ));
            }
            Some(value)
        }
    };
    Ok(NewExecution {
        key: req.key,
        name: req.name,
        template,
        execution_data,
        // Empty when the request names none: the service picks the caller's tenant.
        user_key: req.user_key,
        request_id: (!req.request_id.is_empty()).then_some(req.request_id),
    })
}

fn template(t: pb::Template) -> Result<Template, Error> {
    let nodes = t
        .nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            Ok(Node {
                id: n.id,
                node_type: n.r#type,
                name: n.name,
                data: n
                    .data
                    .map(|d| json_object(&format!("template.nodes[{i}].data"), d))
                    .transpose()?,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Template {
        nodes,
        edges: t
            .edges
            .into_iter()
            .map(|e| Edge {
                source: e.source,
                target: e.target,
            })
            .collect(),
        positions: t
            .positions
            .into_iter()
            .map(|(id, p)| (id, Position { x: p.x, y: p.y }))
            .collect(),
        width: t.width,
        height: t.height,
        action_types: t.action_types,
    })
}

/// An UpdateAction request as a validated [`ActionUpdate`].
pub fn action_update(req: &pb::UpdateActionRequest) -> Result<ActionUpdate, Error> {
    bounded(
        "node_id",
        "INVALID_NODE_ID",
        &req.node_id,
        1,
        MAX_NODE_ID_CHARS,
    )?;
    let status = action_status(req.status).ok_or_else(|| {
        Error::invalid(
            "status",
            "INVALID_STATUS",
            "status must be an ActionStatus other than ACTION_STATUS_UNSPECIFIED",
        )
    })?;
    let scheduled_at = match (status, req.scheduled_at) {
        (ActionStatus::Scheduled, Some(ts)) => Some(timestamp("scheduled_at", ts)?),
        (ActionStatus::Scheduled, None) => {
            return Err(Error::invalid(
                "scheduled_at",
                "MISSING_SCHEDULED_AT",
                "scheduled_at is required with ACTION_STATUS_SCHEDULED",
            ));
        }
        (_, Some(_)) => {
            return Err(Error::invalid(
                "scheduled_at",
                "UNEXPECTED_SCHEDULED_AT",
                "scheduled_at is only taken with ACTION_STATUS_SCHEDULED",
            ));
        }
        (_, None) => None,
    };
    let failure_note = match (status, req.failure_note.as_str()) {
        (ActionStatus::Failed, "") => {
            return Err(Error::invalid(
                "failure_note",
                "MISSING_FAILURE_NOTE",
                "failure_note is required with ACTION_STATUS_FAILED",
            ));
        }
        (ActionStatus::Failed, note) => {
            bounded(
                "failure_note",
                "INVALID_FAILURE_NOTE",
                note,
                1,
                MAX_FAILURE_NOTE_CHARS,
            )?;
            Some(note.to_owned())
        }
        (_, "") => None,
        (_, _) => {
            return Err(Error::invalid(
                "failure_note",
                "UNEXPECTED_FAILURE_NOTE",
                "failure_note is only taken with ACTION_STATUS_FAILED",
            ));
        }
    };
    let expected_revision = match req.expected_revision {
        0 => None,
        r if r < 0 => {
            return Err(Error::invalid(
                "expected_revision",
                "INVALID_EXPECTED_REVISION",
                "expected_revision is a positive revision, or 0 for none",
            ));
        }
        r => Some(r),
    };
    Ok(ActionUpdate {
        node_id: req.node_id.clone(),
        status,
        scheduled_at,
        failure_note,
        expected_revision,
    })
}

/// A watch's `since_revision`: 0 or a positive revision.
pub fn since_revision(raw: i64) -> Result<i64, Error> {
    if raw < 0 {
        return Err(Error::invalid(
            "since_revision",
            "INVALID_SINCE_REVISION",
            "since_revision is a revision the caller has seen, or 0",
        ));
    }
    Ok(raw)
}

/// A stop reason, bounded.
pub fn stop_reason(reason: &str) -> Result<(), Error> {
    bounded("reason", "INVALID_REASON", reason, 0, MAX_REASON_CHARS)
}

/// A ListExecutions request as a validated [`ListRequest`].
pub fn list_request(req: pb::ListExecutionsRequest) -> Result<ListRequest, Error> {
    let page_size = page_size(req.page_size).ok_or_else(|| {
        Error::invalid(
            "page_size",
            "INVALID_PAGE_SIZE",
            "page_size must not be negative",
        )
    })?;
    let order = SortOrder::parse(&req.order_by).ok_or_else(|| {
        Error::invalid(
            "order_by",
            "INVALID_ORDER_BY",
            "order_by is \"created_at desc\" or \"created_at asc\"",
        )
    })?;
    let mut statuses = req
        .statuses
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            execution_status(*raw).ok_or_else(|| {
                Error::invalid(
                    format!("statuses[{i}]"),
                    "INVALID_STATUS",
                    "statuses must be ExecutionStatus values other than EXECUTION_STATUS_UNSPECIFIED",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    statuses.sort();
    statuses.dedup();
    let created_after = req
        .created_after
        .map(|ts| timestamp("created_after", ts))
        .transpose()?;
    let created_before = req
        .created_before
        .map(|ts| timestamp("created_before", ts))
        .transpose()?;
    if let (Some(after), Some(before)) = (created_after, created_before)
        && after >= before
    {
        return Err(Error::invalid(
            "created_before",
            "INVALID_TIME_RANGE",
            "created_before must be later than created_after",
        ));
    }
    let mut execution_data = BTreeMap::new();
    if let Some(data) = req.execution_data {
        for (key, value) in json_object("execution_data", data)? {
            if key.is_empty() || key.contains('"') || key.chars().count() > MAX_KEY_CHARS {
                return Err(Error::invalid(
                    "execution_data",
                    "INVALID_EXECUTION_DATA_FILTER",
                    "execution_data filter keys have 1 to 256 characters and no double quote",
                ));
            }
            execution_data.insert(key, value);
        }
    }
    workflow_and_tenant(&req.key, 0, &req.user_key)?;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(ListRequest {
        filter: ListFilter {
            statuses,
            key: non_empty(req.key),
            user_key: non_empty(req.user_key),
            created_after,
            created_before,
            execution_data,
        },
        order,
        page_size,
        page_token: req.page_token,
        view: view(req.view, View::Basic)?,
    })
}

/// The domain status of a wire status; `None` for UNSPECIFIED or an unknown number.
fn action_status(raw: i32) -> Option<ActionStatus> {
    Some(match pb::ActionStatus::try_from(raw).ok()? {
        pb::ActionStatus::Unspecified => return None,
        pb::ActionStatus::Idle => ActionStatus::Idle,
        pb::ActionStatus::Scheduled => ActionStatus::Scheduled,
        pb::ActionStatus::Running => ActionStatus::Running,
        pb::ActionStatus::Completed => ActionStatus::Completed,
        pb::ActionStatus::Failed => ActionStatus::Failed,
        pb::ActionStatus::Stopped => ActionStatus::Stopped,
    })
}

/// The domain status of a wire status; `None` for UNSPECIFIED or an unknown number.
fn execution_status(raw: i32) -> Option<ExecutionStatus> {
    Some(match pb::ExecutionStatus::try_from(raw).ok()? {
        pb::ExecutionStatus::Unspecified => return None,
        pb::ExecutionStatus::Running => ExecutionStatus::Running,
        pb::ExecutionStatus::Completed => ExecutionStatus::Completed,
        pb::ExecutionStatus::Failed => ExecutionStatus::Failed,
        pb::ExecutionStatus::Stopped => ExecutionStatus::Stopped,
    })
}
