//! What the client commands print: tables for people, canonical proto3 JSON for scripts,
//! errors with their reason and field violations, and the shared names and time formats.

use chrono::TimeZone;
use chrono_tz::Tz;
use comfy_table::{Table, presets};
use tonic_types::StatusExt;

use crate::proto::v1 as pb;

/// How a command prints what it got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable text and tables.
    #[default]
    Table,
    /// Canonical proto3 JSON, as grpcurl prints it.
    Json,
}

/// A table without borders, columns separated by spaces, as kubectl prints them (no
/// header line when `header` is empty).
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    table
}

/// The table's text: columns two spaces apart, no trailing spaces, a newline after
/// each line.
pub fn render(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

/// Prints `message` as grpcurl does (indented canonical proto3 JSON); false when it
/// could not be printed (said on stderr).
pub fn print_json<M: prost::Message + prost::Name>(message: &M) -> bool {
    match super::json::pretty(message) {
        Ok(text) => {
            println!("{text}");
            true
        }
        Err(err) => {
            eprintln!("error: {err}");
            false
        }
    }
}

/// An error answered by the server, for people: code, message, reason and the fields
/// it names, e.g. `error: NotFound: execution "zzzzz" not found (EXECUTION_NOT_FOUND)`.
pub fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = status.get_details_error_info() {
        text.push_str(&format!(" ({})", info.reason));
    }
    if let Some(bad) = status.get_details_bad_request() {
        // Each field the server names, unless the message already says it all.
        for violation in bad.field_violations {
            if status.message().contains(&violation.description) {
                continue;
            }
            text.push_str(&format!(
                "\n  field {}: {}",
                violation.field, violation.description
            ));
        }
    }
    text
}

/// Prints a server's error on stderr.
pub fn print_status(context: &str, status: &tonic::Status) {
    if context.is_empty() {
        eprintln!("error: {}", describe(status));
    } else {
        eprintln!("error: {context}: {}", describe(status));
    }
}

/// `RUNNING` for `EXECUTION_STATUS_RUNNING`.
pub fn execution_status(status: pb::ExecutionStatus) -> &'static str {
    status.as_str_name().trim_start_matches("EXECUTION_STATUS_")
}

/// `COMPLETED` for `ACTION_STATUS_COMPLETED`.
pub fn action_status(status: pb::ActionStatus) -> &'static str {
    status.as_str_name().trim_start_matches("ACTION_STATUS_")
}

/// Whether the status never changes again.
pub fn is_terminal(status: pb::ExecutionStatus) -> bool {
    matches!(
        status,
        pb::ExecutionStatus::Completed | pb::ExecutionStatus::Failed | pb::ExecutionStatus::Stopped
    )
}

/// A timestamp in `zone` (UTC when none): `2025-10-05 23:49:44 EDT`.
pub fn timestamp(at: &prost_types::Timestamp, zone: Option<Tz>) -> String {
    let zone = zone.unwrap_or(Tz::UTC);
    let nanos = u32::try_from(at.nanos).unwrap_or_default();
    match zone.timestamp_opt(at.seconds, nanos).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => at.to_string(),
    }
}

/// The counts of an execution on one line: `2/5 completed, 1 running, 2 idle`, zero
/// counts left out (but `completed` always there).
pub fn counts(e: &pb::Execution) -> String {
    let mut parts = vec![format!(
        "{}/{} completed",
        e.completed_actions_count, e.actions_count
    )];
    for (n, name) in [
        (e.scheduled_actions_count, "scheduled"),
        (e.running_actions_count, "running"),
        (e.idle_actions_count, "idle"),
        (e.failed_actions_count, "failed"),
        (e.stopped_actions_count, "stopped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_read_well() {
        let e = pb::Execution {
            actions_count: 5,
            completed_actions_count: 1,
            stopped_actions_count: 4,
            ..Default::default()
        };
        assert_eq!(counts(&e), "1/5 completed, 4 stopped");
        let at = prost_types::Timestamp {
            seconds: 1_759_722_584,
            nanos: 0,
        };
        assert_eq!(timestamp(&at, None), "2025-10-06 03:49:44 UTC");
        assert_eq!(
            timestamp(&at, Some(chrono_tz::America::New_York)),
            "2025-10-05 23:49:44 EDT"
        );
    }

    #[test]
    fn errors_name_their_reason_and_fields() {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut details = ErrorDetails::with_error_info("INVALID_ID", "executions", []);
        details.add_bad_request_violation("id", "not a UUID nor a hashid");
        let status =
            tonic::Status::with_error_details(tonic::Code::InvalidArgument, "bad id", details);
        let text = describe(&status);
        assert!(
            text.starts_with("InvalidArgument: bad id (INVALID_ID)"),
            "{text}"
        );
        assert!(text.contains("field id: not a UUID nor a hashid"), "{text}");
    }
}
