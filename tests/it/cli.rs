//! The client commands of the real binary against a real server: `executions watch`
//! (outcome, exit codes, resuming after a restart, its token) and `executions demo`.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;
use executions::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `executions watch <id> --addr http://<addr> --json`, output piped, killed on drop.
fn watch_command(addr: std::net::SocketAddr, id: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_executions"));
    command
        .args(["watch", id, "--addr", &format!("http://{addr}"), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Spawns [`watch_command`].
fn watch_cli(addr: std::net::SocketAddr, id: &str) -> Child {
    watch_command(addr, id)
        .spawn()
        .expect("spawn executions watch")
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Reads the CLI's remaining JSON lines until it exits; returns them and its exit code.
async fn finish(mut lines: Lines, mut child: Child) -> (Vec<serde_json::Value>, i32) {
    let mut events = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
    {
        events.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    (events, status.code().unwrap())
}

/// Waits until the CLI printed its first event (the snapshot).
async fn first_line(child: &mut Child) -> (serde_json::Value, Lines) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (serde_json::from_str(&line).unwrap(), lines)
}

/// `--json` prints one line per event with increasing revisions, and the exit code follows
/// the outcome: 0 completed, 1 failed, 3 stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cli_exits_with_the_outcome() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    for (outcome, expected_code) in [("complete", 0), ("fail", 1), ("stop", 3)] {
        let e = start(&mut client, outcome, chain(2)).await;
        let mut child = watch_cli(server.addr, &e.hashid);
        let (snapshot, lines) = first_line(&mut child).await;
        assert_eq!(snapshot["kind"], "SNAPSHOT");
        assert_eq!(snapshot["execution"]["status"], "RUNNING");
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
        let (events, code) = finish(lines, child).await;
        let mut last = snapshot["revision"].as_i64().unwrap();
        for event in &events {
            let revision = event["revision"].as_i64().unwrap();
            assert!(revision > last, "{event}");
            last = revision;
        }
        let final_status = events.last().map(|e| e["execution"]["status"].clone());
        assert_eq!(code, expected_code, "{outcome}: ended {final_status:?}");
    }
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
    let (snapshot, lines) = first_line(&mut child).await;
    assert_eq!(snapshot["revision"], 2);

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

    let (events, code) = finish(lines, child).await;
    assert_eq!(code, 0);
    let revisions: Vec<i64> = events
        .iter()
        .map(|e| e["revision"].as_i64().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert!(
        revisions.iter().all(|r| *r > 2),
        "resumed after revision 2: {revisions:?}"
    );
    assert_eq!(events.last().unwrap()["execution"]["status"], "COMPLETED");
    server.stop().await;
}

/// `executions demo` starts executions of both example templates and drives every action
/// to the end through the API: with no failures, all of them complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_drives_executions_to_completion() {
    let server = TestServer::builder().start().await;
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_executions"))
            .args([
                "demo",
                "--addr",
                &format!("http://{}", server.addr),
                "--executions",
                "4",
                "--max-delay-ms",
                "20",
                "--failure-rate",
                "0",
            ])
            .output(),
    )
    .await
    .expect("the demo finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("all 4 executions finished: 4 COMPLETED"),
        "{stdout}"
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
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        watch_command(server.addr, &e.hashid)
            .env_remove("EXECUTIONS_TOKEN")
            .output(),
    )
    .await
    .expect("gives up at once")
    .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("token"), "{said}");

    let mut child = watch_command(server.addr, &e.hashid)
        .env("EXECUTIONS_TOKEN", WRITER_TOKEN)
        .spawn()
        .unwrap();
    let (snapshot, _lines) = first_line(&mut child).await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    child.kill().await.unwrap();
    server.stop().await;
}
