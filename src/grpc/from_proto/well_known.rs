//! The well-known types and enums of requests, each checked against its definition in
//! one place: Timestamps, Structs, and the enums (an unknown number is refused).

use chrono::{DateTime, Utc};

use super::super::structs::{UnstorableJson, struct_to_json};
use crate::domain::{ActionStatus, ExecutionStatus, View, time};
use crate::error::Error;
use crate::proto::v1 as pb;

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

/// Earliest `seconds` of a `google.protobuf.Timestamp`: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// Latest `seconds` of a `google.protobuf.Timestamp`: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// Deepest nesting of objects and lists in a Struct (the Struct itself is level 1).
pub const MAX_STRUCT_DEPTH: usize = 32;

/// A Timestamp as a time, at the stored precision. As `google/protobuf/timestamp.proto`
/// defines it: `seconds` from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, `nanos` from
/// 0 to 999,999,999 (anything else is refused, never normalised).
pub(super) fn timestamp(field: &str, ts: prost_types::Timestamp) -> Result<DateTime<Utc>, Error> {
    let in_range = (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds)
        && (0..=999_999_999).contains(&ts.nanos);
    in_range
        .then(|| DateTime::from_timestamp(ts.seconds, ts.nanos.unsigned_abs()))
        .flatten()
        .map(time::to_stored_precision)
        .ok_or_else(|| {
            Error::invalid(
                field,
                "INVALID_TIMESTAMP",
                format!(
                    "{field} is not a valid google.protobuf.Timestamp: seconds must be within \
                     0001-01-01 and 9999-12-31 ({MIN_TIMESTAMP_SECONDS} to \
                     {MAX_TIMESTAMP_SECONDS}) and nanos within 0 to 999999999; got seconds \
                     {}, nanos {}",
                    ts.seconds, ts.nanos
                ),
            )
        })
}

/// A Struct as a JSON object that both databases can store.
pub(super) fn json_object(
    field: &str,
    s: prost_types::Struct,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    struct_to_json(s, MAX_STRUCT_DEPTH).map_err(|err| {
        let what = match err {
            UnstorableJson::NonFiniteNumber => {
                "a number JSON cannot hold (NaN or infinite)".to_owned()
            }
            UnstorableJson::NulCharacter => "a NUL character".to_owned(),
            UnstorableJson::TooDeep => {
                format!("objects and lists nested deeper than {MAX_STRUCT_DEPTH} levels")
            }
        };
        Error::invalid(field, "INVALID_JSON", format!("{field} holds {what}"))
    })
}

/// The domain status of a wire status; `None` for UNSPECIFIED or an unknown number.
pub(super) fn action_status(raw: i32) -> Option<ActionStatus> {
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
pub(super) fn execution_status(raw: i32) -> Option<ExecutionStatus> {
    Some(match pb::ExecutionStatus::try_from(raw).ok()? {
        pb::ExecutionStatus::Unspecified => return None,
        pb::ExecutionStatus::Running => ExecutionStatus::Running,
        pb::ExecutionStatus::Completed => ExecutionStatus::Completed,
        pb::ExecutionStatus::Failed => ExecutionStatus::Failed,
        pb::ExecutionStatus::Stopped => ExecutionStatus::Stopped,
    })
}
