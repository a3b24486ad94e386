//! WatchExecutions, promises 1 to 4 (see the RPC's doc in the proto): the snapshot and
//! SYNCED, live updates and leavers, slow readers, resuming; on both databases, through a
//! real stream, every read under a timeout. The edges (bad input, tenancy, limits,
//! shutdown, late commits, replicas) are in `feed_edges`.

use std::collections::HashMap;
use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;

db_tests!(
    a_feed_snapshots_what_matches_then_says_synced,
    changes_arrive_as_updates_and_leavers_leave_once,
    a_slow_reader_gets_coalesced_newest_states_with_rising_revisions,
    a_resumed_feed_gets_what_changed_then_synced_then_live,
    live_changes_match_filters_as_the_database_does,
    a_feed_under_churn_never_repeats_or_loses_a_state,
);

/// Promise 1: Without a cursor: a SNAPSHOT of every execution that matches now, newest
/// first, each once, across more than one catch-up page (100), then SYNCED.
async fn a_feed_snapshots_what_matches_then_says_synced(server: &TestServer) {
    let mut client = server.client.clone();
    let mut running_ids = Vec::new();
    for _ in 0..130 {
        running_ids.push(start(&mut client, "fleet", chain(2)).await.id);
    }
    let stopped = start(&mut client, "fleet", chain(2)).await;
    stop_now(&mut client, &stopped.id).await;
    start(&mut client, "elsewhere", chain(2)).await;

    let mut feed = open_feed(&mut client, running_of_key("fleet"))
        .await
        .unwrap();
    let (snapshots, _) = until_synced(&mut feed).await;
    assert!(
        snapshots
            .iter()
            .all(|m| m.kind() == pb::WatchEventKind::Snapshot)
    );
    let got: Vec<&str> = snapshots.iter().map(|m| carried(m).id.as_str()).collect();
    let newest_first: Vec<&str> = running_ids.iter().rev().map(String::as_str).collect();
    assert_eq!(
        got, newest_first,
        "every running one of the key, once, newest first"
    );
    assert!(snapshots.iter().all(|m| m.sent_at.is_some()));
    assert_eq!(carried(&snapshots[0]).template, None, "BASIC by default");
}

/// Promise 2: After SYNCED: each change of a matching execution as an UPDATE with its new
/// state; a new matching execution appears; one that stops matching gets one last UPDATE
/// with `left_filter`; executions outside the filter send nothing.
async fn changes_arrive_as_updates_and_leavers_leave_once(server: &TestServer) {
    let mut client = server.client.clone();
    let a = start(&mut client, "live", chain(2)).await;
    let b = start(&mut client, "live", chain(2)).await;
    let other = start(&mut client, "other", chain(2)).await;
    let mut feed = open_feed(&mut client, running_of_key("live"))
        .await
        .unwrap();
    let (snapshots, _) = until_synced(&mut feed).await;
    assert_eq!(snapshots.len(), 2);

    let updated = update(&mut client, &a.id, "a1", ActionStatus::Running).await;
    let m = next_change(&mut feed).await;
    assert_eq!(m.kind(), pb::WatchEventKind::Update);
    assert!(!m.left_filter);
    assert_eq!(carried(&m).id, a.id);
    assert_eq!(carried(&m).revision, updated.revision);
    assert_eq!(carried(&m).running_actions_count, 1);

    let stopped = stop_now(&mut client, &b.id).await;
    let m = next_change(&mut feed).await;
    assert_eq!(carried(&m).id, b.id);
    assert!(m.left_filter, "stopped while the filter asks for RUNNING");
    assert_eq!(carried(&m).revision, stopped.revision);
    assert_eq!(carried(&m).status(), ExecutionStatus::Stopped);

    update(&mut client, &other.id, "a1", ActionStatus::Running).await;
    let c = start(&mut client, "live", chain(2)).await;
    let m = next_change(&mut feed).await;
    assert_eq!(
        (carried(&m).id.as_str(), m.kind(), m.left_filter),
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
    let mut feed = open_feed(
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
        let e = carried(&m);
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
    let mut feed = open_feed(&mut client, running_of_key("resume"))
        .await
        .unwrap();
    let (snapshots, cursor) = until_synced(&mut feed).await;
    assert_eq!(snapshots.len(), 3);
    drop(feed);

    update(&mut client, &changed.id, "a1", ActionStatus::Running).await;
    let now = update(&mut client, &changed.id, "a1", ActionStatus::Completed).await;
    stop_now(&mut client, &leaver.id).await;
    let newcomer = start(&mut client, "resume", chain(2)).await;

    let mut feed = open_feed(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: cursor,
            ..running_of_key("resume")
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
            (carried(m).id.as_str(), (carried(m).revision, m.left_filter))
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
        (carried(&m).id.as_str(), carried(&m).revision),
        (untouched.id.as_str(), live.revision)
    );
    drop(feed);

    // The cursor of the last message: nothing to catch up.
    let mut feed = open_feed(
        &mut client,
        pb::WatchExecutionsRequest {
            resume_cursor: m.cursor.clone(),
            ..running_of_key("resume")
        },
    )
    .await
    .unwrap();
    let (caught_up, _) = until_synced(&mut feed).await;
    assert!(caught_up.is_empty(), "{caught_up:?}");
    let _ = cursor;
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
        let mut feed = open_feed(
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
            announced.push(carried(&next_change(feed).await).name.clone());
        }
        assert!(
            no_change_for(feed, Duration::from_millis(300)).await,
            "filter {filter:?}: more than List finds"
        );
        announced.sort();
        assert_eq!(announced, listed, "filter {filter:?} (FILTER_SEED={seed})");
    }
}

/// Promises 2 and 3 under churn: executions change while the feed reads its snapshot
/// (three pages, each read at its own point), and a bulk stop of 300 other executions
/// overflows the reader's batches, so the feed catches up again: every execution's
/// revisions still strictly increase on the stream (no state sent twice) and the feed ends
/// at every execution's final state.
async fn a_feed_under_churn_never_repeats_or_loses_a_state(server: &TestServer) {
    const EXECUTIONS: usize = 200;
    const NODES: usize = 4;
    let mut client = server.client.clone();
    let mut ids = Vec::new();
    for _ in 0..EXECUTIONS {
        ids.push(start(&mut client, "churn", fan(NODES)).await.id);
    }
    for _ in 0..300 {
        let mut request = start_request_for("other", "");
        request.stop_events = vec!["halt".into()];
        client.start_execution(request).await.unwrap();
    }
    let mut writers = Vec::new();
    for slice in ids.chunks(EXECUTIONS / 4) {
        let (mut client, slice) = (client.clone(), slice.to_vec());
        writers.push(tokio::spawn(async move {
            for n in 0..NODES {
                for status in [ActionStatus::Running, ActionStatus::Completed] {
                    for id in &slice {
                        update(&mut client, id, &format!("p{n}"), status).await;
                    }
                }
            }
        }));
    }
    let mut feed = open_feed(
        &mut client,
        pb::WatchExecutionsRequest {
            key: "churn".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut seen: HashMap<String, i64> = HashMap::new();
    let take = |m: &FeedMessage, seen: &mut HashMap<String, i64>| {
        let e = carried(m);
        if let Some(last) = seen.insert(e.id.clone(), e.revision) {
            assert!(
                e.revision > last,
                "{}: revision {} after {last}",
                e.id,
                e.revision
            );
        }
    };
    // UPDATEs of executions already sent may come before SYNCED.
    let (before_synced, _) = until_synced(&mut feed).await;
    for m in &before_synced {
        take(m, &mut seen);
    }
    let snapshots = before_synced
        .iter()
        .filter(|m| m.kind() == pb::WatchEventKind::Snapshot)
        .count();
    assert_eq!(snapshots, EXECUTIONS);
    let stopped = client
        .stop_executions(pb::StopExecutionsRequest {
            stop_event: "halt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.stopped_count, 300);
    for writer in writers {
        writer.await.unwrap();
    }
    let finals = 1 + 2 * NODES as i64;
    while seen.values().any(|revision| *revision < finals) {
        let m = next_change(&mut feed).await;
        take(&m, &mut seen);
    }
    assert!(no_change_for(&mut feed, Duration::from_millis(1_500)).await);
}
