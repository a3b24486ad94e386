//! UpdateAction and StopExecution through the API: a whole run, failures, stops, no-ops
//! and the revision guard.

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use tonic::Code;

db_tests!(
    the_branching_example_runs_to_completion,
    a_failure_that_blocks_the_rest_fails_the_execution,
    stop_is_atomic_and_idempotent,
    reporting_the_same_status_again_changes_nothing,
    expected_revision_guards_an_update,
);

/// Driving every action of the branching example through SCHEDULED, RUNNING and COMPLETED
/// opens edges as sources complete, bumps the revision once per change, stamps times, and
/// completes the execution.
async fn the_branching_example_runs_to_completion(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start_example(&mut client, "branching.json").await;
    let id = e.hashid.clone();

    let e = update(&mut client, &id, "account", ActionStatus::Scheduled).await;
    assert_eq!(e.revision, 2);
    assert_eq!(e.scheduled_actions_count, 1);
    let Some(pb::stat::Kind::Action(stat)) = &e.stats["account"].kind else {
        panic!()
    };
    assert_eq!(
        stat.scheduled_at.as_ref().map(|t| t.seconds),
        Some(1_900_000_000)
    );

    let e = update(&mut client, &id, "account", ActionStatus::Running).await;
    assert_eq!(e.running_actions_count, 1);
    assert_eq!(edge_status(&e, "account-welcome"), pb::EdgeStatus::Closed);
    let e = update(&mut client, &id, "account", ActionStatus::Completed).await;
    assert_eq!(e.revision, 4);
    assert_eq!(edge_status(&e, "account-welcome"), pb::EdgeStatus::Open);
    assert_eq!(edge_status(&e, "account-workspace"), pb::EdgeStatus::Open);
    assert_eq!(edge_status(&e, "welcome-notify"), pb::EdgeStatus::Closed);
    let Some(pb::stat::Kind::Action(stat)) = &e.stats["account"].kind else {
        panic!()
    };
    assert!(stat.started_at.is_some() && stat.completed_at.is_some());
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&stat.completed_at) >= seconds(&stat.started_at));

    // notify joins welcome, workspace and laptop: not ready until one of them completes.
    let err = client
        .update_action(report(&id, "notify", ActionStatus::Running))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "ACTION_NOT_READY", None);

    for node in ["welcome", "workspace", "laptop"] {
        update(&mut client, &id, node, ActionStatus::Running).await;
        update(&mut client, &id, node, ActionStatus::Completed).await;
    }
    let e = update(&mut client, &id, "notify", ActionStatus::Running).await;
    assert_eq!(e.status(), ExecutionStatus::Running);
    let e = update(&mut client, &id, "notify", ActionStatus::Completed).await;
    assert_eq!(e.status(), ExecutionStatus::Completed);
    assert_eq!(e.completed_actions_count, 5);
    assert_eq!(e.revision, 1 + 3 + 3 * 2 + 2);
    assert!(e.stats.values().all(|s| match &s.kind {
        Some(pb::stat::Kind::Edge(edge)) => edge.status() == pb::EdgeStatus::Open,
        _ => true,
    }));
    assert_consistent(&e);
    assert_eq!(
        get(&mut client, &e.id).await,
        e,
        "what was returned is what is stored"
    );
}

/// A failed action whose successors can then never run fails the execution, keeps the
/// failure note, and leaves the unreachable actions IDLE.
async fn a_failure_that_blocks_the_rest_fails_the_execution(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start_example(&mut client, "linear.json").await;
    update(&mut client, &e.id, "validate", ActionStatus::Running).await;
    let e = update(&mut client, &e.id, "validate", ActionStatus::Failed).await;
    assert_eq!(e.status(), ExecutionStatus::Failed);
    assert_eq!(e.failed_actions_count, 1);
    assert_eq!(e.idle_actions_count, 3);
    let Some(pb::stat::Kind::Action(stat)) = &e.stats["validate"].kind else {
        panic!()
    };
    assert_eq!(stat.failure_note, "worker crashed");
    assert!(stat.failed_at.is_some());
    assert_consistent(&e);
}

/// Stop moves every unfinished action to STOPPED and the execution to STOPPED in one
/// change; finished actions and edges keep their state; a second stop changes nothing;
/// reports after a stop are refused.
async fn stop_is_atomic_and_idempotent(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start_example(&mut client, "branching.json").await;
    let id = e.id.clone();
    update(&mut client, &id, "account", ActionStatus::Running).await;
    update(&mut client, &id, "account", ActionStatus::Completed).await;
    update(&mut client, &id, "laptop", ActionStatus::Failed).await;
    update(&mut client, &id, "welcome", ActionStatus::Scheduled).await;
    let before = update(&mut client, &id, "workspace", ActionStatus::Running).await;

    let stopped = client
        .stop_execution(stop_request(&id, "customer cancelled"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.status(), ExecutionStatus::Stopped);
    assert_eq!(stopped.stop_reason, "customer cancelled");
    assert_eq!(stopped.revision, before.revision + 1, "one change");
    assert_eq!(action_status(&stopped, "account"), ActionStatus::Completed);
    assert_eq!(action_status(&stopped, "laptop"), ActionStatus::Failed);
    for node in ["welcome", "workspace", "notify"] {
        assert_eq!(
            action_status(&stopped, node),
            ActionStatus::Stopped,
            "{node}"
        );
        let Some(pb::stat::Kind::Action(stat)) = &stopped.stats[node].kind else {
            panic!()
        };
        assert!(stat.stopped_at.is_some(), "{node} has stopped_at");
    }
    assert_eq!(
        edge_status(&stopped, "account-welcome"),
        pb::EdgeStatus::Open
    );
    assert_eq!(
        edge_status(&stopped, "welcome-notify"),
        pb::EdgeStatus::Closed
    );
    assert_eq!(stopped.stopped_actions_count, 3);
    assert_consistent(&stopped);

    let again = client
        .stop_execution(stop_request(&stopped.hashid, "again"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again, stopped,
        "stopping a stopped execution returns it unchanged"
    );

    for (node, status) in [
        ("notify", ActionStatus::Running),
        ("account", ActionStatus::Completed),
        ("welcome", ActionStatus::Failed),
    ] {
        let err = client
            .update_action(report(&id, node, status))
            .await
            .unwrap_err();
        assert_error(&err, Code::FailedPrecondition, "EXECUTION_STOPPED", None);
    }
    assert_eq!(get(&mut client, &id).await, stopped);
}

/// Reporting the status an action already has is OK and keeps the revision.
async fn reporting_the_same_status_again_changes_nothing(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "noop", chain(2)).await;
    let first = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let second = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    assert_eq!(first, second);
    assert_eq!(second.revision, 2);
}

/// With `expected_revision`, an update applies only at that revision (ABORTED otherwise).
async fn expected_revision_guards_an_update(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "cas", chain(2)).await;
    let mut request = report(&e.id, "a1", ActionStatus::Running);
    request.expected_revision = 1;
    let e = client
        .update_action(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.revision, 2);
    let mut request = report(&e.id, "a1", ActionStatus::Completed);
    request.expected_revision = 1;
    let err = client.update_action(request).await.unwrap_err();
    assert_error(&err, Code::Aborted, "REVISION_MISMATCH", None);
    assert_eq!(get(&mut client, &e.id).await.revision, 2);
}
