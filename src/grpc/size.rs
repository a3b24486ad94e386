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
use prost::encoding::{encoded_len_varint, key_len};

use super::from_proto::{
    MAX_FAILURE_NOTE_BYTES, MAX_REASON_CHARS, MAX_TIMESTAMP_SECONDS, MAX_USER_KEY_CHARS,
    MIN_TIMESTAMP_SECONDS,
};
use super::structs::struct_encoded_len;
use super::to_proto::{self, Presentation};
use crate::domain::rules::NewExecution;
use crate::domain::{
    ActionState, ActionStatus, Counts, EdgeStatus, Execution, ExecutionId, ExecutionStatus,
    HashidCodec, Header, Template, View,
};
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

/// Encoded size of the largest FULL form `new` can take, counted without building it: a
/// message's size is the sum of its fields' sizes, so the header fields (built, as they
/// are few) and each FULL field are counted apart. The `tests` below compare it with the
/// largest form built and encoded.
fn largest_form_bytes(new: &NewExecution, hashids: &HashidCodec) -> usize {
    let template = &new.template;
    let actions = template.action_ids().count();
    let header = largest_header(new, i32::try_from(actions).unwrap_or(i32::MAX));
    let out = Presentation {
        view: View::Full,
        zone: chrono_tz::UTC,
        hashids,
    };
    let header_bytes = out
        .execution(&Execution {
            header,
            detail: None,
        })
        .encoded_len();
    // The FULL fields of `pb::Execution`, by tag.
    let data_bytes = new
        .execution_data
        .as_ref()
        .and_then(|d| d.as_object())
        .map_or(0, |d| delimited_len(7, struct_encoded_len(d)));
    // The `log` Struct, empty: its logs take the log budget this check answers.
    let log_bytes = delimited_len(12, 0);
    let stop_events_bytes: usize = new
        .stop_events
        .iter()
        .map(|e| delimited_len(25, e.len()))
        .sum();
    let template_bytes = delimited_len(19, template_encoded_len(template));
    header_bytes
        + data_bytes
        + log_bytes
        + stop_events_bytes
        + template_bytes
        + stats_bytes(template)
}

/// The header of `new`'s largest form: the widest numbers, the longest stop reason and
/// tenant, every action counted in every status.
fn largest_header(new: &NewExecution, actions: i32) -> Header {
    let user_key = if new.user_key.is_empty() {
        // The service fills in the caller's tenant.
        "x".repeat(4 * MAX_USER_KEY_CHARS)
    } else {
        new.user_key.clone()
    };
    Header {
        id: ExecutionId::generate(),
        seq: i64::MAX,
        user_key,
        key: new.key.clone(),
        name: new.name.clone(),
        status: ExecutionStatus::Stopped,
        // Up to 4 bytes of UTF-8 per character.
        stop_reason: Some("x".repeat(4 * MAX_REASON_CHARS)),
        revision: i64::MAX,
        counts: Counts {
            idle: actions,
            scheduled: actions,
            running: actions,
            completed: actions,
            failed: actions,
            stopped: actions,
        },
        created_at: far_future(),
        updated_at: far_future(),
    }
}

/// The latest time a Timestamp holds with the most digits: the widest of the times the
/// server's clock gives (`created_at`, `started_at`, ...).
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(MAX_TIMESTAMP_SECONDS, 999_999_000).unwrap_or_default()
}

/// The widest time a caller may give (`scheduled_at`): any time before 1970 has negative
/// `seconds`, which take 10 bytes on the wire, more than any later time.
fn widest_given_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(MIN_TIMESTAMP_SECONDS, 999_999_000).unwrap_or_default()
}

/// Bytes of `Execution.stats` at its largest: each action failed, with every timestamp
/// and the longest failure note (one size for all), each edge with its status.
fn stats_bytes(template: &Template) -> usize {
    let largest_action = ActionState {
        status: ActionStatus::Failed,
        scheduled_at: Some(widest_given_time()),
        started_at: Some(far_future()),
        completed_at: Some(far_future()),
        failed_at: Some(far_future()),
        stopped_at: Some(far_future()),
        failure_note: Some("x".repeat(MAX_FAILURE_NOTE_BYTES)),
        log: None,
    };
    let action_stat = to_proto::action_stat_entry(&largest_action).encoded_len();
    // Open or closed, an edge's status is one byte.
    let edge_stat = to_proto::edge_stat_entry(EdgeStatus::Open).encoded_len();
    let actions: usize = template
        .action_ids()
        .map(|id| map_entry_len(16, id, Some(action_stat)))
        .sum();
    let edges: usize = template
        .edges
        .iter()
        .map(|edge| map_entry_len(16, &edge.id(), Some(edge_stat)))
        .sum();
    actions + edges
}

/// Bytes of `to_proto::template(t)` encoded (without its own tag and length).
fn template_encoded_len(t: &Template) -> usize {
    let text = |tag, s: &str| {
        if s.is_empty() {
            0
        } else {
            delimited_len(tag, s.len())
        }
    };
    let double = |tag, x: f64| if x != 0.0 { key_len(tag) + 8 } else { 0 };
    let nodes: usize = t
        .nodes
        .iter()
        .map(|n| {
            let data = n
                .data
                .as_ref()
                .map_or(0, |d| delimited_len(4, struct_encoded_len(d)));
            let node = text(1, &n.id) + text(2, &n.node_type) + text(3, &n.name) + data;
            delimited_len(1, node)
        })
        .sum();
    let edges: usize = t
        .edges
        .iter()
        .map(|e| delimited_len(2, text(1, &e.source) + text(2, &e.target)))
        .sum();
    let positions: usize = t
        .positions
        .iter()
        .map(|(id, p)| {
            // A position at 0, 0 is the default message: its entry leaves it out.
            let at_origin = p.x == 0.0 && p.y == 0.0;
            map_entry_len(3, id, (!at_origin).then(|| double(1, p.x) + double(2, p.y)))
        })
        .sum();
    let action_types: usize = t
        .action_types
        .iter()
        .map(|a| delimited_len(6, a.len()))
        .sum();
    nodes + edges + positions + double(4, t.width) + double(5, t.height) + action_types
}

/// Bytes of a length-delimited field (a message, a string) of `len` bytes under `tag`.
pub(super) fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Bytes of one entry `key` → a message of `value_len` bytes of a map field under `tag`,
/// as prost writes it: the key and the value are left out of the entry when they are
/// their defaults (an empty string; `None` for a default message).
pub(super) fn map_entry_len(tag: u32, key: &str, value_len: Option<usize>) -> usize {
    let key_bytes = if key.is_empty() {
        0
    } else {
        delimited_len(1, key.len())
    };
    let entry = key_bytes + value_len.map_or(0, |v| delimited_len(2, v));
    delimited_len(tag, entry)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::domain::Position;
    use crate::domain::rules;
    use crate::domain::template::tests::{diamond, edge, node};

    /// The largest form built: every action failed with every timestamp and the longest
    /// note, the longest stop reason and tenant, the widest numbers; then encoded.
    fn largest_form_built(new: &NewExecution, hashids: &HashidCodec) -> usize {
        let mut e = rules::create(new.clone(), ExecutionId::generate(), far_future());
        let actions = e.detail.actions.len() as i32;
        for action in e.detail.actions.values_mut() {
            action.status = ActionStatus::Failed;
            action.scheduled_at = Some(widest_given_time());
            for at in [
                &mut action.started_at,
                &mut action.completed_at,
                &mut action.failed_at,
                &mut action.stopped_at,
            ] {
                *at = Some(far_future());
            }
            action.failure_note = Some("x".repeat(MAX_FAILURE_NOTE_BYTES));
        }
        e.header = largest_header(new, actions);
        let out = Presentation {
            view: View::Full,
            zone: chrono_tz::UTC,
            hashids,
        };
        out.full_execution(&e).encoded_len()
    }

    fn new_execution(template: crate::domain::Template) -> NewExecution {
        template.validate().expect("a valid template");
        NewExecution {
            key: "k".into(),
            name: "n".into(),
            template: Arc::new(template),
            execution_data: None,
            user_key: String::new(),
            request_id: None,
            stop_events: Vec::new(),
            log_budget: 0,
        }
    }

    /// A fork/join of `n` actions with node data, positions and a layout.
    fn wide(n: usize) -> crate::domain::Template {
        let mut t = crate::domain::Template {
            nodes: vec![node("start", crate::domain::template::START_NODE_TYPE)],
            ..Default::default()
        };
        for i in 0..n {
            let id = format!("action_{i}");
            let mut action = node(&id, "Http");
            action.data = json!({"url": format!("https://example.com/{i}"), "retries": i,
                "headers": {"accept": "application/json"}, "tags": ["a", null, true, 1.5]})
            .as_object()
            .cloned();
            t.nodes.push(action);
            t.edges.push(edge("start", &id));
            t.positions.insert(
                id,
                Position {
                    x: i as f64 * 10.0,
                    y: 0.0,
                },
            );
        }
        t.width = 800.0;
        t.action_types = vec!["Http".into()];
        t
    }

    /// The times the largest form counts are the widest each field can hold: any time a
    /// caller may give for `scheduled_at`, any time of the server's clock for the others.
    #[test]
    fn the_largest_form_counts_the_widest_times() {
        let len = |t: DateTime<Utc>| to_proto::timestamp(t).encoded_len();
        let given = [
            (MIN_TIMESTAMP_SECONDS, 0),
            (MIN_TIMESTAMP_SECONDS, 999_999_999),
            (-1, 999_999_999),
            (0, 0),
            (MAX_TIMESTAMP_SECONDS, 999_999_999),
        ];
        for (seconds, nanos) in given {
            let t = DateTime::<Utc>::from_timestamp(seconds, nanos).unwrap();
            // Stored (and answered) at µs precision.
            let t = crate::domain::time::to_stored_precision(t);
            assert!(len(t) <= len(widest_given_time()), "{t}");
        }
        let clock = [
            Utc::now(),
            DateTime::<Utc>::from_timestamp(4_102_444_800, 999_999_000).unwrap(),
        ];
        for t in clock {
            assert!(len(t) <= len(far_future()), "{t}");
        }
    }

    /// The size counted field by field is the size of the largest form built and
    /// encoded, for templates and requests of every shape the counting distinguishes.
    #[test]
    fn the_largest_form_is_counted_as_it_encodes() {
        let hashids = HashidCodec::default();
        let mut odd = diamond();
        odd.nodes[1].name = String::new();
        let renamed = "é".repeat(60);
        for end in odd
            .edges
            .iter_mut()
            .flat_map(|e| [&mut e.source, &mut e.target])
        {
            if *end == odd.nodes[2].id {
                *end = renamed.clone();
            }
        }
        odd.nodes[2].id = renamed;
        odd.positions
            .insert("start".into(), Position { x: 0.0, y: 0.0 });
        odd.positions
            .insert("a".into(), Position { x: -0.0, y: 3.5 });
        odd.positions
            .insert("c".into(), Position { x: 1e300, y: -0.0 });
        odd.height = -2.0;
        odd.width = -0.0;
        odd.nodes[3].data = Some(serde_json::Map::new());
        odd.action_types = vec![String::new(), "Email".into()];
        let mut cases = vec![
            new_execution(diamond()),
            new_execution(odd),
            new_execution(wide(1)),
            new_execution(wide(20)),
            new_execution(wide(300)),
        ];
        let mut with_everything = new_execution(wide(20));
        with_everything.user_key = "tenant".into();
        with_everything.stop_events = vec!["deploy".into(), String::new()];
        with_everything.execution_data =
            Some(json!({"customer": "c-1", "nested": {"l": [[], {}]}, "": null}));
        cases.push(with_everything);
        let mut large_data = new_execution(diamond());
        large_data.execution_data = Some(json!({"blob": "x".repeat(100_000)}));
        cases.push(large_data);
        for new in &cases {
            assert_eq!(
                largest_form_bytes(new, &hashids),
                largest_form_built(new, &hashids),
                "{:?}",
                new.template.nodes.len()
            );
        }
    }
}
