//! WatchExecutions: each numbered promise of the feed through a real stream, on both
//! databases (the late-commit and cross-replica ones on PostgreSQL). Every read is under
//! a timeout.

use std::collections::HashMap;
use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use executions::service::WatchSettings;
use tonic::Code;

db_tests!(
    a_feed_snapshots_what_matches_then_says_synced,
    changes_arrive_as_updates_and_leavers_leave_once,
    a_slow_reader_gets_coalesced_newest_states_with_rising_revisions,
    a_resumed_feed_gets_what_changed_then_synced_then_live,
    bad_filters_and_cursors_fail_before_any_message,
    live_changes_match_filters_as_the_database_does,
);

db_tests!(config = super::tokens_config; a_confined_feed_follows_its_tenant_only);

type Feed = tonic::Streaming<pb::WatchExecutionsResponse>;
type Message = pb::WatchExecutionsResponse;

async fn open(
    client: &mut Client,
    request: pb::WatchExecutionsRequest,
) -> Result<Feed, tonic::Status> {
    client
        .watch_executions(request)
        .await
        .map(tonic::Response::into_inner)
}

fn running(key: &str) -> pb::WatchExecutionsRequest {
    pb::WatchExecutionsRequest {
        statuses: vec![ExecutionStatus::Running as i32],
        key: key.into(),
        ..Default::default()
    }
}

/// The messages up to SYNCED (excluded), and SYNCED's cursor.
async fn until_synced(feed: &mut Feed) -> (Vec<Message>, String) {
    let mut before = Vec::new();
    loop {
        let m = next_within(feed, 20).await.unwrap().expect("open stream");
        assert!(!m.cursor.is_empty(), "every message carries a cursor");
        if m.kind() == pb::WatchEventKind::Synced {
            assert!(m.execution.is_none());
            return (before, m.cursor);
        }
        before.push(m);
    }
}

/// The next SNAPSHOT or UPDATE, skipping heartbeats.
async fn next_change(feed: &mut Feed) -> Message {
    loop {
        let m = next_within(feed, 20).await.unwrap().expect("open stream");
        if m.kind() != pb::WatchEventKind::Heartbeat {
            return m;
        }
    }
}

/// True when no SNAPSHOT or UPDATE arrives for `wait`.
async fn no_change_for(feed: &mut Feed, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, feed.message()).await {
            Err(_) => return true,
            Ok(Ok(Some(m))) if m.kind() == pb::WatchEventKind::Heartbeat => continue,
            Ok(other) => {
                eprintln!("unexpected: {other:?}");
                return false;
            }
        }
    }
}

fn execution(m: &Message) -> &pb::Execution {
    m.execution
        .as_ref()
        .expect("a state message carries its execution")
}

async fn stop(client: &mut Client, id: &str) -> pb::Execution {
    client
        .stop_execution(stop_request(id, "feed test"))
        .await
        .unwrap()
        .into_inner()
}

/// Promise 1: Without a cursor: a SNAPSHOT of every execution that matches now, newest
/// first, each once, across more than one catch-up page (100), then SYNCED.
async fn a_feed_snapshots_what_matches_then_says_synced(server: &TestServer) {
    let mut client = server.client.clone();
    let mut running_ids = Vec::new();
    for _ in 0..130 {
        running_ids.push(start(&mut client, "fleet", chain(2)).await.id);
    }
    let stopped = start(&mut client, "fleet", chain(2)).await;
    stop(&mut client, &stopped.id).await;
    start(&mut client, "elsewhere", chain(2)).await;

    let mut feed = open(&mut client, running("fleet")).await.unwrap();
    let (snapshots, _) = until_synced(&mut feed).await;
    assert!(
        snapshots
            .iter()
            .all(|m| m.kind() == pb::WatchEventKind::Snapshot)
    );
    let got: Vec<&str> = snapshots.iter().map(|m| execution(m).id.as_str()).collect();
    let newest_first: Vec<&str> = running_ids.iter().rev().map(String::as_str).collect();
    assert_eq!(
        got, newest_first,
        "every running one of the key, once, newest first"
    );
    assert!(snapshots.iter().all(|m| m.sent_at.is_some()));
    assert_eq!(execution(&snapshots[0]).template, None, "BASIC by default");
}

/// Promise 2: After SYNCED: each change of a matching execution as an UPDATE with its new
/// state; a new matching execution appears; one that stops matching gets one last UPDATE
/// with `left_filter`; executions outside the filter send nothing.
async fn changes_arrive_as_updates_and_leavers_leave_once(server: &TestServer) {
    let mut client = server.client.clone();
    let a = start(&mut client, "live", chain(2)).await;
    let b = start(&mut client, "live", chain(2)).await;
    let other = start(&mut client, "other", chain(2)).await;
    let mut feed = open(&mut client, running("live")).await.unwrap();
    let (snapshots, _) = until_synced(&mut feed).await;
    assert_eq!(snapshots.len(), 2);

    let updated = update(&mut client, &a.id, "a1", ActionStatus::Running).await;
    let m = next_change(&mut feed).await;
    assert_eq!(m.kind(), pb::WatchEventKind::Update);
    assert!(!m.left_filter);
    assert_eq!(execution(&m).id, a.id);
    assert_eq!(execution(&m).revision, updated.revision);
    assert_eq!(execution(&m).running_actions_count, 1);

    let stopped = stop(&mut client, &b.id).await;
    let m = next_change(&mut feed).await;
    assert_eq!(execution(&m).id, b.id);
    assert!(m.left_filter, "stopped while the filter asks for RUNNING");
    assert_eq!(execution(&m).revision, stopped.revision);
    assert_eq!(execution(&m).status(), ExecutionStatus::Stopped);

    update(&mut client, &other.id, "a1", ActionStatus::Running).await;
    let c = start(&mut client, "live", chain(2)).await;
    let m = next_change(&mut feed).await;
    assert_eq!(
        (execution(&m).id.as_str(), m.kind(), m.left_filter),
        (c.id.as_str(), pb::WatchEventKind::Update, false),
        "the new one appears; the other key's change never does"
    );
    assert!(no_change_for(&mut feed, Duration::from_millis(1_500)).await);
}

/// Promise 3: A client that stops reading is not buffered for and not disconnected: when it
/// reads again it gets each execution's changes coalesced (fewer messages than changes),
/// with revisions strictly increasing per execution, ending at every execution's final
/// state.
async fn a_slow_reader_gets_coalesced_newest_states_with_rising_revisions(server: &TestServer) {
    const EXECUTIONS: usize = 60;
    const NODES: usize = 4;
    let mut client = server.client.clone();
    let mut ids = Vec::new();
    for _ in 0..EXECUTIONS {
        ids.push(start(&mut client, "slow", chain(NODES)).await.id);
    }
    // A connection whose client takes at most 16 KiB before its application reads, so
    // that the server cannot push everything into the client's buffers.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let mut slow = Client::new(channel);
    let mut feed = open(
        &mut slow,
        pb::WatchExecutionsRequest {
            key: "slow".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (snapshots, _) = until_synced(&mut feed).await;
    assert_eq!(snapshots.len(), EXECUTIONS);
    // The feed's client reads nothing while every execution runs to completion.
    let mut writers = Vec::new();
    for chunk in ids.chunks(EXECUTIONS / 4) {
        let (mut client, chunk) = (client.clone(), chunk.to_vec());
        writers.push(tokio::spawn(async move {
            for id in &chunk {
                for n in 1..=NODES {
                    let node = format!("a{n}");
                    update(&mut client, id, &node, ActionStatus::Running).await;
                    update(&mut client, id, &node, ActionStatus::Completed).await;
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let changes = EXECUTIONS * NODES * 2;
    let finals: HashMap<String, i64> = client
        .list_executions(pb::ListExecutionsRequest {
            key: "slow".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .executions
        .into_iter()
        .map(|e| (e.id, e.revision))
        .collect();
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut updates = 0;
    while seen.len() < EXECUTIONS || seen.iter().any(|(id, rev)| finals[id] != *rev) {
        let m = next_change(&mut feed).await;
        assert_eq!(m.kind(), pb::WatchEventKind::Update);
        let e = execution(&m);
        let last = seen.insert(e.id.clone(), e.revision).unwrap_or(1);
        assert!(
            e.revision > last,
            "{}: revision {} after {last}",
            e.id,
            e.revision
        );
        updates += 1;
    }
    assert!(
        updates < changes,
        "{updates} messages for {changes} changes: states were coalesced"
    );
    assert!(no_change_for(&mut feed, Duration::from_millis(1_500)).await);
}

/// Promise 4: A new stream with the cursor of an earlier one's last message gets every
/// matching execution that changed meanwhile, at its current state (a leaver marked as
/// such), then SYNCED, then live changes; a heartbeat's cursor resumes with nothing to
/// catch up.
async fn a_resumed_feed_gets_what_changed_then_synced_then_live(server: &TestServer) {
    let mut client = server.client.clone();
    let changed = start(&mut client, "resume", chain(2)).await;
    let leaver = start(&mut client, "resume", chain(2)).await;
    let untouched = start(&mut client, "resume", chain(2)).await;
    let mut feed = open(&mut client, running("resume")).await.unwrap();
    let (snapshots, cursor) = until_synced(&mut feed).await;
    assert_eq!(snapshots.len(), 3);
    drop(feed);

    update(&mut client, &changed.id, "a1", ActionStatus::Running).await;
    let now = update(&mut client, &changed.id, "a1", ActionStatus::Completed).await;
    stop(&mut client, &leaver.id).await;
    let newcomer = start(&mut client, "resume", chain(2)).await;

    let mut feed = open(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: cursor,
            ..running("resume")
        },
    )
    .await
    .unwrap();
    let (caught_up, cursor) = until_synced(&mut feed).await;
    let got: HashMap<&str, (i64, bool)> = caught_up
        .iter()
        .map(|m| {
            assert_eq!(
                m.kind(),
                pb::WatchEventKind::Update,
                "a resume sends UPDATEs"
            );
            (
                execution(m).id.as_str(),
                (execution(m).revision, m.left_filter),
            )
        })
        .collect();
    assert_eq!(got.len(), caught_up.len(), "each once");
    assert_eq!(
        got[changed.id.as_str()],
        (now.revision, false),
        "at its current state"
    );
    assert_eq!(got[leaver.id.as_str()], (2, true));
    assert_eq!(got[newcomer.id.as_str()], (1, false));
    assert!(
        !got.contains_key(untouched.id.as_str()),
        "unchanged since the cursor"
    );

    let live = update(&mut client, &untouched.id, "a1", ActionStatus::Running).await;
    let m = next_change(&mut feed).await;
    assert_eq!(
        (execution(&m).id.as_str(), execution(&m).revision),
        (untouched.id.as_str(), live.revision)
    );
    drop(feed);

    // The cursor of the last message: nothing to catch up.
    let mut feed = open(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: m.cursor.clone(),
            ..running("resume")
        },
    )
    .await
    .unwrap();
    let (caught_up, _) = until_synced(&mut feed).await;
    assert!(caught_up.is_empty(), "{caught_up:?}");
    let _ = cursor;
}

/// Promise 7: Filters are validated like ListExecutions'; a cursor is refused when it is
/// not one, or was handed out for other filters. Nothing is sent before the error.
async fn bad_filters_and_cursors_fail_before_any_message(server: &TestServer) {
    let mut client = server.client.clone();
    let mut feed = open(&mut client, running("k")).await.unwrap();
    let (_, cursor) = until_synced(&mut feed).await;
    let cases = [
        (
            pb::WatchExecutionsRequest {
                statuses: vec![0],
                ..Default::default()
            },
            "INVALID_STATUS",
            "statuses[0]",
        ),
        (
            pb::WatchExecutionsRequest {
                created_after: Some(prost_types::Timestamp {
                    seconds: 20,
                    nanos: 0,
                }),
                created_before: Some(prost_types::Timestamp {
                    seconds: 10,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "INVALID_TIME_RANGE",
            "created_before",
        ),
        (
            pb::WatchExecutionsRequest {
                view: 9,
                ..Default::default()
            },
            "INVALID_VIEW",
            "view",
        ),
        (
            pb::WatchExecutionsRequest {
                resume_cursor: "not-a-cursor".into(),
                ..Default::default()
            },
            "INVALID_RESUME_CURSOR",
            "resume_cursor",
        ),
        (
            pb::WatchExecutionsRequest {
                resume_cursor: cursor.clone(),
                ..running("another key")
            },
            "RESUME_CURSOR_FILTER_MISMATCH",
            "resume_cursor",
        ),
    ];
    for (request, reason, field) in cases {
        let err = open(&mut client, request).await.unwrap_err();
        assert_error(&err, Code::InvalidArgument, reason, Some(field));
    }
}

/// Promise 7: A token confined to a tenant follows its tenant's executions only, whatever
/// its filter says.
async fn a_confined_feed_follows_its_tenant_only(server: &TestServer) {
    let mut client = server.client.clone();
    start_as(&mut client, WRITER_TOKEN, "t", "globex")
        .await
        .unwrap();
    let ours = start_as(&mut client, ACME_WRITER_TOKEN, "t", "acme")
        .await
        .unwrap();
    let mut feed = client
        .watch_executions(bearer(
            ACME_READER_TOKEN,
            pb::WatchExecutionsRequest {
                user_key: "globex".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (snapshots, _) = until_synced(&mut feed).await;
    let ids: Vec<&str> = snapshots.iter().map(|m| execution(m).id.as_str()).collect();
    assert_eq!(ids, [ours.id.as_str()]);
    let err = open(&mut client, pb::WatchExecutionsRequest::default())
        .await
        .unwrap_err();
    assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
    start_as(&mut client, WRITER_TOKEN, "t", "globex")
        .await
        .unwrap();
    let again = start_as(&mut client, ACME_WRITER_TOKEN, "t", "acme")
        .await
        .unwrap();
    assert_eq!(execution(&next_change(&mut feed).await).id, again.id);
}

/// Promise 5: A HEARTBEAT after each quiet interval, carrying a cursor to resume from; and
/// promise 7: the watch limit counts feeds, and a deadline ends a feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_carry_a_cursor_and_feeds_count_as_watches() {
    let server = TestServer::builder()
        .watch(WatchSettings {
            heartbeat: Duration::from_millis(300),
            max_watches: 2,
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let mut feed = open(&mut client, running("hb")).await.unwrap();
    let (_, synced) = until_synced(&mut feed).await;
    let beat = next_within(&mut feed, 5).await.unwrap().unwrap();
    assert_eq!(beat.kind(), pb::WatchEventKind::Heartbeat);
    assert!(beat.execution.is_none());
    assert_eq!(beat.cursor, synced, "nothing changed");
    let e = start(&mut client, "hb", chain(2)).await;
    let m = next_change(&mut feed).await;
    assert_eq!(execution(&m).id, e.id);
    let beat = next_within(&mut feed, 5).await.unwrap().unwrap();
    assert_eq!(beat.kind(), pb::WatchEventKind::Heartbeat);
    assert_eq!(beat.cursor, m.cursor, "the cursor after the last change");

    let _second = open(&mut client, running("hb")).await.unwrap();
    let err = open(&mut client, running("hb")).await.unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "TOO_MANY_WATCHES", None);
    drop(feed);
    drop(_second);

    // A deadline ends a feed as it ends any call (and gives its watch back).
    let mut request = tonic::Request::new(running("hb"));
    request.set_timeout(Duration::from_millis(700));
    let mut feed = client.watch_executions(request).await.unwrap().into_inner();
    until_synced(&mut feed).await;
    let ended = loop {
        match next_within(&mut feed, 5).await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let err = ended.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    server.stop().await;
}

/// Promise 7: On shutdown a feed ends with UNAVAILABLE naming, in its ErrorInfo, the cursor
/// to resume from: that of the last message it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_a_feed_naming_its_cursor() {
    use tonic_types::StatusExt;
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    start(&mut client, "bye", chain(2)).await;
    let mut feed = open(&mut client, running("bye")).await.unwrap();
    let (_, cursor) = until_synced(&mut feed).await;
    server.stop().await;
    let err = next_within(&mut feed, 10).await.unwrap_err();
    assert_error(&err, Code::Unavailable, "SERVER_SHUTTING_DOWN", None);
    assert_eq!(
        err.get_error_details().error_info().unwrap().metadata["resume_cursor"],
        cursor
    );
}

/// Promise 4: On PostgreSQL, a change whose transaction began (and wrote) before a cursor
/// was handed out and committed after it is not skipped: neither by a feed resumed from
/// that cursor nor by the open feed that handed it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn a_late_commit_is_not_skipped() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let server = TestServer::builder().on(Backend::Postgres).start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "late", chain(2)).await;
    // A writer from outside the server (any writer of the table is stamped the same way):
    // it changes the execution and holds its transaction open.
    let outside = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let late = outside.begin().await.unwrap();
    late.execute_unprepared(&format!(
        "UPDATE executions SET revision = revision + 1, name = 'late' WHERE id = '{}'",
        e.id
    ))
    .await
    .unwrap();
    // Handed out while that transaction runs.
    let mut feed = open(&mut client, running("late")).await.unwrap();
    let (snapshots, cursor) = until_synced(&mut feed).await;
    assert_eq!(
        execution(&snapshots[0]).revision,
        1,
        "the late change is not visible yet"
    );
    late.commit().await.unwrap();

    let m = next_change(&mut feed).await;
    assert_eq!(
        (execution(&m).revision, execution(&m).name.as_str()),
        (2, "late"),
        "the open feed"
    );
    let mut resumed = open(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: cursor,
            ..running("late")
        },
    )
    .await
    .unwrap();
    let (caught_up, _) = until_synced(&mut resumed).await;
    let revisions: Vec<i64> = caught_up.iter().map(|m| execution(m).revision).collect();
    assert_eq!(revisions, [2], "the resumed feed");
    server.stop().await;
}

/// Promise 6: On PostgreSQL, changes made through one replica reach feeds on another, also
/// while that replica's listening connection is cut (a lost notification is caught up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
async fn changes_reach_feeds_on_another_replica_even_without_notifications() {
    use sea_orm::ConnectionTrait;
    let a = TestServer::builder().on(Backend::Postgres).start().await;
    let b = TestServer::builder().same_database_as(&a).start().await;
    let (mut through_a, mut on_b) = (a.client.clone(), b.client.clone());
    let mut feed = open(&mut on_b, running("replicated")).await.unwrap();
    until_synced(&mut feed).await;
    let e = start(&mut through_a, "replicated", fan(3)).await;
    assert_eq!(execution(&next_change(&mut feed).await).id, e.id);

    // Cut every listening connection, then change through A: B hears nothing, and still
    // gets the change.
    let admin = a.postgres().unwrap().admin().await;
    let database = a.postgres().unwrap().name().to_owned();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND query ILIKE 'LISTEN%'"
        ))
        .await
        .unwrap();
    let mut last = 1;
    for n in 0..3 {
        let now = update(
            &mut through_a,
            &e.id,
            &format!("p{n}"),
            ActionStatus::Running,
        )
        .await;
        loop {
            let m = next_change(&mut feed).await;
            assert!(execution(&m).revision > last);
            last = execution(&m).revision;
            if last == now.revision {
                break;
            }
        }
    }
    b.stop().await;
    a.stop().await;
}

/// Promise 2, the filters: a feed matches a live change in memory (the database matched
/// its snapshot). For random `execution_data` documents and filters (literal keys with
/// punctuation and unicode, numbers by value, nested values), each feed announces exactly
/// the executions ListExecutions finds with the same filter. The seed is printed, and
/// `FILTER_SEED` replays one.
async fn live_changes_match_filters_as_the_database_does(server: &TestServer) {
    use rand::SeedableRng;
    use rand::seq::IndexedRandom;
    use serde_json::Value;
    let seed = std::env::var("FILTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("feed filter test: FILTER_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut client = server.client.clone();
    let documents: Vec<_> = (0..30)
        .map(|_| crate::filters::random_document(&mut rng))
        .collect();
    // Half the filters are parts of a document (so they match something), half random.
    let filters: Vec<serde_json::Map<String, Value>> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                let doc = documents.choose(&mut rng).unwrap();
                let (k, v) = doc.iter().next().unwrap();
                serde_json::Map::from_iter([(k.clone(), v.clone())])
            } else {
                crate::filters::random_document(&mut rng)
            }
        })
        .collect();
    let mut feeds = Vec::new();
    for filter in &filters {
        let mut feed = open(
            &mut client,
            pb::WatchExecutionsRequest {
                key: "matched".into(),
                execution_data: Some(to_struct(&Value::Object(filter.clone()))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (before, _) = until_synced(&mut feed).await;
        assert!(before.is_empty());
        feeds.push(feed);
    }
    for (i, doc) in documents.iter().enumerate() {
        let mut request = start_request_for("matched", "");
        request.name = format!("doc{i:02}");
        request.execution_data = Some(to_struct(&Value::Object(doc.clone())));
        client.start_execution(request).await.expect("start");
    }
    for (filter, feed) in filters.iter().zip(&mut feeds) {
        let mut listed: Vec<String> = client
            .list_executions(pb::ListExecutionsRequest {
                key: "matched".into(),
                page_size: 500,
                execution_data: Some(to_struct(&Value::Object(filter.clone()))),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .executions
            .into_iter()
            .map(|e| e.name)
            .collect();
        listed.sort();
        let mut announced = Vec::new();
        while listed.len() > announced.len() {
            announced.push(execution(&next_change(feed).await).name.clone());
        }
        assert!(
            no_change_for(feed, Duration::from_millis(300)).await,
            "filter {filter:?}: more than List finds"
        );
        announced.sort();
        assert_eq!(announced, listed, "filter {filter:?} (FILTER_SEED={seed})");
    }
}
