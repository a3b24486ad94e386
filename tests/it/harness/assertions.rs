//! Assertions on error details, on stats, and on the invariants of a stored execution.

use executions::grpc::ERROR_DOMAIN;
use executions::proto::v1 as pb;
use tonic_types::StatusExt;

use super::{ActionStatus, ExecutionStatus};

/// The ErrorInfo reason of a status (empty when it has none).
pub fn error_reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Asserts a status's code and ErrorInfo reason (domain `executions`), and, when given,
/// the field its BadRequest violation names.
pub fn assert_error(status: &tonic::Status, code: tonic::Code, reason: &str, field: Option<&str>) {
    assert_eq!(status.code(), code, "code of {status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "reason of {status:?}");
    assert_eq!(info.domain, ERROR_DOMAIN);
    if let Some(field) = field {
        let violations = &details
            .bad_request()
            .unwrap_or_else(|| panic!("no BadRequest in {status:?}"))
            .field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "no violation of {field} in {violations:?}"
        );
    }
    assert!(!status.message().is_empty());
}

/// Status of an action in an execution's stats.
pub fn action_status(execution: &pb::Execution, node_id: &str) -> ActionStatus {
    match execution.stats.get(node_id).and_then(|s| s.kind.as_ref()) {
        Some(pb::stat::Kind::Action(a)) => a.status(),
        other => panic!("no action stat for {node_id}: {other:?}"),
    }
}

/// Status of an edge in an execution's stats.
pub fn edge_status(execution: &pb::Execution, edge_id: &str) -> pb::EdgeStatus {
    match execution.stats.get(edge_id).and_then(|s| s.kind.as_ref()) {
        Some(pb::stat::Kind::Edge(e)) => e.status(),
        other => panic!("no edge stat for {edge_id}: {other:?}"),
    }
}

/// Checks the invariants every stored execution keeps: counts equal the tallies of its
/// stats and add up to `actions_count`; a STOPPED execution has no unfinished action.
pub fn assert_consistent(e: &pb::Execution) {
    let mut tally = std::collections::HashMap::new();
    for stat in e.stats.values() {
        if let Some(pb::stat::Kind::Action(a)) = &stat.kind {
            *tally.entry(a.status()).or_insert(0) += 1;
        }
    }
    let count = |s| *tally.get(&s).unwrap_or(&0);
    for (counted, status) in [
        (e.idle_actions_count, ActionStatus::Idle),
        (e.scheduled_actions_count, ActionStatus::Scheduled),
        (e.running_actions_count, ActionStatus::Running),
        (e.completed_actions_count, ActionStatus::Completed),
        (e.failed_actions_count, ActionStatus::Failed),
        (e.stopped_actions_count, ActionStatus::Stopped),
    ] {
        assert_eq!(counted, count(status), "{status:?} count of {}", e.id);
    }
    assert_eq!(
        e.actions_count,
        e.idle_actions_count
            + e.scheduled_actions_count
            + e.running_actions_count
            + e.completed_actions_count
            + e.failed_actions_count
            + e.stopped_actions_count,
        "counts of {} add up",
        e.id
    );
    if e.status() == ExecutionStatus::Stopped {
        assert_eq!(
            e.idle_actions_count + e.scheduled_actions_count + e.running_actions_count,
            0
        );
    }
}
