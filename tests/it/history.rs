//! ListExecutionEvents, UpdateAction's `log`, and retention: every change leaves its
//! events, the history of random runs replays to their current state, pages in both
//! orders agree, logs land under their node id within the execution's budget, and
//! finished executions older than the retention go away with their history.

use std::collections::BTreeMap;
use std::time::Duration;

use executions::grpc::ServerConfig;
use executions::proto::v1 as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tonic::Code;

use crate::db_tests;
use crate::fleet::events_of;
use crate::harness::*;

db_tests!(
    random_histories_replay_to_the_current_state,
    history_pages_agree_in_both_orders
);
db_tests!(config = super::small_messages; logs_land_under_their_node_within_the_budget);

/// The state of one action as the history tells it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Replayed {
    status: i32,
    scheduled_at: Option<prost_types::Timestamp>,
    started_at: Option<prost_types::Timestamp>,
    completed_at: Option<prost_types::Timestamp>,
    failed_at: Option<prost_types::Timestamp>,
    stopped_at: Option<prost_types::Timestamp>,
    failure_note: String,
}

/// Replays a history oldest first: the execution's status, stop reason, revision, and
/// each action's state (IDLE for actions no event names).
fn replay(
    events: &[pb::ExecutionEvent],
    actions: impl Iterator<Item = String>,
) -> (i32, String, i64, BTreeMap<String, Replayed>) {
    use pb::ExecutionEventKind as K;
    let mut state: BTreeMap<String, Replayed> = actions
        .map(|id| {
            let idle = Replayed {
                status: ActionStatus::Idle as i32,
                ..Replayed::default()
            };
            (id, idle)
        })
        .collect();
    let (mut status, mut reason, mut revision) = (0, String::new(), 0);
    for e in events {
        assert!(e.revision >= revision, "events in revision order");
        revision = e.revision;
        let at = e.occurred_at;
        match K::try_from(e.kind).unwrap() {
            K::ExecutionStarted => status = ExecutionStatus::Running as i32,
            K::ExecutionCompleted => status = ExecutionStatus::Completed as i32,
            K::ExecutionFailed => status = ExecutionStatus::Failed as i32,
            K::ExecutionStopped => {
                status = ExecutionStatus::Stopped as i32;
                reason = e.stop_reason.clone();
            }
            K::ActionLogged | K::Unspecified => {}
            kind => {
                let action = state
                    .get_mut(&e.node_id)
                    .expect("an action of the template");
                assert_eq!(
                    action.status, e.from_status,
                    "from_status is the status before"
                );
                action.status = e.to_status;
                match kind {
                    K::ActionScheduled => action.scheduled_at = e.scheduled_at,
                    K::ActionStarted => action.started_at = at,
                    K::ActionCompleted => action.completed_at = at,
                    K::ActionFailed => {
                        action.failed_at = at;
                        action.failure_note = e.failure_note.clone();
                    }
                    _ => action.stopped_at = at,
                }
            }
        }
    }
    (status, reason, revision, state)
}

/// The state of each action as GetExecution tells it.
fn actions_of(e: &pb::Execution) -> BTreeMap<String, Replayed> {
    e.stats
        .iter()
        .filter_map(|(id, stat)| match &stat.kind {
            Some(pb::stat::Kind::Action(a)) => Some((
                id.clone(),
                Replayed {
                    status: a.status,
                    scheduled_at: a.scheduled_at,
                    started_at: a.started_at,
                    completed_at: a.completed_at,
                    failed_at: a.failed_at,
                    stopped_at: a.stopped_at,
                    failure_note: a.failure_note.clone(),
                },
            )),
            _ => None,
        })
        .collect()
}

/// Twelve executions of three shapes driven by random reports (allowed and refused
/// moves, logs, the same status again) and sometimes stopped: for each, replaying its
/// history gives exactly what GetExecution answers (status, stop reason, revision, every
/// action's status, times and note), and every revision from 1 to the current one has
/// its events.
async fn random_histories_replay_to_the_current_state(server: &TestServer) {
    use ActionStatus::*;
    let seed = std::env::var("HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261130);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = server.client.clone();
    for i in 0..12 {
        let template = match i % 3 {
            0 => chain(4),
            1 => fan(4),
            _ => example("branching.json").template.unwrap(),
        };
        let e = start(&mut client, &format!("random-{i}"), template).await;
        let nodes: Vec<String> = actions_of(&e).into_keys().collect();
        for _ in 0..rng.random_range(5..40) {
            if rng.random_ratio(1, 40) {
                let _ = client
                    .stop_execution(stop_request(&e.id, "random stop"))
                    .await;
                continue;
            }
            let node = &nodes[rng.random_range(0..nodes.len())];
            let status =
                [Scheduled, Running, Running, Completed, Completed, Failed][rng.random_range(0..6)];
            let mut request = report(&e.id, node, status);
            if rng.random_ratio(1, 4) {
                request.log = Some(to_struct(&json!({ "line": rng.random_range(0..3) })));
            }
            if let Err(status) = client.update_action(request).await {
                assert!(
                    matches!(status.code(), Code::FailedPrecondition),
                    "seed {seed}: {status:?}"
                );
            }
        }
        let now = get(&mut client, &e.id).await;
        let history = events_of(&mut client, &e.id).await;
        let (status, reason, revision, actions) = replay(&history, nodes.iter().cloned());
        assert_eq!(status, now.status, "seed {seed}, execution {i}: status");
        assert_eq!(
            reason, now.stop_reason,
            "seed {seed}, execution {i}: stop reason"
        );
        assert_eq!(
            revision, now.revision,
            "seed {seed}, execution {i}: revision"
        );
        assert_eq!(
            actions,
            actions_of(&now),
            "seed {seed}, execution {i}: actions"
        );
        let revisions: std::collections::BTreeSet<i64> =
            history.iter().map(|e| e.revision).collect();
        assert_eq!(
            revisions,
            (1..=now.revision).collect(),
            "seed {seed}: every revision has its events"
        );
        assert_eq!(
            history[0].kind,
            pb::ExecutionEventKind::ExecutionStarted as i32
        );
    }
}

/// Paging a history a few events at a time, oldest first and newest first, gives the
/// whole history (the same as one page) in both orders, and the last page has no token:
/// for a completed execution, and for a stopped one, whose stop (stored as one row, see
/// `db::history`) pages cut anywhere inside.
async fn history_pages_agree_in_both_orders(server: &TestServer) {
    use ActionStatus::*;
    let mut client = server.client.clone();
    let completed = start(&mut client, "paged", chain(3)).await;
    for node in ["a1", "a2", "a3"] {
        update(&mut client, &completed.id, node, Running).await;
        update(&mut client, &completed.id, node, Completed).await;
    }
    let whole = events_of(&mut client, &completed.id).await;
    // Started, 3 × (started, completed), and the completion of the execution.
    assert_eq!(whole.len(), 8);
    assert_eq!(
        whole[7].kind,
        pb::ExecutionEventKind::ExecutionCompleted as i32
    );
    assert_eq!(
        whole[6].revision, whole[7].revision,
        "one change, two events"
    );
    assert_pages_agree(&mut client, &completed.hashid, &whole, 3).await;

    let stopped = start(&mut client, "paged-stop", fan(5)).await;
    update(&mut client, &stopped.id, "p1", Running).await;
    update(&mut client, &stopped.id, "p2", Running).await;
    update(&mut client, &stopped.id, "p2", Completed).await;
    let before = get(&mut client, &stopped.id).await;
    client
        .stop_execution(stop_request(&stopped.id, "paged"))
        .await
        .unwrap();
    let whole = events_of(&mut client, &stopped.id).await;
    let last = whole.last().unwrap().revision;
    let stop: Vec<_> = whole
        .iter()
        .filter(|e| e.revision == last)
        .map(|e| {
            (
                e.kind,
                e.node_id.clone(),
                e.from_status,
                e.stop_reason.clone(),
            )
        })
        .collect();
    let finished = [ActionStatus::Completed as i32, ActionStatus::Failed as i32];
    let mut expected: Vec<_> = actions_of(&before)
        .into_iter()
        .filter(|(_, action)| !finished.contains(&action.status))
        .map(|(node, action)| {
            let kind = pb::ExecutionEventKind::ActionStopped as i32;
            (kind, node, action.status, String::new())
        })
        .collect();
    assert!(expected.len() >= 4, "{expected:?}");
    let kind = pb::ExecutionEventKind::ExecutionStopped as i32;
    expected.push((kind, String::new(), 0, "paged".to_owned()));
    assert_eq!(
        stop, expected,
        "the stop's events: each unfinished action once, in node order, from its status"
    );
    for page_size in 1..=4 {
        assert_pages_agree(&mut client, &stopped.hashid, &whole, page_size).await;
    }
}

/// Pages the history of `execution` `page_size` events at a time in both orders, and
/// checks the pages add up to `whole`.
async fn assert_pages_agree(
    client: &mut Client,
    execution: &str,
    whole: &[pb::ExecutionEvent],
    page_size: i32,
) {
    for order in [pb::SortOrder::Ascending, pb::SortOrder::Descending] {
        let (mut paged, mut token) = (Vec::new(), String::new());
        loop {
            let page = client
                .list_execution_events(pb::ListExecutionEventsRequest {
                    execution_id: execution.to_owned(),
                    page_size,
                    page_token: token,
                    order: order as i32,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(page.events.len() <= page_size as usize);
            paged.extend(page.events);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if order == pb::SortOrder::Descending {
            paged.reverse();
        }
        assert_eq!(paged, whole, "{order:?}, pages of {page_size}");
    }
}

/// Settings with a 200,000-byte message limit, so that a few logs reach an execution's
/// log budget.
fn small_messages() -> ServerConfig {
    let mut config = test_config();
    config.limits.max_message_bytes = 200_000;
    config
}

/// A log reported with a status lands in the FULL view under its node id (not in BASIC);
/// a new log with the same status is a change of its own (revision +1, ACTION_LOGGED)
/// that replaces it; the same log again changes nothing. Logs that together would pass
/// the execution's budget (what its largest form leaves of the 200,000-byte limit) are
/// refused with RESOURCE_EXHAUSTED (EXECUTION_LOG_FULL), and the execution still reads
/// whole.
async fn logs_land_under_their_node_within_the_budget(server: &TestServer) {
    use ActionStatus::*;
    let mut client = server.client.clone();
    let e = start(&mut client, "logged", chain(5)).await;
    let with_log = |node: &str, status, log: serde_json::Value| pb::UpdateActionRequest {
        log: Some(to_struct(&log)),
        ..report(&e.id, node, status)
    };
    let after = client
        .update_action(with_log("a1", Running, json!({"stdout": "starting"})))
        .await
        .unwrap()
        .into_inner();
    let log = after.log.clone().unwrap();
    assert_eq!(log.fields.len(), 1);
    let Some(prost_types::value::Kind::StructValue(a1)) = &log.fields["a1"].kind else {
        panic!("a1's log is an object: {log:?}");
    };
    assert_eq!(a1, &to_struct(&json!({"stdout": "starting"})));

    let replaced = client
        .update_action(with_log("a1", Running, json!({"stdout": "half way"})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.revision, after.revision + 1);
    let again = client
        .update_action(with_log("a1", Running, json!({"stdout": "half way"})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.revision, replaced.revision,
        "the same log changes nothing"
    );
    let history = events_of(&mut client, &e.id).await;
    assert_eq!(
        history.last().unwrap().kind,
        pb::ExecutionEventKind::ActionLogged as i32
    );
    let basic = client
        .get_execution(pb::GetExecutionRequest {
            view: ExecutionView::Basic as i32,
            ..get_request(&e.id)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(basic.log, None, "BASIC carries no log");

    // 60,000-byte logs: the budget holds a few, not five.
    let big = json!({"out": "x".repeat(60_000)});
    let mut refused = None;
    let nodes = [
        ("a1", Running),
        ("a2", Idle),
        ("a3", Idle),
        ("a4", Idle),
        ("a5", Idle),
    ];
    for (node, status) in nodes {
        match client
            .update_action(with_log(node, status, big.clone()))
            .await
        {
            Ok(_) => {}
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("five 60,000-byte logs pass a 200,000-byte message");
    assert_error(
        &refused,
        Code::ResourceExhausted,
        "EXECUTION_LOG_FULL",
        Some("log"),
    );
    let whole = get(&mut client, &e.id).await;
    assert!(whole.log.unwrap().fields.len() >= 2);
}

/// With a retention of one second, finished executions (completed, stopped) and their
/// history go away by themselves; a running one stays, however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_executions_older_than_the_retention_are_deleted() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if !backend.available() {
            continue;
        }
        let server = TestServer::builder()
            .on(backend)
            .retention(Duration::from_secs(1))
            .start()
            .await;
        let mut client = server.client.clone();
        let completed = start(&mut client, "done", chain(1)).await;
        update(&mut client, &completed.id, "a1", ActionStatus::Running).await;
        update(&mut client, &completed.id, "a1", ActionStatus::Completed).await;
        let stopped = start(&mut client, "halted", chain(2)).await;
        client
            .stop_execution(stop_request(&stopped.id, ""))
            .await
            .unwrap();
        let running = start(&mut client, "going", chain(2)).await;

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut gone = true;
            for id in [&completed.id, &stopped.id] {
                gone &= client.get_execution(get_request(id)).await.is_err();
            }
            if gone {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: deleted within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for id in [&completed.id, &stopped.id] {
            let status = client.get_execution(get_request(id)).await.unwrap_err();
            assert_eq!(status.code(), Code::NotFound);
            let status = client
                .list_execution_events(pb::ListExecutionEventsRequest {
                    execution_id: id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NotFound);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            get(&mut client, &running.id).await.status,
            ExecutionStatus::Running as i32
        );
        server.stop().await;
    }
}

/// A page of history holds at most 1,000 events whatever `page_size` asks, and 100 when
/// it asks for none; the next page goes on where the last ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_pages_are_bounded() {
    use ActionStatus::*;
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    // 520 actions in a line, each started and completed: 1,042 events.
    let e = start(&mut client, "long", chain(520)).await;
    for i in 1..=520 {
        let node = format!("a{i}");
        for status in [Running, Completed] {
            let request = pb::UpdateActionRequest {
                view: ExecutionView::Basic as i32,
                ..report(&e.id, &node, status)
            };
            client.update_action(request).await.unwrap();
        }
    }
    let page = |page_size, page_token: String| {
        let mut client = client.clone();
        let id = e.id.clone();
        async move {
            client
                .list_execution_events(pb::ListExecutionEventsRequest {
                    execution_id: id,
                    page_size,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = page(5_000, String::new()).await;
    assert_eq!(first.events.len(), 1_000, "clamped to 1,000");
    let rest = page(5_000, first.next_page_token).await;
    assert_eq!(rest.events.len(), 42);
    assert!(rest.next_page_token.is_empty());
    assert_eq!(
        page(0, String::new()).await.events.len(),
        100,
        "the default"
    );
    server.stop().await;
}
