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
    let server = TestServer::builder().start().await;
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
    let mut child = watch_cli(server.addr, &e.id, true);
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

/// The real binary, sent SIGTERM with a watch open: the watch ends with UNAVAILABLE
/// naming its last revision, and the process exits 0 within its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_executions"))
        .args(["serve", "--listen", &addr, "--shutdown-grace", "5"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut client = connect_when_up(&addr).await;
    let e = start(&mut client, "sigterm", chain(1)).await;
    let mut events = client
        .watch_execution(watch_request(&e.id))
        .await
        .unwrap()
        .into_inner();
    let snapshot = next_within(&mut events, 10).await.unwrap().unwrap();
    assert_eq!(snapshot.revision, 1);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let err = next_within(&mut events, 10).await.unwrap_err();
    assert_error(&err, tonic::Code::Unavailable, "SERVER_SHUTTING_DOWN", None);
    assert!(
        err.message().contains("last revision sent: 1"),
        "{}",
        err.message()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exited in {:?}",
        started.elapsed()
    );
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

/// Waits until a server on `addr` answers, and returns a client of it.
async fn connect_when_up(addr: &str) -> Client {
    for _ in 0..100 {
        if let Ok(client) = Client::connect(format!("http://{addr}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server at {addr} did not come up");
}

/// `executions serve` with these arguments over a fresh SQLite file in `dir`.
fn serve(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_executions"));
    command
        .arg("serve")
        .args(args)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
        )
        .env_remove("EXECUTIONS_TOKENS_FILE")
        .env_remove("EXECUTIONS_ALLOW_UNAUTHENTICATED")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Secure by default: without a tokens file the real binary refuses to listen beyond
/// loopback, saying how to fix it; it does serve there with `--allow-unauthenticated`, or
/// with a tokens file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_expose_an_unauthenticated_api() {
    let dir = tempfile::tempdir().unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        serve(dir.path(), &["--listen", "0.0.0.0:0"]).output(),
    )
    .await
    .expect("exits at once")
    .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--allow-unauthenticated") && said.contains("--tokens-file"),
        "{said}"
    );

    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[tokens]]\nname = \"ops\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nrole = \"writer\"\n",
    )
    .unwrap();
    for extra in [
        vec!["--allow-unauthenticated"],
        vec!["--tokens-file", tokens.to_str().unwrap()],
    ] {
        let port = free_port();
        let listen = format!("0.0.0.0:{port}");
        let mut args = vec!["--listen", listen.as_str()];
        args.extend(extra.iter().copied());
        let mut server = serve(dir.path(), &args).spawn().unwrap();
        let mut client = connect_when_up(&format!("127.0.0.1:{port}")).await;
        let answered = client
            .list_executions(pb::ListExecutionsRequest::default())
            .await;
        match extra[0] {
            "--allow-unauthenticated" => assert!(answered.is_ok(), "{answered:?}"),
            _ => assert_eq!(answered.unwrap_err().code(), tonic::Code::Unauthenticated),
        }
        server.kill().await.unwrap();
    }
}

/// `--log-format json` writes one JSON object per line; each call has one `rpc` line
/// whose span carries the method and peer, with its status code and latency; the bearer
/// token appears nowhere in the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_one_json_line_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let token = "log-test-token-4411";
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, token_entry("ops", token, "writer", None)).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = serve(
        dir.path(),
        &[
            "--listen",
            &listen,
            "--tokens-file",
            tokens.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    )
    .env("RUST_LOG", "info")
    .spawn()
    .unwrap();
    let mut client = connect_when_up(&listen).await;
    let request = bearer(token, get_request("01890a5d-ac96-774b-bcce-b302099a8057"));
    let err = client.get_execution(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let refused = client
        .get_execution(pb::GetExecutionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::time::timeout(Duration::from_secs(15), server.wait_with_output())
        .await
        .expect("the server exits")
        .unwrap();
    let logs = String::from_utf8(output.stderr).unwrap();
    assert!(
        !logs.contains(token),
        "the token leaked into the logs:\n{logs}"
    );
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let calls: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "rpc")
        .collect();
    let get = "workflow.executions.v1.ExecutionService/GetExecution";
    let codes: Vec<&str> = calls
        .iter()
        .filter(|line| line["span"]["method"] == get)
        .map(|line| line["fields"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["NOT_FOUND", "UNAUTHENTICATED"], "{logs}");
    for call in calls.iter().filter(|line| line["span"]["method"] == get) {
        assert!(call["fields"]["latency_ms"].as_f64().is_some(), "{call}");
        let peer = call["span"]["peer"].as_str().unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "{call}");
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
    let addr = format!("http://{}", server.addr);
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_executions"))
            .args(["watch", &e.hashid, "--addr", &addr, "--json"])
            .env_remove("EXECUTIONS_TOKEN")
            .output(),
    )
    .await
    .expect("gives up at once")
    .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("token"), "{said}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_executions"))
        .args(["watch", &e.hashid, "--addr", &addr, "--json"])
        .env("EXECUTIONS_TOKEN", WRITER_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (snapshot, _lines) = first_line(&mut child).await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    child.kill().await.unwrap();
    server.stop().await;
}
