//! `executions serve`, the real binary: secure by default, draining on SIGTERM, and one
//! JSON log line per call.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;
use executions::proto::v1 as pb;
use tokio::process::{Child, Command};

/// Sends SIGTERM to `child`.
fn sigterm(child: &Child) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// The real binary, sent SIGTERM with a watch open: the watch ends with UNAVAILABLE
/// naming its last revision, and the process exits 0 within its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = serve(dir.path(), &["--listen", &addr, "--shutdown-grace", "5"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
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

    sigterm(&server);
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

    sigterm(&server);
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

/// One server per SQLite file: a second `executions serve` on the file another one serves
/// refuses to start, naming the file; once the first one is gone, it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first_addr = format!("127.0.0.1:{}", free_port());
    let mut first = serve(dir.path(), &["--listen", &first_addr])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connect_when_up(&first_addr).await;
    let second_addr = format!("127.0.0.1:{}", free_port());
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        serve(dir.path(), &["--listen", &second_addr]).output(),
    )
    .await
    .expect("the second server gives up at once")
    .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    let file = dir.path().join("t.db");
    assert!(
        said.contains("one server per SQLite file") && said.contains(&*file.to_string_lossy()),
        "{said}"
    );
    first.kill().await.unwrap();
    first.wait().await.unwrap();
    let mut again = serve(dir.path(), &["--listen", &second_addr])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connect_when_up(&second_addr).await;
    again.kill().await.unwrap();
}

/// A busy port is refused before the database is touched: no migration runs, no SQLite
/// file is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_refused_before_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        serve(dir.path(), &["--listen", &addr]).output(),
    )
    .await
    .expect("refused at once")
    .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("cannot listen on"), "{said}");
    assert!(
        !dir.path().join("t.db").exists(),
        "the database was opened: {said}"
    );
}

/// A flood of calls cannot fill a disk with logs: 3 seconds of open-and-cancel churn
/// (grpcio calls with 1 ms deadlines from 20 threads) write at most 200 per-call lines a
/// second, and say in a WARN line how many were left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_python_grpc),
    ignore = "needs python3 with grpcio, grpcio-tools"
)]
async fn a_flood_of_calls_writes_a_bounded_number_of_log_lines() {
    let python = python(&["grpc", "grpc_tools"]);
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let server = serve(dir.path(), &["--listen", &addr, "--log-format", "json"])
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    connect_when_up(&addr).await;
    let proto = format!("{}/proto", env!("CARGO_MANIFEST_DIR"));
    let churn = run_hostile(
        python,
        "deadline_churn.py",
        &[
            &addr,
            &proto,
            "--churners",
            "20",
            "--readers",
            "1",
            "--seconds",
            "3",
            "--deadline-ms",
            "1",
        ],
        Duration::from_secs(120),
    )
    .await;
    sigterm(&server);
    let output = tokio::time::timeout(Duration::from_secs(15), server.wait_with_output())
        .await
        .expect("the server exits")
        .unwrap();
    // Every second of the server's life may have its 200 lines.
    let seconds = started.elapsed().as_secs() + 1;
    let logs = String::from_utf8_lossy(&output.stderr);
    let calls = churn["churner_outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum::<u64>()
        + churn["reader_calls"].as_u64().unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rpc_lines = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "rpc")
        .count() as u64;
    let suppressed: u64 = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "rpc lines suppressed")
        .map(|l| l["fields"]["suppressed"].as_u64().unwrap())
        .sum();
    assert!(calls > 2_000, "the churn made {calls} calls: {churn}");
    assert!(
        rpc_lines <= 200 * seconds && rpc_lines < calls / 4,
        "{rpc_lines} per-call lines for {calls} calls in {seconds} s"
    );
    assert!(suppressed > 0, "no line says how many were suppressed");
}

/// Resident memory of process `pid`, in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `h2probe.py unread` (its calls taking `payloads` in turn) and waits until all its
/// calls are sent; returns the process, to be awaited for its report.
pub async fn unread_calls(
    python: &str,
    addr: &str,
    path: &str,
    payloads: &[String],
    calls: usize,
    connections: usize,
) -> Child {
    use tokio::io::AsyncBufReadExt;
    let mut probe = Command::new(python)
        .arg(hostile_script("h2probe.py"))
        .args(["unread", addr, path, "--hold", "6"])
        .args(payloads.iter().flat_map(|p| ["--payload", p.as_str()]))
        .args([
            "--calls",
            &calls.to_string(),
            "--connections",
            &connections.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut said = tokio::io::BufReader::new(probe.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), said.next_line())
        .await
        .expect("the probe sends its calls")
        .unwrap();
    assert_eq!(ready.as_deref(), Some(r#"{"ready": true}"#));
    probe
}

/// Answers nobody reads hold no copy of the execution each: with a ~1 MB execution, 1,000
/// watches whose client never reads (an HTTP/2 window of 0) add at most 16 KiB of server
/// memory each, and 2 connections × 1,000 FULL Gets nobody reads keep the server under
/// 400 MiB, while it goes on answering others. (Each of these answers shares the one
/// encoded form of the execution's revision.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(test_python_h2), ignore = "needs python3 with h2")]
async fn unread_answers_share_one_encoded_execution() {
    let python = python(&["h2"]);
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let server = serve(dir.path(), &["--listen", &addr])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();
    let mut client = connect_when_up(&addr).await;
    let mut request = start_request_for("big", "");
    request.execution_data = Some(to_struct(
        &serde_json::json!({ "blob": "x".repeat(1_000_000) }),
    ));
    let e = client.start_execution(request).await.unwrap().into_inner();
    // Warm up: the server's pools and caches, as a running server has them.
    for _ in 0..20 {
        get(&mut client, &e.id).await;
    }
    let payload = [id_request_hex(&e.id)];

    let before = rss_kib(pid);
    let watches = unread_calls(python, &addr, WATCH_PATH, &payload, 1_000, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib(pid);
    let per_watch = during.saturating_sub(before) as f64 / 1_000.0;
    eprintln!("unread watches: RSS {before} KiB -> {during} KiB, {per_watch:.1} KiB each");
    assert!(per_watch <= 16.0, "{per_watch:.1} KiB per unread watch");
    let report = watches.wait_with_output().await.unwrap();
    let report: serde_json::Value = serde_json::from_slice(report.stdout.trim_ascii()).unwrap();
    assert_eq!(report["opened"], 1_000, "{report}");

    let gets = unread_calls(python, &addr, GET_PATH, &payload, 2_000, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib(pid);
    eprintln!("unread Gets: RSS {during} KiB");
    assert!(during < 400 * 1024, "{during} KiB with 2,000 unread Gets");
    let mut other = Client::connect(format!("http://{addr}")).await.unwrap();
    assert_eq!(
        get(&mut other, &e.id).await.revision,
        1,
        "others are answered"
    );
    gets.wait_with_output().await.unwrap();
    drop(server);
}

const WATCH_PATH: &str = "/workflow.executions.v1.ExecutionService/WatchExecution";
const GET_PATH: &str = "/workflow.executions.v1.ExecutionService/GetExecution";
