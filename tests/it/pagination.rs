//! ListExecutions: keyset pages that never skip or repeat rows, filters that combine, and
//! both orders.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(
    pages_never_skip_or_repeat_rows_inserted_between_fetches,
    ascending_pages_miss_nothing_started_meanwhile,
    a_list_sees_every_start_answered_before_it,
    starts_after_the_clock_stepped_back_are_listed,
    filters_combine,
    page_size_defaults_and_last_page,
);

async fn page(
    client: &mut Client,
    request: pb::ListExecutionsRequest,
) -> pb::ListExecutionsResponse {
    client.list_executions(request).await.unwrap().into_inner()
}

async fn start_many(client: &mut Client, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(start(client, key, chain(1)).await.id);
    }
    ids
}

/// Three pages of 20 over 60 executions, newest first, with rows inserted before each
/// later page: every original row appears exactly once; then the same oldest first, where
/// the inserted rows come last and also appear exactly once.
async fn pages_never_skip_or_repeat_rows_inserted_between_fetches(server: &TestServer) {
    let mut client = server.client.clone();
    let original = start_many(&mut client, "paged", 60).await;

    let request = |token: String, order: &str| pb::ListExecutionsRequest {
        page_size: 20,
        page_token: token,
        key: "paged".into(),
        order_by: order.into(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    for n in 0..3 {
        let p = page(&mut client, request(token.clone(), "created_at desc")).await;
        assert_eq!(p.executions.len(), 20, "page {n}");
        seen.extend(p.executions.iter().map(|e| e.id.clone()));
        token = p.next_page_token;
        start_many(&mut client, "paged", 5).await; // newer than every cursor: never in later pages
        if n < 2 {
            assert!(!token.is_empty());
        }
    }
    assert!(token.is_empty(), "the third page is the last");
    let mut expected = original.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "newest first, each original row exactly once"
    );

    // Oldest first: rows inserted between pages land after the cursor and are listed too.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut inserted = Vec::new();
    loop {
        let p = page(&mut client, request(token.clone(), "created_at asc")).await;
        seen.extend(p.executions.iter().map(|e| e.id.clone()));
        token = p.next_page_token;
        if token.is_empty() {
            break;
        }
        if inserted.len() < 10 {
            inserted.extend(start_many(&mut client, "paged", 5).await);
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row repeated");
    assert_eq!(seen.len(), 60 + 15 + inserted.len());
    assert_eq!(&seen[..60], original.as_slice(), "oldest first");
    assert_eq!(&seen[seen.len() - inserted.len()..], inserted.as_slice());
}

/// Ascending pages walked while 64 callers start executions (a quarter of them large,
/// so that their commits take longer). Four walkers walk again and again from 20 ms
/// before they begin (`created_after`), so that their pages are read where rows are
/// still committing. Once the starts are over, each walk (at most 300 of them) must be
/// the beginning of the same walk made again: a start that commits after a page was
/// read must never sort before that page's cursor. And starts must not take turns to keep it so
/// (the figures of `loadgen start`).
async fn ascending_pages_miss_nothing_started_meanwhile(server: &TestServer) {
    const CALLERS: usize = 64;
    const STARTS_EACH: usize = 8;
    let starting = Arc::new(AtomicBool::new(true));
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let mut client = server.client.clone();
        let actions = if c % 4 == 0 { 200 } else { 1 };
        callers.push(tokio::spawn(async move {
            // Paced (about 200 starts a second in all), so that walks keep up with
            // them and read their pages where rows are still committing.
            tokio::time::sleep(std::time::Duration::from_millis(5 * c as u64)).await;
            for _ in 0..STARTS_EACH {
                start(&mut client, "race", chain(actions)).await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }));
    }
    let walks = Arc::new(Mutex::new(Vec::new()));
    let mut walkers = Vec::new();
    for _ in 0..4 {
        let (mut client, starting, walks) =
            (server.client.clone(), starting.clone(), walks.clone());
        walkers.push(tokio::spawn(async move {
            while starting.load(Ordering::SeqCst) {
                let from = prost_types::Timestamp::from(
                    std::time::SystemTime::now() - std::time::Duration::from_millis(20),
                );
                let walked = walk(&mut client, Some(from)).await;
                if !walked.is_empty() {
                    walks.lock().unwrap().push((from, walked));
                }
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    starting.store(false, Ordering::SeqCst);
    for walker in walkers {
        walker.await.unwrap();
    }

    let mut client = server.client.clone();
    assert_eq!(walk(&mut client, None).await.len(), CALLERS * STARTS_EACH);
    let walks = std::mem::take(&mut *walks.lock().unwrap());
    assert!(!walks.is_empty(), "no walk overlapped the starts");
    // At most 300 walks, spread over the run, are walked again (SQLite walks more).
    let every = walks.len().div_ceil(300);
    for (n, (from, walked)) in walks.iter().enumerate().step_by(every) {
        let now = walk(&mut client, Some(*from)).await;
        assert!(
            now.starts_with(walked),
            "walk {n} of {} from {from} skipped or repeated rows: {walked:?}, now {now:?}",
            walks.len()
        );
    }
}

/// Read your writes under concurrency: 16 callers each start an execution and, once it
/// is answered, list their key's newest one, 20 times over, all at once (so that List
/// pages share the reads of their horizon on PostgreSQL). Each page's newest execution is
/// the one just started.
async fn a_list_sees_every_start_answered_before_it(server: &TestServer) {
    let mut callers = Vec::new();
    for c in 0..16 {
        let mut client = server.client.clone();
        callers.push(tokio::spawn(async move {
            let key = format!("ryw-{c}");
            for round in 0..20 {
                let started = start(&mut client, &key, chain(1)).await;
                let p = page(
                    &mut client,
                    pb::ListExecutionsRequest {
                        page_size: 1,
                        key: key.clone(),
                        ..Default::default()
                    },
                )
                .await;
                let newest = p.executions.first().map(|e| e.id.as_str());
                assert_eq!(newest, Some(started.id.as_str()), "{key}, round {round}");
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
}

/// A step back of the database's clock (here: the newest execution moved an hour ahead,
/// as if created just before such a step) hides nothing: an execution started after it
/// is created 1 µs after the newest, and a List page lists both at once, newest first.
async fn starts_after_the_clock_stepped_back_are_listed(server: &TestServer) {
    use sea_orm::ConnectionTrait;
    let mut client = server.client.clone();
    let ahead = start(&mut client, "clock-step", chain(1)).await;
    let outside = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let moved = outside
        .execute_unprepared(
            r#"UPDATE executions SET created_at = created_at + 3600000000 WHERE "key" = 'clock-step'"#,
        )
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    outside.close().await.unwrap();

    let after = start(&mut client, "clock-step", chain(1)).await;
    let p = page(
        &mut client,
        pb::ListExecutionsRequest {
            key: "clock-step".into(),
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<_> = p.executions.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [after.id.as_str(), ahead.id.as_str()]);
    // Its creation time followed the newest execution, not the clock (times are shown
    // to the second).
    let created = |e: &pb::Execution| chrono::DateTime::parse_from_rfc3339(&e.created_at).unwrap();
    assert!(
        created(&after) - created(&ahead) >= chrono::TimeDelta::seconds(3599),
        "{} {}",
        ahead.created_at,
        after.created_at
    );
}

/// Every execution of key "race" from `from` on, in pages of 20, oldest first.
async fn walk(client: &mut Client, from: Option<prost_types::Timestamp>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(
            client,
            pb::ListExecutionsRequest {
                page_size: 20,
                page_token: token,
                key: "race".into(),
                created_after: from,
                order_by: "created_at asc".into(),
                ..Default::default()
            },
        )
        .await;
        seen.extend(p.executions.into_iter().map(|e| e.id));
        if p.next_page_token.is_empty() {
            return seen;
        }
        token = p.next_page_token;
    }
}

/// Status, key, tenant, time-range and execution_data filters combine with AND.
async fn filters_combine(server: &TestServer) {
    let mut client = server.client.clone();
    let data = |v: serde_json::Value| Some(to_struct(&v));
    let mut started = Vec::new();
    for (key, user_key, region, tier) in [
        ("billing", "main", "eu", 1),
        ("billing", "main", "us", 1),
        ("billing", "acme", "eu", 2),
        ("reports", "main", "eu", 1),
    ] {
        let mut request = example("linear.json");
        request.key = key.into();
        request.user_key = user_key.into();
        request.execution_data =
            data(serde_json::json!({"region": region, "tier": tier, "nested": {"a": [1, 2]}}));
        started.push(client.start_execution(request).await.unwrap().into_inner());
    }
    client
        .stop_execution(stop_request(&started[1].id, ""))
        .await
        .unwrap();

    let ids = |r: pb::ListExecutionsResponse| -> Vec<String> {
        r.executions.into_iter().map(|e| e.id).collect()
    };
    let ask = |edit: &dyn Fn(&mut pb::ListExecutionsRequest)| {
        let mut r = pb::ListExecutionsRequest {
            order_by: "created_at asc".into(),
            ..Default::default()
        };
        edit(&mut r);
        r
    };
    let id = |i: usize| started[i].id.clone();

    let r = page(&mut client, ask(&|r| r.key = "billing".into())).await;
    assert_eq!(ids(r), [id(0), id(1), id(2)]);
    let r = page(
        &mut client,
        ask(&|r| {
            r.key = "billing".into();
            r.user_key = "main".into();
        }),
    )
    .await;
    assert_eq!(ids(r), [id(0), id(1)]);
    let r = page(
        &mut client,
        ask(&|r| {
            r.key = "billing".into();
            r.statuses = vec![ExecutionStatus::Running as i32];
        }),
    )
    .await;
    assert_eq!(ids(r), [id(0), id(2)]);
    let r = page(
        &mut client,
        ask(&|r| {
            r.statuses = vec![
                ExecutionStatus::Stopped as i32,
                ExecutionStatus::Completed as i32,
            ]
        }),
    )
    .await;
    assert_eq!(ids(r), [id(1)]);
    let r = page(
        &mut client,
        ask(&|r| r.execution_data = data(serde_json::json!({"region": "eu"}))),
    )
    .await;
    assert_eq!(ids(r), [id(0), id(2), id(3)]);
    let r = page(
        &mut client,
        ask(&|r| r.execution_data = data(serde_json::json!({"region": "eu", "tier": 1}))),
    )
    .await;
    assert_eq!(ids(r), [id(0), id(3)]);
    let r = page(
        &mut client,
        ask(&|r| {
            r.key = "billing".into();
            r.execution_data = data(serde_json::json!({"region": "eu", "tier": 1}));
        }),
    )
    .await;
    assert_eq!(ids(r), [id(0)]);
    let r = page(
        &mut client,
        ask(&|r| r.execution_data = data(serde_json::json!({"nested": {"a": [1, 2]}}))),
    )
    .await;
    assert_eq!(ids(r).len(), 4, "nested values compare whole");
    let r = page(
        &mut client,
        ask(&|r| r.execution_data = data(serde_json::json!({"region": "mars"}))),
    )
    .await;
    assert!(r.executions.is_empty());
    let r = page(
        &mut client,
        ask(&|r| r.execution_data = data(serde_json::json!({"missing": null}))),
    )
    .await;
    assert!(r.executions.is_empty(), "a missing key is not a null value");

    // Time range: [created_at of #1, created_at of #3) holds #1 and #2 (second precision
    // in created_at_utc, so use the stored order instead: after #0 at its exact second
    // may include #0 too; assert only what the bounds guarantee).
    let at = |e: &pb::Execution| -> prost_types::Timestamp {
        let t: chrono::DateTime<chrono::Utc> = e.created_at_utc.parse().unwrap();
        prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }
    };
    let r = page(
        &mut client,
        ask(&|r| {
            r.created_after = Some(at(&started[0]));
            r.created_before = Some(prost_types::Timestamp {
                seconds: at(&started[3]).seconds + 1,
                nanos: 0,
            });
        }),
    )
    .await;
    assert_eq!(ids(r), [id(0), id(1), id(2), id(3)]);
    let r = page(
        &mut client,
        ask(&|r| r.created_before = Some(at(&started[0]))),
    )
    .await;
    assert!(
        r.executions.is_empty(),
        "nothing was created before the first second"
    );
    let r = page(
        &mut client,
        ask(&|r| {
            r.created_after = Some(prost_types::Timestamp {
                seconds: at(&started[3]).seconds + 1,
                nanos: 0,
            })
        }),
    )
    .await;
    assert!(
        r.executions.is_empty(),
        "nothing was created after the last"
    );

    // Default view is BASIC; FULL on request; newest first by default.
    let r = page(&mut client, pb::ListExecutionsRequest::default()).await;
    assert_eq!(r.executions.first().map(|e| e.id.clone()), Some(id(3)));
    assert!(
        r.executions
            .iter()
            .all(|e| e.template.is_none() && e.stats.is_empty())
    );
    let r = page(
        &mut client,
        pb::ListExecutionsRequest {
            view: ExecutionView::Full as i32,
            ..Default::default()
        },
    )
    .await;
    assert!(
        r.executions
            .iter()
            .all(|e| e.template.is_some() && e.stats.len() == 4 + 4)
    );
    for e in &r.executions {
        assert_consistent(e);
        assert_eq!(*e, get(&mut client, &e.id).await, "List FULL equals Get");
    }
}

/// page_size 0 means 25; the token is empty exactly on the last page.
async fn page_size_defaults_and_last_page(server: &TestServer) {
    let mut client = server.client.clone();
    start_many(&mut client, "sized", 50).await;
    let request = |token: String| pb::ListExecutionsRequest {
        key: "sized".into(),
        page_token: token,
        ..Default::default()
    };
    let first = page(&mut client, request(String::new())).await;
    assert_eq!(first.executions.len(), 25);
    assert!(!first.next_page_token.is_empty());
    let second = page(&mut client, request(first.next_page_token)).await;
    assert_eq!(second.executions.len(), 25);
    assert!(
        second.next_page_token.is_empty(),
        "exactly 50 rows: the second page is the last"
    );
    let big = page(
        &mut client,
        pb::ListExecutionsRequest {
            key: "sized".into(),
            page_size: 10_000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(big.executions.len(), 50);
    assert!(big.next_page_token.is_empty());
}
