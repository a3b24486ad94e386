//! Whether every form an execution can take fits one gRPC message.
//!
//! An execution grows after it is created: actions get timestamps and failure notes, the
//! execution a stop reason. If its FULL form could outgrow the message limit, a later
//! write would commit and then fail to answer, and every FULL read and watch of it would
//! fail for good. So StartExecution measures the largest form the new execution can take
//! (every action with every timestamp and the longest failure note, the longest stop
//! reason, the widest numbers) and refuses it, before anything is written, when that
//! would not fit.

use chrono::{DateTime, Utc};
use prost::Message;

use super::from_proto::{MAX_FAILURE_NOTE_BYTES, MAX_REASON_CHARS, MAX_USER_KEY_CHARS};
use super::to_proto::Presentation;
use crate::domain::rules::{self, NewExecution};
use crate::domain::{ActionStatus, ExecutionId, ExecutionStatus, HashidCodec, View};
use crate::error::Error;

/// Bytes kept free for what depends on the reader rather than on the execution: the
/// zone's spelling of `created_at` and `created_at_string`, and the few fields a watch
/// event adds around the execution (kind, revision, `sent_at`).
const READER_SLACK_BYTES: usize = 256;
/// The gRPC frame header before each message.
const FRAME_HEADER_BYTES: usize = 5;

/// Refuses (INVALID_ARGUMENT, reason `EXECUTION_TOO_LARGE`) an execution whose largest
/// FULL form would not fit in `max_message_bytes`; otherwise answers what that form
/// leaves free: the bytes its actions' logs may take together (its log budget).
pub fn check_largest_form(
    new: &NewExecution,
    hashids: &HashidCodec,
    max_message_bytes: usize,
) -> Result<i64, Error> {
    let largest = largest_form_bytes(new, hashids);
    let room = max_message_bytes.saturating_sub(FRAME_HEADER_BYTES + READER_SLACK_BYTES);
    if largest <= room {
        // The `log` field's own tag and length grow from 2 bytes (empty) to at most 6.
        const LOG_FIELD_GROWTH: usize = 4;
        let spare = (room - largest).saturating_sub(LOG_FIELD_GROWTH);
        return Ok(i64::try_from(spare).unwrap_or(i64::MAX));
    }
    // Name what weighs most of what the caller controls.
    let data_bytes = new
        .execution_data
        .as_ref()
        .map_or(0, |d| d.to_string().len());
    let field = if data_bytes * 2 > largest {
        "execution_data"
    } else {
        "template"
    };
    Err(Error::invalid(
        field,
        "EXECUTION_TOO_LARGE",
        format!(
            "this execution could grow to {largest} bytes (every action with its timestamps \
             and a {MAX_FAILURE_NOTE_BYTES}-byte failure note), more than the {room} bytes \
             a message may hold here; make the template's node data or execution_data smaller"
        ),
    ))
}

/// Encoded size of the largest FULL form `new` can take.
fn largest_form_bytes(new: &NewExecution, hashids: &HashidCodec) -> usize {
    let far = DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_000).unwrap_or_default();
    let mut e = rules::create(new.clone(), ExecutionId::generate(), far);
    let actions = e.detail.actions.len() as i32;
    for action in e.detail.actions.values_mut() {
        action.status = ActionStatus::Failed;
        for at in [
            &mut action.scheduled_at,
            &mut action.started_at,
            &mut action.completed_at,
            &mut action.failed_at,
            &mut action.stopped_at,
        ] {
            *at = Some(far);
        }
        action.failure_note = Some("x".repeat(MAX_FAILURE_NOTE_BYTES));
    }
    let h = &mut e.header;
    if h.user_key.is_empty() {
        // The service fills in the caller's tenant.
        h.user_key = "x".repeat(4 * MAX_USER_KEY_CHARS);
    }
    h.seq = i64::MAX;
    h.revision = i64::MAX;
    h.status = ExecutionStatus::Stopped;
    // Up to 4 bytes of UTF-8 per character.
    h.stop_reason = Some("x".repeat(4 * MAX_REASON_CHARS));
    h.updated_at = far;
    let c = &mut h.counts;
    for count in [
        &mut c.idle,
        &mut c.scheduled,
        &mut c.running,
        &mut c.completed,
        &mut c.failed,
        &mut c.stopped,
    ] {
        *count = actions;
    }
    let out = Presentation {
        view: View::Full,
        zone: chrono_tz::UTC,
        hashids,
    };
    out.full_execution(&e).encoded_len()
}
