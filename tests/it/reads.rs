//! Start and Get: the shape of an execution, views, time zones, ids, idempotency, and the
//! health service.

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(
    start_returns_the_seed_shape,
    get_by_uuid_or_hashid_in_each_view_and_zone,
    request_id_returns_the_first_execution,
    health_reports_serving,
    gets_see_every_acknowledged_change,
);

/// A started execution carries every seed field: RUNNING, revision 1, every action IDLE,
/// edges from Start OPEN and the rest CLOSED, the template and data as given.
async fn start_returns_the_seed_shape(server: &TestServer) {
    let mut client = server.client.clone();
    let request = example("branching.json");
    let e = client
        .start_execution(request.clone())
        .await
        .unwrap()
        .into_inner();

    let id = uuid::Uuid::parse_str(&e.id).expect("id is a UUID");
    assert_eq!(id.get_version_num(), 7, "id is a UUIDv7");
    assert!(e.hashid.len() >= 5);
    assert!(
        e.hashid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(e.object, "execution");
    assert_eq!(e.status(), ExecutionStatus::Running);
    assert_eq!(e.revision, 1);
    assert_eq!(e.key, "employee_onboarding");
    assert_eq!(e.name, "Onboarding: Grace Hopper");
    assert_eq!(e.user_key, "main");
    assert_eq!(e.actions_count, 5);
    assert_eq!(e.idle_actions_count, 5);
    assert_eq!(e.stop_reason, "");
    assert_eq!(e.template, request.template);
    assert_eq!(e.execution_data, request.execution_data);
    assert_eq!(e.log, Some(prost_types::Struct::default()));
    for node in ["account", "laptop", "welcome", "workspace", "notify"] {
        assert_eq!(action_status(&e, node), ActionStatus::Idle);
    }
    assert_eq!(
        edge_status(&e, "start_of_workflow-account"),
        pb::EdgeStatus::Open
    );
    assert_eq!(
        edge_status(&e, "start_of_workflow-laptop"),
        pb::EdgeStatus::Open
    );
    assert_eq!(edge_status(&e, "account-welcome"), pb::EdgeStatus::Closed);
    assert_eq!(edge_status(&e, "laptop-notify"), pb::EdgeStatus::Closed);
    assert_eq!(e.stats.len(), 5 + 7, "one stat per action and per edge");
    let Some(pb::stat::Kind::Action(stat)) = &e.stats["account"].kind else {
        panic!("account is an action");
    };
    assert!(
        stat.scheduled_at.is_none() && stat.started_at.is_none() && stat.completed_at.is_none()
    );
    assert_eq!(e.created_at_utc, e.updated_at_utc);
    assert_consistent(&e);
    // Without data, execution_data is absent (null).
    let mut bare = example("linear.json");
    bare.execution_data = None;
    let e = client.start_execution(bare).await.unwrap().into_inner();
    assert_eq!(e.execution_data, None);
}

/// Get finds an execution by UUID and by hashid; BASIC leaves out template, stats, data
/// and log; times follow the requested zone.
async fn get_by_uuid_or_hashid_in_each_view_and_zone(server: &TestServer) {
    let mut client = server.client.clone();
    let started = start_example(&mut client, "linear.json").await;

    let by_id = get(&mut client, &started.id).await;
    let by_hashid = get(&mut client, &started.hashid).await;
    assert_eq!(by_id, started, "Get returns what Start returned");
    assert_eq!(by_hashid, started);

    let basic = client
        .get_execution(pb::GetExecutionRequest {
            id: started.hashid.clone(),
            view: ExecutionView::Basic as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(basic.template.is_none() && basic.stats.is_empty());
    assert!(basic.execution_data.is_none() && basic.log.is_none());
    assert_eq!(basic.revision, 1);
    assert_eq!(basic.actions_count, 4);
    assert_eq!(basic.idle_actions_count, 4);

    let ny = client
        .get_execution(pb::GetExecutionRequest {
            id: started.id.clone(),
            time_zone: "America/New_York".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let utc: chrono::DateTime<chrono::Utc> = ny.created_at_utc.parse().unwrap();
    let local = chrono::DateTime::parse_from_rfc3339(&ny.created_at).unwrap();
    assert_eq!(
        local, utc,
        "created_at and created_at_utc name the same instant"
    );
    assert!(ny.created_at_utc.ends_with('Z'));
    let offset = local.offset().local_minus_utc();
    assert!(
        offset == -4 * 3600 || offset == -5 * 3600,
        "New York offset, got {offset}"
    );
    assert!(
        ny.created_at_string.ends_with(" EST") || ny.created_at_string.ends_with(" EDT"),
        "{}",
        ny.created_at_string
    );
    let expected = local.format("%b %d, %Y %I:%M %P").to_string();
    assert!(
        ny.created_at_string.starts_with(&expected),
        "{}",
        ny.created_at_string
    );
    // The server's default zone is UTC.
    assert!(started.created_at.ends_with("+00:00"));
    assert!(started.created_at_string.ends_with(" UTC"));
}

/// The same request id (per tenant) returns the first execution, even when the calls race;
/// another tenant's same request id creates its own.
async fn request_id_returns_the_first_execution(server: &TestServer) {
    let mut request = example("linear.json");
    request.key = "idempotent".into();
    request.request_id = "req-42".into();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = server.new_client().await;
        let request = request.clone();
        calls.push(tokio::spawn(async move {
            client
                .start_execution(request)
                .await
                .unwrap()
                .into_inner()
                .id
        }));
    }
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    let mut client = server.client.clone();
    let again = client
        .start_execution(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, ids[0]);
    let mut other_tenant = request.clone();
    other_tenant.user_key = "acme".into();
    let other = client
        .start_execution(other_tenant)
        .await
        .unwrap()
        .into_inner();
    assert_ne!(other.id, ids[0]);
    assert_eq!(other.user_key, "acme");

    let listed = client
        .list_executions(pb::ListExecutionsRequest {
            key: "idempotent".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.executions.len(),
        2,
        "one per tenant, never a second one"
    );
}

/// grpc.health.v1 answers SERVING for the server and for the API service.
async fn health_reports_serving(server: &TestServer) {
    assert_health(server, ServingStatus::Serving).await;
}

/// Strong consistency under a stream of changes: while one worker moves each action of a
/// chain SCHEDULED → RUNNING → COMPLETED, four readers Get it (FULL, by UUID and by
/// hashid, with and without a deadline). Each answer is at least the revision of the
/// last change acknowledged before the Get was sent, never older than one the same
/// reader already saw, and its actions are those of its revision (revision − 1 steps).
async fn gets_see_every_acknowledged_change(server: &TestServer) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    const ACTIONS: usize = 30;
    let mut client = server.client.clone();
    let e = start(&mut client, "consistent", chain(ACTIONS)).await;
    let acknowledged = Arc::new(AtomicI64::new(e.revision));
    let writing = Arc::new(AtomicBool::new(true));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (mut client, acknowledged, writing) =
            (server.client.clone(), acknowledged.clone(), writing.clone());
        let target = if r % 2 == 0 {
            e.id.clone()
        } else {
            e.hashid.clone()
        };
        readers.push(tokio::spawn(async move {
            let (mut gets, mut last) = (0, 0);
            while writing.load(Ordering::SeqCst) {
                let floor = acknowledged.load(Ordering::SeqCst);
                let mut request = tonic::Request::new(get_request(&target));
                if r >= 2 {
                    request.set_timeout(std::time::Duration::from_secs(10));
                }
                let got = client.get_execution(request).await.unwrap().into_inner();
                assert!(
                    got.revision >= floor,
                    "reader {r}: revision {} after {floor} was acknowledged",
                    got.revision
                );
                assert!(
                    got.revision >= last,
                    "reader {r}: {} after {last}",
                    got.revision
                );
                let steps: i64 = got
                    .stats
                    .values()
                    .filter_map(|stat| match &stat.kind {
                        Some(pb::stat::Kind::Action(a)) => Some(a.status()),
                        _ => None,
                    })
                    .map(|status| match status {
                        ActionStatus::Scheduled => 1,
                        ActionStatus::Running => 2,
                        ActionStatus::Completed => 3,
                        _ => 0,
                    })
                    .sum();
                assert_eq!(
                    steps,
                    got.revision - 1,
                    "reader {r}: actions of another revision"
                );
                last = got.revision;
                gets += 1;
            }
            gets
        }));
    }
    for i in 1..=ACTIONS {
        let node = format!("a{i}");
        for status in [
            ActionStatus::Scheduled,
            ActionStatus::Running,
            ActionStatus::Completed,
        ] {
            let changed = update(&mut client, &e.id, &node, status).await;
            acknowledged.store(changed.revision, Ordering::SeqCst);
        }
    }
    writing.store(false, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "every reader read");
    }
    let last = get(&mut client, &e.id).await;
    assert_eq!(last.revision, 1 + 3 * ACTIONS as i64);
    assert_eq!(last.status, pb::ExecutionStatus::Completed as i32);
}
