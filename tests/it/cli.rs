//! The following commands of the real binary against a real server: `executions watch`
//! (outcome, exit codes, its three outputs, resuming after a restart, failing fast, its
//! token), `executions wait`, and `executions demo`.

use std::time::Duration;

use crate::harness::*;
use executions::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `executions watch <id> --addr <addr> --json`, output piped, killed on drop.
fn watch_command(addr: std::net::SocketAddr, id: &str) -> Command {
    executions(&["watch", id, "--addr", &addr.to_string(), "--json"])
}

/// Spawns [`watch_command`].
fn watch_cli(addr: std::net::SocketAddr, id: &str) -> Child {
    watch_command(addr, id)
        .spawn()
        .expect("spawn executions watch")
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Reads the CLI's remaining lines until it exits; returns them and its exit code.
async fn finish_lines(mut lines: Lines, mut child: Child) -> (Vec<String>, i32) {
    let mut out = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
    {
        out.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    (out, status.code().unwrap())
}

/// [`finish_lines`], each line read as JSON.
async fn finish_json(lines: Lines, child: Child) -> (Vec<serde_json::Value>, i32) {
    let (lines, code) = finish_lines(lines, child).await;
    let events = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (events, code)
}

/// Waits until the CLI printed its first line.
async fn first_line(child: &mut Child) -> (String, Lines) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (line, lines)
}

fn revision(event: &serde_json::Value) -> i64 {
    event["revision"].as_str().unwrap().parse().unwrap()
}

/// `--json` prints each event as canonical proto3 JSON (grpcurl's names, enum names,
/// int64 as strings) with increasing revisions, and the exit code follows the outcome:
/// 0 completed, 1 failed, 3 stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_exits_with_the_outcome() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    for (outcome, expected_code) in [("complete", 0), ("fail", 1), ("stop", 3)] {
        let e = start(&mut client, outcome, chain(2)).await;
        let mut child = watch_cli(server.addr, &e.hashid);
        let (first, lines) = first_line(&mut child).await;
        let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(snapshot["kind"], "WATCH_EVENT_KIND_SNAPSHOT");
        assert_eq!(snapshot["revision"], "1");
        assert_eq!(snapshot["execution"]["status"], "EXECUTION_STATUS_RUNNING");
        assert_eq!(snapshot["execution"]["actionsCount"], 2);
        assert_eq!(snapshot["execution"]["hashid"], e.hashid.as_str());
        assert!(snapshot["sentAt"].as_str().unwrap().ends_with('Z'));
        match outcome {
            "complete" => {
                for node in ["a1", "a2"] {
                    update(&mut client, &e.id, node, ActionStatus::Running).await;
                    update(&mut client, &e.id, node, ActionStatus::Completed).await;
                }
            }
            "fail" => {
                update(&mut client, &e.id, "a1", ActionStatus::Failed).await;
            }
            _ => {
                client
                    .stop_execution(stop_request(&e.id, ""))
                    .await
                    .unwrap();
            }
        }
        let (events, code) = finish_json(lines, child).await;
        let mut last = revision(&snapshot);
        for event in &events {
            assert!(revision(event) > last, "{event}");
            last = revision(event);
        }
        let final_status = events.last().map(|e| e["execution"]["status"].clone());
        assert_eq!(code, expected_code, "{outcome}: ended {final_status:?}");
    }
    server.stop().await;
}

/// With stdout not a terminal, `watch` prints a line naming the execution, one line per
/// event with its real counts, and a last line with the real final counts: a stopped
/// execution with 1 of 5 actions completed ends `1/5 completed, 4 stopped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_without_a_terminal_prints_one_line_per_event() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start_example(&mut client, "branching.json").await;
    let mut child = executions(&["watch", &e.hashid, "--addr", &server.addr.to_string()])
        .spawn()
        .unwrap();
    let (header, lines) = first_line(&mut child).await;
    assert!(
        header.contains(&e.hashid) && header.contains(&e.name),
        "{header}"
    );
    assert!(header.contains("5 actions"), "{header}");
    update(&mut client, &e.id, "account", ActionStatus::Running).await;
    update(&mut client, &e.id, "account", ActionStatus::Completed).await;
    client
        .stop_execution(stop_request(&e.id, "enough"))
        .await
        .unwrap();
    let (lines, code) = finish_lines(lines, child).await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines.len(), 5, "4 events and the final line: {lines:?}");
    assert!(
        lines[0].starts_with("rev 1  SNAPSHOT  RUNNING  0/5 completed"),
        "{lines:?}"
    );
    assert!(lines[1].contains("1 running"), "{lines:?}");
    assert!(lines[3].starts_with("rev 4  UPDATE  STOPPED"), "{lines:?}");
    assert_eq!(
        lines[4],
        format!("{} STOPPED: 1/5 completed, 4 stopped", e.hashid)
    );
    server.stop().await;
}

/// On a terminal (a pseudo-terminal, through `script`), the progress bar ends on the
/// real counts (`1/5 actions completed`, not `5/5`) and the status, after a line naming
/// the execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_on_a_terminal_ends_on_the_real_counts() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start_example(&mut client, "branching.json").await;
    update(&mut client, &e.id, "account", ActionStatus::Running).await;
    update(&mut client, &e.id, "account", ActionStatus::Completed).await;
    update(&mut client, &e.id, "laptop", ActionStatus::Failed).await;
    client
        .stop_execution(stop_request(&e.id, ""))
        .await
        .unwrap();
    let command = format!(
        "{} watch {} --addr {}",
        env!("CARGO_BIN_EXE_executions"),
        e.hashid,
        server.addr
    );
    let ran = finish(
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .await;
    let screen = ran.stdout;
    assert_eq!(ran.code, 3, "{screen}");
    assert!(
        screen.contains(&format!("watching {}", e.hashid)),
        "{screen}"
    );
    assert!(
        screen.contains("1/5 actions completed  STOPPED"),
        "{screen}"
    );
    assert!(screen.contains("failed 1  stopped 3"), "{screen}");
    assert!(!screen.contains("5/5"), "{screen}");
    server.stop().await;
}

/// Nothing listening: `watch` gives up at once (no retries) with exit code 4 and the
/// cause on stderr; an unknown id is an error on stderr, not a progress bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_fails_fast_and_says_why() {
    let nobody: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let started = std::time::Instant::now();
    let ran = cli(nobody, &["watch", "v8brp"]).await.expect_code(4);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(ran.stderr.starts_with("error: "), "{}", ran.stderr);
    assert!(ran.stderr.contains("Connection refused"), "{}", ran.stderr);

    let server = TestServer::builder().start().await;
    let ran = cli(server.addr, &["watch", "zzzzzz"]).await.expect_code(4);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(ran.stderr.contains("NotFound"), "{}", ran.stderr);
    assert!(ran.stderr.contains("EXECUTION_NOT_FOUND"), "{}", ran.stderr);
    server.stop().await;
}

/// When the server restarts mid-watch the CLI reconnects, resumes from the last revision
/// it saw, and still ends on the terminal state with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_resumes_after_a_server_restart() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "restart", chain(2)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let mut child = watch_cli(server.addr, &e.id);
    let (first, lines) = first_line(&mut child).await;
    let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(revision(&snapshot), 2);

    // Restart: the same database on the same address.
    let addr = server.addr;
    let database = server.stop_keeping_database().await;
    let server = TestServer::builder()
        .database(database)
        .addr(addr)
        .start()
        .await;
    let mut client = server.client.clone();
    update(&mut client, &e.id, "a1", ActionStatus::Completed).await;
    update(&mut client, &e.id, "a2", ActionStatus::Running).await;
    update(&mut client, &e.id, "a2", ActionStatus::Completed).await;

    let (events, code) = finish_json(lines, child).await;
    assert_eq!(code, 0);
    let revisions: Vec<i64> = events.iter().map(revision).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert!(
        revisions.iter().all(|r| *r > 2),
        "resumed after revision 2: {revisions:?}"
    );
    assert_eq!(
        events.last().unwrap()["execution"]["status"],
        "EXECUTION_STATUS_COMPLETED"
    );
    server.stop().await;
}

/// `executions wait A B` blocks until both finish and exits with the worst outcome: 3
/// when one completed and one was stopped, 1 when one failed; one line per execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_cli_exits_with_the_worst_outcome() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    for (second, expected) in [("stop", 3), ("fail", 1)] {
        let a = start(&mut client, "wait-a", chain(1)).await;
        let b = start(&mut client, "wait-b", chain(1)).await;
        let waiting = executions(&["wait", &a.hashid, &b.id, "--addr", &server.addr.to_string()])
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        update(&mut client, &a.id, "a1", ActionStatus::Running).await;
        update(&mut client, &a.id, "a1", ActionStatus::Completed).await;
        if second == "stop" {
            client
                .stop_execution(stop_request(&b.id, ""))
                .await
                .unwrap();
        } else {
            update(&mut client, &b.id, "a1", ActionStatus::Failed).await;
        }
        let output = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(expected), "{stdout}");
        assert!(
            stdout.contains(&format!("{}  COMPLETED  1/1 completed", a.hashid)),
            "{stdout}"
        );
        assert!(stdout.lines().any(|l| l.starts_with(&b.hashid)), "{stdout}");
    }
    // Every one already finished: at once.
    let ran = cli(server.addr, &["wait", "zzzzzz"]).await.expect_code(4);
    assert!(ran.stderr.contains("EXECUTION_NOT_FOUND"), "{}", ran.stderr);
    server.stop().await;
}

/// `executions demo` (given HOST:PORT without a scheme) starts executions of both example
/// templates and drives every action to the end through the API: with no failures, all
/// of them complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_drives_executions_to_completion() {
    let server = TestServer::builder().start().await;
    let ran = cli(
        server.addr,
        &[
            "demo",
            "--executions",
            "4",
            "--max-delay-ms",
            "20",
            "--failure-rate",
            "0",
        ],
    )
    .await
    .expect_code(0);
    assert!(
        ran.stdout
            .contains("all 4 executions finished: 4 COMPLETED"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains(&format!("executions watch --addr {} ", server.addr)),
        "{}",
        ran.stdout
    );
    let mut client = server.client.clone();
    let listed = client
        .list_executions(pb::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .executions;
    assert_eq!(listed.len(), 4);
    for e in &listed {
        assert_eq!(e.status(), ExecutionStatus::Completed);
        assert_eq!(e.completed_actions_count, e.actions_count);
    }
    assert!(listed.iter().any(|e| e.key == "order_fulfilment"));
    assert!(listed.iter().any(|e| e.key == "employee_onboarding"));
    server.stop().await;
}

/// `demo` refuses what its help rules out, before it connects: a failure rate outside 0
/// to 1, no executions, an address with an unknown scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_flags_out_of_range() {
    for (args, said) in [
        (&["demo", "--failure-rate", "2"][..], "between 0 and 1"),
        (&["demo", "--failure-rate", "-0.1"][..], "between 0 and 1"),
        (&["demo", "--executions", "0"][..], "--executions"),
        (&["demo", "--addr", "grpc://127.0.0.1:1"][..], "HOST:PORT"),
    ] {
        let ran = finish(&mut executions(args)).await.expect_code(2);
        assert!(ran.stderr.contains(said), "{args:?}: {}", ran.stderr);
    }
}

/// `executions watch --token` reaches a server with tokens; without the token it gives up
/// at once with exit code 4, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_sends_its_token() {
    let server = TestServer::builder().config(tokens_config()).start().await;
    let mut client = server.client.clone();
    let e = client
        .start_execution(bearer(
            WRITER_TOKEN,
            pb::StartExecutionRequest {
                key: "cli-token".into(),
                template: Some(chain(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let refused = finish(&mut watch_command(server.addr, &e.hashid)).await;
    assert_eq!(refused.code, 4);
    assert!(refused.stderr.contains("token"), "{}", refused.stderr);

    let mut child = watch_command(server.addr, &e.hashid)
        .env("EXECUTIONS_TOKEN", WRITER_TOKEN)
        .spawn()
        .unwrap();
    let (first, _lines) = first_line(&mut child).await;
    let snapshot: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(snapshot["kind"], "WATCH_EVENT_KIND_SNAPSHOT");
    child.kill().await.unwrap();
    server.stop().await;
}
