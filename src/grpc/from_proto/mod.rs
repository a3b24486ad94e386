//! Requests -> domain: every field is checked here, and a bad one becomes
//! INVALID_ARGUMENT naming it, before anything is read or written. One file per request
//! kind; the well-known types and enums every request shares are checked in
//! [`well_known`].

mod fleet;
mod list;
mod start;
mod update;
mod well_known;

use chrono_tz::Tz;

pub use fleet::{events_request, stop_request};
pub use list::{count_filter, feed_request, list_request};
pub use start::new_execution;
pub use update::action_update;
pub use well_known::{MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS, view};

use crate::domain::{ExecutionRef, HashidCodec, quoted, time};
use crate::error::Error;

/// Longest workflow key, execution name or node id reference, in characters.
pub(super) const MAX_KEY_CHARS: usize = 256;
/// Longest tenant key or request id, in characters.
pub const MAX_USER_KEY_CHARS: usize = 128;
/// Longest stop reason, in characters.
pub const MAX_REASON_CHARS: usize = 1_024;
/// Longest failure note, in bytes of UTF-8. Every action may fail with one, and the
/// largest FULL form of an execution must fit a message (see `grpc::size`), so this is
/// kept small: 1,000 such notes take about 1 MiB.
pub const MAX_FAILURE_NOTE_BYTES: usize = 1_024;
/// Largest `execution_data`, as JSON.
pub const MAX_EXECUTION_DATA_BYTES: usize = 1 << 20;

/// Reads an execution reference (UUID or hashid) from `field`.
pub fn execution_ref(hashids: &HashidCodec, field: &str, raw: &str) -> Result<ExecutionRef, Error> {
    hashids
        .parse_ref(raw)
        .map_err(|e| Error::invalid(field, "INVALID_ID", format!("{field}: {e}")))
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
            format!(
                "unknown time zone {}; use an IANA name such as America/New_York",
                quoted(raw)
            ),
        )
    })
}

/// A string field: no NUL character, and `min` to `max` characters.
pub(super) fn bounded(
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

/// A string field of at most `max` bytes of UTF-8, at least `min`, with no NUL character.
pub(super) fn bounded_bytes(
    field: &str,
    reason: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), Error> {
    bounded(field, reason, value, min, usize::MAX)?;
    let bytes = value.len();
    if bytes > max {
        return Err(Error::invalid(
            field,
            reason,
            format!("{field} must have at most {max} bytes of UTF-8, got {bytes}"),
        ));
    }
    Ok(())
}

/// A workflow `key` (at least `min_key_chars` long) and a tenant `user_key`, as Start
/// takes them and List filters on them.
pub(super) fn workflow_and_tenant(
    key: &str,
    min_key_chars: usize,
    user_key: &str,
) -> Result<(), Error> {
    bounded("key", "INVALID_KEY", key, min_key_chars, MAX_KEY_CHARS)?;
    self::user_key(user_key)
}

/// An idempotency key (`request_id`: at most 128 characters, no NUL); `None` when empty.
pub(super) fn request_id(raw: String) -> Result<Option<String>, Error> {
    bounded(
        "request_id",
        "INVALID_REQUEST_ID",
        &raw,
        0,
        MAX_USER_KEY_CHARS,
    )?;
    Ok((!raw.is_empty()).then_some(raw))
}

/// A tenant key (`user_key`: at most 128 characters, no NUL; empty: none named).
pub(super) fn user_key(raw: &str) -> Result<(), Error> {
    bounded("user_key", "INVALID_USER_KEY", raw, 0, MAX_USER_KEY_CHARS)
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

/// Longest stop event name, in characters.
pub const MAX_STOP_EVENT_CHARS: usize = 128;

/// A stop event name: 1 to 128 characters, none of them whitespace or control characters.
pub(super) fn stop_event(field: &str, value: &str) -> Result<(), Error> {
    bounded(field, "INVALID_STOP_EVENT", value, 1, MAX_STOP_EVENT_CHARS)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "INVALID_STOP_EVENT",
            format!(
                "{field} {} contains whitespace or a control character",
                quoted(value)
            ),
        ));
    }
    Ok(())
}
