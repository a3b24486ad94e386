//! Unit tests of [`super`].

use super::*;
use crate::domain::template::tests::diamond;
use ActionStatus::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn new_diamond() -> FullExecution {
    create(
        NewExecution {
            key: "wf".into(),
            name: "Wf".into(),
            template: diamond().into(),
            execution_data: None,
            user_key: "main".into(),
            request_id: None,
            stop_events: Vec::new(),
            log_budget: 1_000,
        },
        ExecutionId::new(uuid::Uuid::now_v7()),
        t(0),
    )
}

fn report(node: &str, status: ActionStatus) -> ActionUpdate {
    ActionUpdate {
        node_id: node.into(),
        status,
        scheduled_at: (status == Scheduled).then(|| t(100)),
        failure_note: (status == Failed).then(|| "boom".into()),
        expected_revision: None,
        log: None,
    }
}

fn apply(
    e: &mut FullExecution,
    node: &str,
    status: ActionStatus,
) -> Result<Outcome, RuleViolation> {
    apply_update(e, &report(node, status), t(5))
}

/// Puts action `node` of a fresh diamond into `status` along an allowed path.
fn diamond_with(node: &str, status: ActionStatus) -> FullExecution {
    let mut e = new_diamond();
    let path: &[ActionStatus] = match status {
        Idle => &[],
        Scheduled => &[Scheduled],
        Running => &[Running],
        Completed => &[Running, Completed],
        Failed => &[Failed],
        Stopped => {
            stop(&mut e, "test", t(1)).unwrap();
            return e;
        }
    };
    for step in path {
        apply(&mut e, node, *step).unwrap();
    }
    e
}

#[test]
fn a_new_execution_is_running_at_revision_one_with_every_action_idle() {
    let e = new_diamond();
    assert_eq!(e.header.revision, 1);
    assert_eq!(e.header.status, ExecutionStatus::Running);
    assert_eq!(e.header.counts.idle, 3);
    assert_eq!(e.header.counts.total(), 3);
    assert!(e.detail.actions.values().all(|a| a.status == Idle));
}

#[test]
fn every_move_is_allowed_or_refused_as_the_table_says() {
    let allowed = [
        (Idle, Scheduled),
        (Idle, Running),
        (Scheduled, Running),
        (Running, Completed),
        (Idle, Failed),
        (Scheduled, Failed),
        (Running, Failed),
    ];
    for from in ActionStatus::ALL {
        for to in ActionStatus::ALL {
            assert_eq!(
                transition_allowed(from, to),
                allowed.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
}

#[test]
fn every_refused_move_changes_nothing() {
    for from in [Idle, Scheduled, Running, Completed, Failed] {
        for to in [Idle, Scheduled, Running, Completed, Failed, Stopped] {
            if from == to || transition_allowed(from, to) {
                continue;
            }
            let mut e = diamond_with("a", from);
            let before = e.clone();
            let err = apply(&mut e, "a", to).unwrap_err();
            // Moving "a" to FAILED finishes nothing (b can still run), so every refusal
            // here is the transition itself, not a finished execution.
            assert!(
                matches!(err, RuleViolation::InvalidTransition { .. }),
                "{from} -> {to}: {err:?}"
            );
            assert_eq!(e, before, "{from} -> {to} changed the execution");
        }
    }
}

#[test]
fn every_allowed_move_bumps_the_revision_once_and_stamps_the_time() {
    let mut e = new_diamond();
    let Outcome::Changed { actions, events } = apply(&mut e, "a", Scheduled).unwrap() else {
        panic!("a move changes the execution");
    };
    assert_eq!(actions, ["a"]);
    assert_eq!(
        events,
        [Event {
            revision: 2,
            occurred_at: t(5),
            kind: EventKind::ActionScheduled,
            node_id: Some("a".into()),
            from_status: Some(Idle),
            to_status: Some(Scheduled),
            scheduled_at: Some(t(100)),
            note: None,
        }]
    );
    assert_eq!(e.header.revision, 2);
    assert_eq!(e.detail.actions["a"].scheduled_at, Some(t(100)));
    apply(&mut e, "a", Running).unwrap();
    assert_eq!(e.detail.actions["a"].started_at, Some(t(5)));
    apply(&mut e, "a", Completed).unwrap();
    assert_eq!(e.detail.actions["a"].completed_at, Some(t(5)));
    apply(&mut e, "b", Failed).unwrap();
    assert_eq!(e.detail.actions["b"].failed_at, Some(t(5)));
    assert_eq!(e.detail.actions["b"].failure_note.as_deref(), Some("boom"));
    assert_eq!(e.header.revision, 5);
    assert_eq!(e.header.updated_at, t(5));
    assert_eq!(
        e.header.counts,
        Counts {
            idle: 1,
            completed: 1,
            failed: 1,
            ..Counts::default()
        }
    );
}

#[test]
fn the_same_status_again_is_a_no_op() {
    let mut e = diamond_with("a", Running);
    let before = e.clone();
    assert_eq!(apply(&mut e, "a", Running).unwrap(), Outcome::Unchanged);
    assert_eq!(e, before);
}

#[test]
fn an_action_runs_only_when_ready() {
    let mut e = new_diamond();
    for status in [Scheduled, Running] {
        assert_eq!(
            apply(&mut e, "c", status).unwrap_err(),
            RuleViolation::ActionNotReady {
                node_id: "c".into()
            }
        );
    }
    // Failing an idle action needs no readiness.
    apply(&mut e, "c", Failed).unwrap();
    let mut e = diamond_with("a", Completed);
    apply(&mut e, "c", Running).unwrap();
}

#[test]
fn completing_the_join_completes_the_execution() {
    let mut e = new_diamond();
    for node in ["a", "b", "c"] {
        apply(&mut e, node, Running).unwrap();
        apply(&mut e, node, Completed).unwrap();
    }
    assert_eq!(e.header.status, ExecutionStatus::Completed);
    assert_eq!(e.header.counts.completed, 3);
    assert_eq!(
        apply(&mut e, "a", Failed).unwrap_err(),
        RuleViolation::ExecutionFinished {
            status: ExecutionStatus::Completed
        }
    );
}

#[test]
fn failures_that_block_the_join_fail_the_execution() {
    let mut e = new_diamond();
    apply(&mut e, "a", Failed).unwrap();
    assert_eq!(e.header.status, ExecutionStatus::Running);
    apply(&mut e, "b", Failed).unwrap();
    assert_eq!(e.header.status, ExecutionStatus::Failed);
    assert_eq!(
        apply(&mut e, "c", Failed).unwrap_err(),
        RuleViolation::ExecutionFinished {
            status: ExecutionStatus::Failed
        }
    );
}

#[test]
fn a_stale_expected_revision_is_refused() {
    let mut e = new_diamond();
    let mut update = report("a", Running);
    update.expected_revision = Some(7);
    assert_eq!(
        apply_update(&mut e, &update, t(1)).unwrap_err(),
        RuleViolation::RevisionMismatch {
            expected: 7,
            current: 1
        }
    );
    update.expected_revision = Some(1);
    apply_update(&mut e, &update, t(1)).unwrap();
}

#[test]
fn unknown_and_start_nodes_are_not_actions() {
    let mut e = new_diamond();
    for node in ["ghost", "start"] {
        assert!(matches!(
            apply(&mut e, node, Running).unwrap_err(),
            RuleViolation::ActionNotFound { .. }
        ));
    }
}

#[test]
fn stop_stops_every_unfinished_action_and_keeps_the_rest() {
    let mut e = diamond_with("a", Completed);
    apply(&mut e, "b", Running).unwrap();
    let Outcome::Changed { actions, events } = stop(&mut e, "operator", t(9)).unwrap() else {
        panic!("a stop changes a running execution");
    };
    assert_eq!(actions, ["b", "c"]);
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.node_id.as_deref(), e.from_status))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::ActionStopped, Some("b"), Some(Running)),
            (EventKind::ActionStopped, Some("c"), Some(Idle)),
            (EventKind::ExecutionStopped, None, None),
        ]
    );
    assert_eq!(events[2].note.as_deref(), Some("operator"));
    let revision = e.header.revision;
    assert!(
        events
            .iter()
            .all(|e| e.revision == revision && e.occurred_at == t(9))
    );
    assert_eq!(e.header.status, ExecutionStatus::Stopped);
    assert_eq!(e.header.stop_reason.as_deref(), Some("operator"));
    assert_eq!(e.detail.actions["a"].status, Completed);
    assert_eq!(e.detail.actions["b"].stopped_at, Some(t(9)));
    assert_eq!(
        e.header.counts,
        Counts {
            completed: 1,
            stopped: 2,
            ..Counts::default()
        }
    );
    assert_eq!(e.header.revision, 5);
    // Still open: the edge from the completed action keeps its state.
    assert!(
        e.detail
            .edge_statuses()
            .contains(&("a-c".into(), crate::domain::EdgeStatus::Open))
    );

    let before = e.clone();
    assert_eq!(stop(&mut e, "again", t(10)).unwrap(), Outcome::Unchanged);
    assert_eq!(e, before, "stopping twice changes nothing");
    for status in [Running, Completed, Failed, Scheduled] {
        assert_eq!(
            apply(&mut e, "a", status).unwrap_err(),
            RuleViolation::ExecutionStopped
        );
    }
}

#[test]
fn a_finished_execution_cannot_be_stopped() {
    let mut e = new_diamond();
    apply(&mut e, "a", Failed).unwrap();
    apply(&mut e, "b", Failed).unwrap();
    assert_eq!(
        stop(&mut e, "late", t(9)).unwrap_err(),
        RuleViolation::ExecutionFinished {
            status: ExecutionStatus::Failed
        }
    );
}

fn log(bytes: i64) -> ActionLog {
    ActionLog {
        value: serde_json::json!({ "bytes": bytes }),
        encoded_bytes: bytes,
    }
}

#[test]
fn a_log_with_the_same_status_is_a_change_of_its_own() {
    let mut e = diamond_with("a", Running);
    let before = e.header.revision;
    let update = ActionUpdate {
        log: Some(log(10)),
        ..report("a", Running)
    };
    let Outcome::Changed { events, .. } = apply_update(&mut e, &update, t(7)).unwrap() else {
        panic!("a new log is a change");
    };
    assert_eq!(e.header.revision, before + 1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::ActionLogged);
    assert_eq!(e.detail.actions["a"].log, Some(log(10)));
    // The same log again changes nothing.
    assert_eq!(
        apply_update(&mut e, &update, t(8)).unwrap(),
        Outcome::Unchanged
    );
}

#[test]
fn logs_together_stay_within_the_budget() {
    let mut e = diamond_with("a", Running);
    // Budget 1,000: each entry costs its bytes + node id + 24.
    let report_log = |node: &str, bytes| ActionUpdate {
        log: Some(log(bytes)),
        ..report(node, Idle)
    };
    apply_update(&mut e, &report_log("b", 500), t(7)).unwrap();
    let err = apply_update(&mut e, &report_log("c", 500), t(8)).unwrap_err();
    assert!(
        matches!(err, RuleViolation::LogFull { budget: 1_000, .. }),
        "{err:?}"
    );
    // Replacing b's log frees what it took.
    apply_update(&mut e, &report_log("b", 100), t(9)).unwrap();
    apply_update(&mut e, &report_log("c", 500), t(10)).unwrap();
}

#[test]
fn a_finished_execution_takes_no_new_log() {
    let mut e = diamond_with("a", Completed);
    for node in ["b", "c"] {
        apply(&mut e, node, Running).unwrap();
        apply(&mut e, node, Completed).unwrap();
    }
    assert_eq!(e.header.status, ExecutionStatus::Completed);
    let update = ActionUpdate {
        log: Some(log(10)),
        ..report("a", Completed)
    };
    assert!(matches!(
        apply_update(&mut e, &update, t(9)),
        Err(RuleViolation::ExecutionFinished { .. })
    ));
}

#[test]
fn every_history_replays_to_the_state() {
    // A run to completion, and one stopped midway: replaying the events of every change
    // gives the state.
    for stop_midway in [false, true] {
        let mut e = new_diamond();
        let mut history = history::started(&e);
        let mut record = |outcome: Outcome| {
            if let Outcome::Changed { events, .. } = outcome {
                history.extend(events);
            }
        };
        record(apply(&mut e, "a", Scheduled).unwrap());
        record(apply(&mut e, "a", Running).unwrap());
        record(apply(&mut e, "b", Failed).unwrap());
        if stop_midway {
            record(stop(&mut e, "enough", t(20)).unwrap());
        } else {
            record(apply(&mut e, "a", Completed).unwrap());
            record(apply(&mut e, "c", Running).unwrap());
            record(apply(&mut e, "c", Completed).unwrap());
        }
        let replayed = history::replay(&history);
        assert_eq!(replayed.revision, e.header.revision);
        assert_eq!(replayed.status, Some(e.header.status));
        assert_eq!(replayed.stop_reason, e.header.stop_reason);
        for (node_id, action) in &e.detail.actions {
            let replayed = replayed.actions.get(node_id).cloned().unwrap_or_default();
            assert_eq!(&replayed, action, "{node_id}");
        }
    }
}
