//! StopExecutions, the seed's stop event: which executions it stops (and which it leaves),
//! how each is stopped (its own change, watchers see it), dry runs, resuming and repeating
//! a job by request id, executions that finish while a job runs, and tenancy.

use std::collections::HashSet;
use std::time::Duration;

use executions::proto::v1 as pb;
use serde_json::json;
use tonic::Code;

use crate::db_tests;
use crate::harness::*;

db_tests!(
    a_stop_event_stops_the_listening_running_executions_that_match,
    a_job_with_a_request_id_resumes_after_its_deadline_and_repeats_its_answer,
    executions_that_finish_during_a_job_are_not_stopped,
    a_batch_stops_more_actions_than_one_statement_names,
);
db_tests!(config = super::tokens_config; a_stop_event_stops_in_the_callers_tenant_only);

/// A StartExecution request of a two-action chain listening to `stop_events`, with this
/// execution_data and tenant.
fn listener(
    stop_events: &[&str],
    data: serde_json::Value,
    user_key: &str,
) -> pb::StartExecutionRequest {
    pb::StartExecutionRequest {
        stop_events: stop_events.iter().map(|e| e.to_string()).collect(),
        execution_data: Some(to_struct(&data)),
        ..start_request_for("deploys", user_key)
    }
}

fn stop_event(event: &str, filters: serde_json::Value) -> pb::StopExecutionsRequest {
    pb::StopExecutionsRequest {
        stop_event: event.into(),
        filters: Some(to_struct(&filters)),
        reason: "rollback".into(),
        ..Default::default()
    }
}

/// Of six executions, the stop event with a filter stops exactly the two RUNNING ones of
/// the tenant that listen to it and match: each as its own change (revision +1, every
/// unfinished action STOPPED, the reason kept, one EXECUTION_STOPPED event) that a
/// watcher sees. Finished actions keep their state; a dry run before changes nothing and
/// names the same two; the stop events show in the FULL view.
async fn a_stop_event_stops_the_listening_running_executions_that_match(server: &TestServer) {
    let mut client = server.client.clone();
    let start = |request| {
        let mut client = client.clone();
        async move { client.start_execution(request).await.unwrap().into_inner() }
    };
    let eu_1 = start(listener(&["deploy", "audit"], json!({"region": "eu"}), "")).await;
    let eu_2 = start(listener(
        &["deploy"],
        json!({"region": "eu", "tier": 2}),
        "",
    ))
    .await;
    let us = start(listener(&["deploy"], json!({"region": "us"}), "")).await;
    let other_event = start(listener(&["audit"], json!({"region": "eu"}), "")).await;
    let other_tenant = start(listener(&["deploy"], json!({"region": "eu"}), "globex")).await;
    let finished = start(listener(&["deploy"], json!({"region": "eu"}), "")).await;
    for node in ["a1", "a2"] {
        update(&mut client, &finished.id, node, ActionStatus::Running).await;
        update(&mut client, &finished.id, node, ActionStatus::Completed).await;
    }
    // One action of eu_1 finished before the stop: it keeps its state.
    update(&mut client, &eu_1.id, "a1", ActionStatus::Running).await;
    let eu_1 = update(&mut client, &eu_1.id, "a1", ActionStatus::Completed).await;
    assert_eq!(eu_1.stop_events, ["deploy", "audit"]);

    let all_ids: Vec<String> = [&eu_1, &eu_2, &us, &other_event, &other_tenant, &finished]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let before = get_all(&mut client, &all_ids).await;
    let dry = client
        .stop_executions(pb::StopExecutionsRequest {
            dry_run: true,
            ..stop_event("deploy", json!({"region": "eu"}))
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((dry.matched_count, dry.stopped_count), (2, 2));
    let ids = |r: &pb::StopExecutionsResponse| {
        r.executions
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&dry),
        [eu_1.id.clone(), eu_2.id.clone()],
        "oldest first"
    );
    assert_eq!(
        get_all(&mut client, &all_ids).await,
        before,
        "a dry run changes nothing"
    );

    let mut watch = client
        .watch_execution(watch_request(&eu_2.id))
        .await
        .unwrap()
        .into_inner();
    let snapshot = next(&mut watch).await.unwrap().unwrap();
    assert_eq!(snapshot.revision, 1);

    let done = client
        .stop_executions(stop_event("deploy", json!({"region": "eu"})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((done.matched_count, done.stopped_count), (2, 2));
    assert_eq!(ids(&done), [eu_1.id.clone(), eu_2.id.clone()]);
    assert!(!done.executions_truncated);

    let update_seen = next(&mut watch).await.unwrap().unwrap();
    assert_eq!(update_seen.revision, 2);
    let seen = update_seen.execution.unwrap();
    assert_eq!(seen.status, ExecutionStatus::Stopped as i32);

    let after = get_all(&mut client, &all_ids).await;
    for (i, (was, now)) in before.iter().zip(&after).enumerate() {
        if i < 2 {
            assert_eq!(now.status, ExecutionStatus::Stopped as i32);
            assert_eq!(now.stop_reason, "rollback");
            assert_eq!(now.revision, was.revision + 1, "one change each");
            assert_eq!(done.executions[i].revision, now.revision);
            assert_eq!(done.executions[i].hashid, now.hashid);
            assert_consistent(now);
        } else {
            assert_eq!(now, was, "{} is not in the stop's reach", now.key);
        }
    }
    assert_eq!(action_status(&after[0], "a1"), ActionStatus::Completed);
    assert_eq!(action_status(&after[0], "a2"), ActionStatus::Stopped);
    let history = events_of(&mut client, &eu_2.id).await;
    let last = history.last().unwrap();
    assert_eq!(last.kind, pb::ExecutionEventKind::ExecutionStopped as i32);
    assert_eq!(last.stop_reason, "rollback");

    // Nothing is left to stop.
    let again = client
        .stop_executions(stop_event("deploy", json!({"region": "eu"})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.matched_count, again.stopped_count), (0, 0));
}

/// A job over 450 executions (five batches), called with the same request id under
/// deadlines that end it early: what each call stopped stays stopped, the next call goes
/// on where it stopped, and the call that finishes answers the whole job: 450 matched,
/// 450 stopped, each execution once (revision 2). Called again after one more listener
/// started, it repeats that answer and stops nothing new; the same request id with
/// another reason is refused.
async fn a_job_with_a_request_id_resumes_after_its_deadline_and_repeats_its_answer(
    server: &TestServer,
) {
    const N: usize = 450;
    let mut client = server.client.clone();
    for chunk in 0..N / 50 {
        let mut starts = Vec::new();
        for i in 0..50 {
            let mut client = client.clone();
            let request = listener(&["halt"], json!({"n": chunk * 50 + i}), "");
            starts.push(tokio::spawn(async move {
                client.start_execution(request).await.unwrap()
            }));
        }
        for s in starts {
            s.await.unwrap();
        }
    }
    let job = pb::StopExecutionsRequest {
        request_id: "halt-1".into(),
        ..stop_event("halt", json!({}))
    };
    let stopped_now = |client: &mut Client| {
        let mut client = client.clone();
        async move {
            client
                .count_executions(pb::CountExecutionsRequest {
                    statuses: vec![ExecutionStatus::Stopped as i32],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .count
        }
    };
    // Deadlines that grow until a call finishes the job; at least one ends it midway.
    // They grow by a quarter at a time: a lane stops at least two batches one after the
    // other, so a call whose deadline falls between its first and its last commit exists
    // whatever the machine's speed.
    let mut cut_short_midway = false;
    let mut answer = None;
    let mut deadlines: Vec<u64> = std::iter::successors(Some(5u64), |ms| Some(ms + ms / 4 + 1))
        .take_while(|ms| *ms < 2_000)
        .collect();
    deadlines.push(60_000);
    for millis in deadlines {
        let mut request = tonic::Request::new(job.clone());
        request.set_timeout(Duration::from_millis(millis));
        match client.stop_executions(request).await {
            Ok(done) => {
                answer = Some(done.into_inner());
                break;
            }
            Err(status) => {
                // The server's DEADLINE_EXCEEDED, or the client's own timer first.
                assert!(
                    matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
                    "{status:?}"
                );
                let stopped = stopped_now(&mut client).await;
                cut_short_midway |= stopped > 0 && stopped < N as i64;
            }
        }
    }
    let answer = answer.expect("the last call has time to finish");
    assert!(cut_short_midway, "some call ended with the job half done");
    assert_eq!(
        (answer.matched_count, answer.stopped_count),
        (N as i64, N as i64)
    );
    let ids: HashSet<_> = answer.executions.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), N, "each execution listed once");
    assert!(
        answer.executions.iter().all(|e| e.revision == 2),
        "each stopped once"
    );
    assert_eq!(stopped_now(&mut client).await, N as i64);

    let late = client
        .start_execution(listener(&["halt"], json!({"n": "late"}), ""))
        .await
        .unwrap()
        .into_inner();
    let repeated = client
        .stop_executions(job.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repeated, answer, "a finished job answers the same again");
    assert_eq!(
        get(&mut client, &late.id).await.status,
        ExecutionStatus::Running as i32
    );

    let reused = client
        .stop_executions(pb::StopExecutionsRequest {
            reason: "another reason".into(),
            ..job
        })
        .await
        .unwrap_err();
    assert_error(
        &reused,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        Some("request_id"),
    );
}

/// 200 listeners, while other callers complete executions from the newest down: when the
/// job is done every execution is either COMPLETED and not in the answer, or STOPPED by
/// the job and in it; the counts add up and nothing is both.
async fn executions_that_finish_during_a_job_are_not_stopped(server: &TestServer) {
    const N: usize = 200;
    let mut client = server.client.clone();
    let mut started = Vec::new();
    for i in 0..N {
        let e = client
            .start_execution(listener(&["halt"], json!({"n": i}), ""))
            .await
            .unwrap()
            .into_inner();
        started.push(e.id);
    }
    let finisher = {
        let (mut client, ids) = (client.clone(), started.clone());
        tokio::spawn(async move {
            for id in ids.iter().rev() {
                for (node, status) in [
                    ("a1", ActionStatus::Running),
                    ("a1", ActionStatus::Completed),
                    ("a2", ActionStatus::Running),
                    ("a2", ActionStatus::Completed),
                ] {
                    if let Err(status) = client.update_action(report(id, node, status)).await {
                        // Stopped by the job first: leave it.
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                        break;
                    }
                }
            }
        })
    };
    let answer = client
        .stop_executions(stop_event("halt", json!({})))
        .await
        .unwrap()
        .into_inner();
    finisher.await.unwrap();
    let listed: HashSet<_> = answer.executions.iter().map(|e| e.id.clone()).collect();
    assert_eq!(listed.len() as i64, answer.stopped_count);
    let (mut completed, mut stopped) = (0, 0);
    for id in &started {
        let e = get(&mut client, id).await;
        assert_consistent(&e);
        match ExecutionStatus::try_from(e.status).unwrap() {
            ExecutionStatus::Stopped => {
                assert!(listed.contains(id), "stopped but not by the job");
                stopped += 1;
            }
            ExecutionStatus::Completed => {
                assert!(!listed.contains(id), "listed as stopped but completed");
                completed += 1;
            }
            other => panic!("{id} ended {other:?}"),
        }
    }
    assert_eq!(stopped, answer.stopped_count);
    assert_eq!(completed + stopped, N as i64);
    assert!(answer.matched_count >= answer.stopped_count);
}

/// A token confined to `acme` stops acme's listeners only (its own tenant by default),
/// may not name another tenant, and a reader may not stop at all; the history names the
/// token that stopped.
async fn a_stop_event_stops_in_the_callers_tenant_only(server: &TestServer) {
    let mut client = server.client.clone();
    let request = |user_key: &str| listener(&["halt"], json!({}), user_key);
    let acme = client
        .start_execution(bearer(ACME_WRITER_TOKEN, request("")))
        .await
        .unwrap()
        .into_inner();
    let main = client
        .start_execution(bearer(WRITER_TOKEN, request("main")))
        .await
        .unwrap()
        .into_inner();
    let refused = client
        .stop_executions(bearer(ACME_READER_TOKEN, stop_event("halt", json!({}))))
        .await
        .unwrap_err();
    assert_error(&refused, Code::PermissionDenied, "READ_ONLY_TOKEN", None);
    let refused = client
        .stop_executions(bearer(
            ACME_WRITER_TOKEN,
            pb::StopExecutionsRequest {
                user_key: "main".into(),
                ..stop_event("halt", json!({}))
            },
        ))
        .await
        .unwrap_err();
    assert_error(&refused, Code::PermissionDenied, "OTHER_TENANT", None);

    let done = client
        .stop_executions(bearer(ACME_WRITER_TOKEN, stop_event("halt", json!({}))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.stopped_count, 1);
    assert_eq!(done.executions[0].id, acme.id);
    let main_now = client
        .get_execution(bearer(WRITER_TOKEN, get_request(&main.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(main_now.status, ExecutionStatus::Running as i32);
    let history = client
        .list_execution_events(bearer(
            ACME_READER_TOKEN,
            pb::ListExecutionEventsRequest {
                execution_id: acme.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(history[0].actor, "acme-engine");
    assert_eq!(history.last().unwrap().actor, "acme-engine");
    let hidden = client
        .list_execution_events(bearer(
            ACME_READER_TOKEN,
            pb::ListExecutionEventsRequest {
                execution_id: main.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_error(&hidden, Code::NotFound, "EXECUTION_NOT_FOUND", None);
}

/// Every event of one execution, oldest first.
pub async fn events_of(client: &mut Client, id: &str) -> Vec<pb::ExecutionEvent> {
    client
        .list_execution_events(pb::ListExecutionEventsRequest {
            execution_id: id.into(),
            page_size: 1_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

/// The current state of each of `ids`, in order.
async fn get_all(client: &mut Client, ids: &[String]) -> Vec<pb::Execution> {
    let mut all = Vec::new();
    for id in ids {
        all.push(get(client, id).await);
    }
    all
}

/// A stop event over 10,001 executions (more than an answer lists) stops every one, and
/// answers them all counted, the oldest 10,000 listed in order and `executions_truncated`
/// set: on SQLite (one lane), and on PostgreSQL, where the job's lanes finish their
/// batches in any order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_lists_at_most_ten_thousand_stopped_executions() {
    answer_lists_at_most_ten_thousand(Backend::Sqlite).await;
}

/// [`an_answer_lists_at_most_ten_thousand_stopped_executions`] on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn an_answer_lists_at_most_ten_thousand_stopped_executions_postgres() {
    answer_lists_at_most_ten_thousand(Backend::Postgres).await;
}

async fn answer_lists_at_most_ten_thousand(backend: Backend) {
    const N: usize = 10_001;
    let server = TestServer::builder().on(backend).start().await;
    let client = server.client.clone();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut starters = Vec::new();
    for _ in 0..32 {
        let (mut client, next) = (client.clone(), next.clone());
        starters.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < N {
                let request = pb::StartExecutionRequest {
                    stop_events: vec!["all".into()],
                    view: ExecutionView::Basic as i32,
                    ..start_request_for("many", "")
                };
                client.start_execution(request).await.unwrap();
            }
        }));
    }
    for starter in starters {
        starter.await.unwrap();
    }
    let mut client = client;
    let answer = client
        .stop_executions(pb::StopExecutionsRequest {
            stop_event: "all".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.matched_count, answer.stopped_count),
        (N as i64, N as i64)
    );
    assert_eq!(answer.executions.len(), 10_000);
    assert!(answer.executions_truncated);
    let hashids: HashSet<_> = answer.executions.iter().map(|e| e.hashid.clone()).collect();
    assert_eq!(hashids.len(), 10_000, "each listed once");
    // The oldest 10,000, in order: List's ascending order without its last one.
    let (mut oldest_first, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .list_executions(pb::ListExecutionsRequest {
                page_size: 500,
                order_by: "created_at asc".into(),
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        oldest_first.extend(page.executions.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    oldest_first.pop();
    let listed: Vec<_> = answer.executions.iter().map(|e| e.id.clone()).collect();
    assert_eq!(listed, oldest_first, "the oldest 10,000, oldest first");
    let stopped = client
        .count_executions(pb::CountExecutionsRequest {
            statuses: vec![ExecutionStatus::Stopped as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(stopped, N as i64);
    server.stop().await;
}

/// Stop jobs running at once share the replica's turns for stop batches (half the pool:
/// 4 of the test server's 8 connections), so they never hold the whole pool. Three jobs
/// of 1,500 listeners each (4 lanes each, 12 in all) run together while PostgreSQL's
/// `pg_stat_activity` is sampled: at most the 4 turns, plus 2 for what runs outside
/// them (a job's record, its answer, the change reader), are ever busy (4 seen). Without
/// the turns, the 12 lanes fill the pool (7 seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn stop_jobs_at_once_share_half_the_pool() {
    use sea_orm::ConnectionTrait;
    const PER_JOB: usize = 1_500;
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut starters = Vec::new();
    for _ in 0..32 {
        let (mut client, next) = (server.client.clone(), next.clone());
        starters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 3 * PER_JOB {
                    return;
                }
                let request = pb::StartExecutionRequest {
                    view: ExecutionView::Basic as i32,
                    ..listener(&[&format!("job-{}", i % 3)], json!({}), "")
                };
                client.start_execution(request).await.unwrap();
            }
        }));
    }
    for starter in starters {
        starter.await.unwrap();
    }

    let observer = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let busy = sea_orm::Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')",
    );
    let jobs: Vec<_> = (0..3)
        .map(|job| {
            let mut client = server.client.clone();
            tokio::spawn(async move {
                client
                    .stop_executions(stop_event(&format!("job-{job}"), json!({})))
                    .await
                    .unwrap()
                    .into_inner()
                    .stopped_count
            })
        })
        .collect();
    let mut most_busy = 0;
    while jobs.iter().any(|job| !job.is_finished()) {
        let row = observer.query_one_raw(busy.clone()).await.unwrap().unwrap();
        most_busy = most_busy.max(row.try_get_by_index::<i64>(0).unwrap());
    }
    for job in jobs {
        assert_eq!(job.await.unwrap(), PER_JOB as i64);
    }
    assert!(
        (1..=6).contains(&most_busy),
        "at most 4 stop batches and 2 other statements at once, saw {most_busy} busy connections"
    );
    server.stop().await;
}

/// A stop job over 80 executions of 120 actions: each batch (20 executions in each of the
/// test server's 4 lanes on PostgreSQL, all 80 on SQLite) stops over 2,400 actions, more
/// than one statement names on PostgreSQL (2,000 pairs), so it takes two; every action
/// of every execution ends STOPPED, each execution at revision 2, and its history (one
/// row, unfolded) has one ACTION_STOPPED event per action.
async fn a_batch_stops_more_actions_than_one_statement_names(server: &TestServer) {
    let mut client = server.client.clone();
    let mut ids = Vec::new();
    for _ in 0..80 {
        let request = pb::StartExecutionRequest {
            template: Some(fan(120)),
            ..listener(&["wide"], json!({}), "")
        };
        ids.push(
            client
                .start_execution(request)
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let answer = client
        .stop_executions(stop_event("wide", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.stopped_count, 80);
    for execution in get_all(&mut client, &ids).await {
        assert_eq!(execution.revision, 2);
        let statuses: Vec<i32> = execution
            .stats
            .values()
            .filter_map(|stat| match &stat.kind {
                Some(pb::stat::Kind::Action(a)) => Some(a.status),
                _ => None,
            })
            .collect();
        assert!(statuses.len() >= 120, "{} actions", statuses.len());
        assert!(
            statuses
                .iter()
                .all(|s| *s == pb::ActionStatus::Stopped as i32),
            "every action stopped"
        );
        let stopped = events_of(&mut client, &execution.id)
            .await
            .into_iter()
            .filter(|e| e.kind == pb::ExecutionEventKind::ActionStopped as i32)
            .count();
        assert_eq!(stopped, statuses.len());
    }
}
