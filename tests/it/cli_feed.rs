//! `executions watch --all` (the WatchExecutions feed) of the real binary against a real
//! server: its JSON lines off a terminal, resuming from a cursor across a server restart,
//! its table on a terminal, and refusing bad filters as the other verbs do.

use std::collections::HashMap;
use std::time::Duration;

use crate::db_tests;
use crate::harness::*;
use executions::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

db_tests!(
    watch_all_prints_snapshots_synced_then_updates,
    watch_all_refuses_bad_filters_and_cursors,
);

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Spawns `executions watch --all ARGS… --addr ADDR`, output piped (not a terminal).
fn watch_all(addr: std::net::SocketAddr, args: &[&str]) -> (Child, Lines) {
    let addr = addr.to_string();
    let mut all = vec!["watch", "--all"];
    all.extend(args);
    all.extend(["--addr", &addr]);
    let mut child = executions(&all)
        .spawn()
        .expect("spawn executions watch --all");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next message the CLI printed that is not a HEARTBEAT, as JSON; panics after 30 s.
async fn next_message(lines: &mut Lines) -> serde_json::Value {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line within 30 s")
            .unwrap()
            .expect("the CLI still running");
        let message: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            !message["cursor"].as_str().unwrap_or_default().is_empty(),
            "every message has a cursor: {line}"
        );
        if message["kind"] != "WATCH_EVENT_KIND_HEARTBEAT" {
            return message;
        }
    }
}

fn hashid(message: &serde_json::Value) -> &str {
    message["execution"]["hashid"].as_str().unwrap()
}

fn revision(message: &serde_json::Value) -> i64 {
    message["execution"]["revision"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Off a terminal with `--json`: a SNAPSHOT line per RUNNING execution (not the stopped
/// one), a SYNCED line, then an UPDATE with `leftFilter` when one is stopped, one when a
/// running one changes, and one for an execution started later.
async fn watch_all_prints_snapshots_synced_then_updates(server: &TestServer) {
    let mut client = server.client.clone();
    let a = start(&mut client, "feed-a", chain(2)).await;
    let b = start(&mut client, "feed-b", chain(2)).await;
    let done = start(&mut client, "feed-done", chain(1)).await;
    client
        .stop_execution(stop_request(&done.id, ""))
        .await
        .unwrap();
    let (_child, mut lines) = watch_all(server.addr, &["--status", "RUNNING", "--json"]);

    let mut snapshots = Vec::new();
    let synced = loop {
        let message = next_message(&mut lines).await;
        if message["kind"] != "WATCH_EVENT_KIND_SNAPSHOT" {
            break message;
        }
        assert_eq!(message["execution"]["status"], "EXECUTION_STATUS_RUNNING");
        assert!(message["execution"].get("template").is_none(), "BASIC view");
        snapshots.push(hashid(&message).to_owned());
    };
    snapshots.sort();
    let mut expected = vec![a.hashid.clone(), b.hashid.clone()];
    expected.sort();
    assert_eq!(snapshots, expected);
    assert_eq!(synced["kind"], "WATCH_EVENT_KIND_SYNCED");
    assert!(synced.get("execution").is_none(), "{synced}");

    client
        .stop_execution(stop_request(&a.id, ""))
        .await
        .unwrap();
    let left = next_message(&mut lines).await;
    assert_eq!(left["kind"], "WATCH_EVENT_KIND_UPDATE", "{left}");
    assert_eq!(hashid(&left), a.hashid);
    assert_eq!(left["execution"]["status"], "EXECUTION_STATUS_STOPPED");
    assert_eq!(left["leftFilter"], true, "{left}");

    update(&mut client, &b.id, "a1", ActionStatus::Running).await;
    let changed = next_message(&mut lines).await;
    assert_eq!(changed["kind"], "WATCH_EVENT_KIND_UPDATE", "{changed}");
    assert_eq!(hashid(&changed), b.hashid);
    assert_eq!(revision(&changed), 2);
    assert!(changed.get("leftFilter").is_none(), "{changed}");

    let c = start(&mut client, "feed-c", chain(2)).await;
    let joined = next_message(&mut lines).await;
    assert_eq!(joined["kind"], "WATCH_EVENT_KIND_UPDATE", "{joined}");
    assert_eq!(hashid(&joined), c.hashid);
    assert_eq!(joined["execution"]["status"], "EXECUTION_STATUS_RUNNING");
    assert!(joined.get("leftFilter").is_none(), "{joined}");
}

/// A filter the CLI cannot read is a usage error (exit 2, before connecting), and so is
/// mixing an ID with --all or the filters with an ID; a filter or cursor the server
/// refuses is exit 4 at once, with its reason, and nothing on stdout.
async fn watch_all_refuses_bad_filters_and_cursors(server: &TestServer) {
    for (args, said) in [
        (&["watch", "--all", "--data", "novalue"][..], "KEY=VALUE"),
        (
            &["watch", "--all", "--status", "done"][..],
            "is not a status",
        ),
        (&["watch", "v8brp", "--all"][..], "--all"),
        (&["watch", "v8brp", "--status", "running"][..], "--status"),
        (&["watch", "v8brp", "--resume", "x"][..], "--resume"),
        (&["watch"][..], "ID"),
    ] {
        let ran = cli(server.addr, args).await.expect_code(2);
        assert!(ran.stderr.contains(said), "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
    }

    // A cursor handed out by a feed with other filters.
    let mut client = server.client.clone();
    let mut feed = open_feed(&mut client, running_of_key("other"))
        .await
        .unwrap();
    let (_, other_cursor) = until_synced(&mut feed).await;
    drop(feed);

    let backwards = [
        "--created-after",
        "2025-10-07T00:00:00Z",
        "--created-before",
        "2025-10-06T00:00:00Z",
    ];
    for (args, reason) in [
        (&["--resume", "not-a-cursor"][..], "INVALID_RESUME_CURSOR"),
        (
            &["--key", "mine", "--resume", &other_cursor][..],
            "RESUME_CURSOR_FILTER_MISMATCH",
        ),
        (&backwards[..], "INVALID_TIME_RANGE"),
    ] {
        let mut all = vec!["watch", "--all"];
        all.extend(args);
        let started = std::time::Instant::now();
        let ran = cli(server.addr, &all).await.expect_code(4);
        assert!(started.elapsed() < Duration::from_secs(10), "no retries");
        assert!(ran.stderr.starts_with("error: "), "{}", ran.stderr);
        assert!(ran.stderr.contains("InvalidArgument"), "{}", ran.stderr);
        assert!(ran.stderr.contains(reason), "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    }

    let nobody: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let ran = cli(nobody, &["watch", "--all"]).await.expect_code(4);
    assert!(ran.stderr.contains("Connection refused"), "{}", ran.stderr);
}

/// When the server restarts mid-feed the CLI (off a terminal: JSON lines without
/// --json) resumes from the cursor the server named as it shut down: it gets what changed
/// meanwhile as UPDATEs and a new SYNCED, never a second snapshot, and still only what
/// matches its filter.
async fn watch_all_resumes_after_a_server_restart(backend: Backend) {
    let server = TestServer::builder().on(backend).start().await;
    let mut client = server.client.clone();
    let with_region = |region: &str| pb::StartExecutionRequest {
        key: "restart".into(),
        template: Some(chain(2)),
        execution_data: Some(to_struct(&serde_json::json!({ "region": region }))),
        ..Default::default()
    };
    let eu = client
        .start_execution(with_region("eu"))
        .await
        .unwrap()
        .into_inner();
    client.start_execution(with_region("us")).await.unwrap();
    let (mut child, mut lines) = watch_all(server.addr, &["--data", "region=eu"]);
    let snapshot = next_message(&mut lines).await;
    assert_eq!(snapshot["kind"], "WATCH_EVENT_KIND_SNAPSHOT");
    assert_eq!(hashid(&snapshot), eu.hashid);
    assert_eq!(
        next_message(&mut lines).await["kind"],
        "WATCH_EVENT_KIND_SYNCED"
    );

    // Restart: the same database on the same address; changes right away, some of them
    // perhaps before the CLI is back.
    let addr = server.addr;
    let database = server.stop_keeping_database().await;
    let server = TestServer::builder()
        .database(database)
        .addr(addr)
        .start()
        .await;
    let mut client = server.client.clone();
    update(&mut client, &eu.id, "a1", ActionStatus::Running).await;
    let later = client
        .start_execution(with_region("eu"))
        .await
        .unwrap()
        .into_inner();
    client.start_execution(with_region("us")).await.unwrap();

    let mut newest: HashMap<String, i64> = HashMap::from([(eu.hashid.clone(), 1)]);
    let mut synced_again = false;
    while !(synced_again
        && newest.get(&eu.hashid) == Some(&2)
        && newest.contains_key(&later.hashid))
    {
        let message = next_message(&mut lines).await;
        match message["kind"].as_str().unwrap() {
            "WATCH_EVENT_KIND_SYNCED" => synced_again = true,
            "WATCH_EVENT_KIND_UPDATE" => {
                let (hashid, revision) = (hashid(&message).to_owned(), revision(&message));
                assert!(hashid == eu.hashid || hashid == later.hashid, "{message}");
                let seen = newest.entry(hashid).or_default();
                assert!(revision >= *seen, "never an older state: {message}");
                *seen = revision;
            }
            _ => panic!("resumed, not started again: {message}"),
        }
    }
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("SERVER_SHUTTING_DOWN"), "{stderr}");
    assert!(stderr.contains("resuming from cursor"), "{stderr}");
    server.stop().await;
}

mod watch_all_resumes_after_a_server_restart {
    use crate::harness::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::watch_all_resumes_after_a_server_restart(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(not(test_database), ignore = "needs TEST_DATABASE_URL")]
    async fn postgres() {
        super::watch_all_resumes_after_a_server_restart(Backend::Postgres).await;
    }
}

/// On a terminal (a pseudo-terminal, through `script`) the feed is a table, newest first,
/// that loses an execution once it leaves the filter; Ctrl-C leaves the last table on the
/// screen, names the cursor to resume from, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_all_on_a_terminal_is_a_live_table() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let older = start(&mut client, "older", chain(2)).await;
    let newer = start(&mut client, "newer", chain(3)).await;
    update(&mut client, &newer.id, "a1", ActionStatus::Running).await;
    update(&mut client, &newer.id, "a1", ActionStatus::Completed).await;
    // `exec`: the watch is script's child, to be sent Ctrl-C's signal.
    let command = format!(
        "exec {} watch --all --status running --addr {}",
        env!("CARGO_BIN_EXE_executions"),
        server.addr
    );
    let mut script = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = script.stdout.take().unwrap();
    let mut screen = String::new();
    let mut read_until = async |wanted: &str, screen: &mut String| {
        let mut buf = [0u8; 4096];
        while !screen.contains(wanted) {
            let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{wanted:?} within 30 s: {screen}"))
                .unwrap();
            assert!(n > 0, "{wanted:?} before the end: {screen}");
            screen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    // The whole table comes in the draw that says it is live.
    read_until("2 executions · live", &mut screen).await;
    read_until(&older.hashid, &mut screen).await;
    let (at_newer, at_older) = (screen.rfind(&newer.hashid), screen.rfind(&older.hashid));
    assert!(
        at_newer.is_some() && at_newer < at_older,
        "newest first: {screen}"
    );
    assert!(shows(&screen, &newer, "RUNNING  1/3"), "{screen}");
    assert!(shows(&screen, &older, "RUNNING  0/2"), "{screen}");

    client
        .stop_execution(stop_request(&older.id, ""))
        .await
        .unwrap();
    screen.clear();
    read_until("1 execution · live", &mut screen).await;
    read_until(&newer.hashid, &mut screen).await;
    assert!(shows(&screen, &newer, "RUNNING  1/3"), "{screen}");
    assert!(!screen.contains(&older.hashid), "{screen}");

    let watch =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", script.id().unwrap()))
            .unwrap();
    let signalled = Command::new("kill")
        .args(["-INT", watch.trim()])
        .status()
        .await
        .unwrap();
    assert!(signalled.success());
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(
        rest.contains("resume from here with the same filters and --resume "),
        "{rest}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), script.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    server.stop().await;
}

/// Whether the last row of `e` drawn on `screen` has `status_and_counts` after its hashid
/// (rows are drawn as terminal-wide lines, not separated by newlines).
fn shows(screen: &str, e: &pb::Execution, status_and_counts: &str) -> bool {
    screen.rfind(&e.hashid).is_some_and(|at| {
        let row: String = screen[at + e.hashid.len()..].chars().take(40).collect();
        row.trim_start().starts_with(status_and_counts)
    })
}
