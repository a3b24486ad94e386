//! UpdateAction: an action's progress report.

use prost::Message;

use super::well_known::{action_status, json_object, timestamp};
use super::{MAX_FAILURE_NOTE_BYTES, bounded, bounded_bytes};
use crate::domain::rules::ActionUpdate;
use crate::domain::template::MAX_NODE_ID_CHARS;
use crate::domain::{ActionLog, ActionStatus};
use crate::error::Error;
use crate::proto::v1 as pb;

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
            bounded_bytes(
                "failure_note",
                "INVALID_FAILURE_NOTE",
                note,
                1,
                MAX_FAILURE_NOTE_BYTES,
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
        log: req.log.clone().map(action_log).transpose()?,
    })
}

/// Largest log of one action, in bytes as encoded.
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// An action's log: a Struct of at most [`MAX_LOG_BYTES`] as encoded.
fn action_log(log: prost_types::Struct) -> Result<ActionLog, Error> {
    let bytes = log.encoded_len();
    if bytes > MAX_LOG_BYTES {
        return Err(Error::invalid(
            "log",
            "LOG_TOO_LARGE",
            format!("log is {bytes} bytes encoded; the limit is {MAX_LOG_BYTES}"),
        ));
    }
    Ok(ActionLog {
        value: serde_json::Value::Object(json_object("log", log)?),
        encoded_bytes: bytes as i64,
    })
}
