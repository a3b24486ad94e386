//! `executions watch`, run as the real binary against a real server.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;
use executions::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn watch_cli(addr: std::net::SocketAddr, id: &str, json: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_executions"));
    command.args(["watch", id, "--addr", &format!("http://{addr}")]);
    if json {
        command.arg("--json");
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
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
    let server = TestServer::sqlite().await;
    let mut client = server.client.clone();
    for (outcome, expected_code) in [("complete", 0), ("fail", 1), ("stop", 3)] {
        let e = start(&mut client, outcome, chain(2)).await;
        let mut child = watch_cli(server.addr, &e.hashid, true);
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
                    .stop_execution(pb::StopExecutionRequest {
                        id: e.id.clone(),
                        ..Default::default()
                    })
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
    let server = TestServer::sqlite().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "restart", chain(2)).await;
    update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    let mut child = watch_cli(server.addr, &e.id, true);
    let (snapshot, lines) = first_line(&mut child).await;
    assert_eq!(snapshot["revision"], 2);

    let server = server.restart().await;
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
