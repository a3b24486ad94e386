//! Hostile and unusual clients, through a raw HTTP/2 client (Python's `h2`) and Python
//! grpcio: none can starve the others, every error they get carries an ErrorInfo, and
//! deadlines end calls whether or not the client enforces them.

use std::time::{Duration, Instant};

use executions::grpc::{Limits, ServerConfig};
use prost::Message;
use tonic::Code;

use crate::harness::*;

const GET: &str = "/workflow.executions.v1.ExecutionService/GetExecution";
const WATCH: &str = "/workflow.executions.v1.ExecutionService/WatchExecution";
const UPDATE: &str = "/workflow.executions.v1.ExecutionService/UpdateAction";

/// The status a raw call got, from `h2probe.py call`'s answer.
fn raw_status(answer: &serde_json::Value) -> tonic::Status {
    use base64::Engine;
    let details = answer["details_b64"].as_str().unwrap_or_default();
    let details = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(details.trim_end_matches('='))
        .unwrap_or_default();
    let message = answer["message"].as_str().unwrap_or_default();
    let message = percent_decode(message);
    tonic::Status::with_details(
        Code::from_i32(answer["status"].as_i64().unwrap() as i32),
        message,
        details.into(),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection that opens 1,024 calls and never sends their messages holds no
/// load-shedding slot: with the limit at 16, every call of another client succeeds while
/// it stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_python_h2), ignore = "needs python3 with h2")]
async fn stalled_requests_hold_no_slot() {
    let python = python(&["h2"]);
    let server = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                max_concurrent_calls: 16,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "stalled", chain(1)).await;
    let addr = server.addr.to_string();
    let stall = tokio::spawn({
        let python = python.to_owned();
        async move {
            run_hostile(
                &python,
                "h2probe.py",
                &["stall", &addr, GET, "--calls", "1024", "--hold", "6"],
                Duration::from_secs(60),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..50 {
        let read = client.get_execution(get_request(&e.id)).await;
        assert!(read.is_ok(), "refused while a client stalls: {read:?}");
    }
    let stalled = stall.await.unwrap();
    assert_eq!(stalled["opened"], 1024, "{stalled}");
    assert_eq!(stalled["answered"], 0, "{stalled}");
    server.stop().await;
}

/// Deadline cancellations are not an attack: on one grpcio channel, 10 threads calling
/// StartExecution with 10 ms deadlines (thousands of streams reset as their deadlines
/// pass, on a debug build that is slow to accept them) and 5 threads calling
/// GetExecution without one: not one Get fails (with h2's default of 20 pending resets,
/// this run closes the connection). A rapid-reset attack (CVE-2023-44487: 50,000
/// HEADERS + RST_STREAM in one burst) gets its connection closed with GOAWAY
/// ENHANCE_YOUR_CALM, and the server goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(all(test_python_h2, test_python_grpc)),
    ignore = "needs python3 with h2 and grpcio, grpcio-tools"
)]
async fn deadline_churn_is_served_and_rapid_reset_is_closed() {
    let python = python(&["h2", "grpc", "grpc_tools"]);
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let proto = format!("{}/proto", env!("CARGO_MANIFEST_DIR"));
    let churn = run_hostile(
        python,
        "deadline_churn.py",
        &[
            &addr,
            &proto,
            "--churners",
            "10",
            "--readers",
            "5",
            "--seconds",
            "8",
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(churn["reader_calls"].as_u64().unwrap() > 0, "{churn}");
    assert_eq!(churn["reader_failures"], serde_json::json!({}), "{churn}");
    let expired = churn["churner_outcomes"]["DEADLINE_EXCEEDED"]
        .as_u64()
        .unwrap_or(0);
    assert!(expired > 100, "the churn hardly reset anything: {churn}");

    let attack = run_hostile(
        python,
        "h2probe.py",
        &["rapid-reset", &addr, GET, "--count", "50000"],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(attack["goaway"], true, "{attack}");
    assert_eq!(attack["error_code"], 11, "ENHANCE_YOUR_CALM: {attack}");
    let mut client = server.new_client().await;
    let e = start(&mut client, "after-attack", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    server.stop().await;
}

/// A client that sends `grpc-timeout` but does not enforce it still sees its calls end at
/// the deadline with DEADLINE_EXCEEDED (and an ErrorInfo): a watch stream after 2 s, an
/// UpdateAction stuck on a lock after 500 ms (and the change never lands).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_python_h2), ignore = "needs python3 with h2")]
async fn deadlines_end_streams_and_calls_of_clients_that_do_not_enforce_them() {
    let python = python(&["h2"]);
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "deadline", chain(2)).await;
    let addr = server.addr.to_string();

    let asked = Instant::now();
    let watched = run_hostile(
        python,
        "h2probe.py",
        &[
            "call",
            &addr,
            WATCH,
            "--payload",
            &id_request_hex(&e.id),
            "--timeout",
            "2S",
            "--wait",
            "20",
        ],
        Duration::from_secs(60),
    )
    .await;
    let took = asked.elapsed();
    assert_eq!(watched["messages"], 1, "the snapshot came first: {watched}");
    assert_error(
        &raw_status(&watched),
        Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        None,
    );
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(10),
        "{took:?}"
    );

    let lock = hold_lock(&server, &e.id).await;
    let update = hex::encode(report(&e.id, "a1", ActionStatus::Running).encode_to_vec());
    let updated = run_hostile(
        python,
        "h2probe.py",
        &[
            "call",
            &addr,
            UPDATE,
            "--payload",
            &update,
            "--timeout",
            "500m",
            "--wait",
            "20",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert_error(
        &raw_status(&updated),
        Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        None,
    );
    assert!(updated["elapsed_ms"].as_u64().unwrap() < 3_000, "{updated}");
    drop(lock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&mut client, &e.id).await.revision,
        1,
        "the change never landed"
    );
    server.stop().await;
}

/// Errors made below the handlers carry an ErrorInfo too: an unknown method or service
/// (UNIMPLEMENTED, naming the path), a message that does not decompress or whose
/// compression flag no encoding backs (INVALID_ARGUMENT `MALFORMED_MESSAGE`), an encoding
/// the server does not know (UNIMPLEMENTED `UNSUPPORTED_COMPRESSION`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_python_h2), ignore = "needs python3 with h2")]
async fn errors_from_below_the_handlers_carry_error_info() {
    let python = python(&["h2"]);
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let cases: &[(&[&str], Code, &str)] = &[
        (
            &["/workflow.executions.v1.ExecutionService/Nope"],
            Code::Unimplemented,
            "UNIMPLEMENTED",
        ),
        (&["/x.Y/Z"], Code::Unimplemented, "UNIMPLEMENTED"),
        (
            &[
                GET,
                "--encoding",
                "gzip",
                "--flag",
                "1",
                "--payload",
                "00112233",
            ],
            Code::InvalidArgument,
            "MALFORMED_MESSAGE",
        ),
        (
            &[GET, "--flag", "1", "--payload", "00112233"],
            Code::InvalidArgument,
            "MALFORMED_MESSAGE",
        ),
        (
            &[GET, "--encoding", "br", "--flag", "1", "--payload", "00"],
            Code::Unimplemented,
            "UNSUPPORTED_COMPRESSION",
        ),
    ];
    for (args, code, reason) in cases {
        let mut all = vec!["call", addr.as_str()];
        all.extend_from_slice(args);
        let answer = run_hostile(python, "h2probe.py", &all, Duration::from_secs(30)).await;
        let status = raw_status(&answer);
        assert_error(&status, *code, reason, None);
        if *code == Code::Unimplemented && *reason == "UNIMPLEMENTED" {
            assert!(status.message().contains(args[0]), "{status:?}");
        }
    }
    server.stop().await;
}

/// gzip and zstd both ways: a Python grpcio channel compressing with gzip is served, and
/// a tonic client sending and accepting zstd starts and reads an execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(test_python_grpc),
    ignore = "needs python3 with grpcio, grpcio-tools"
)]
async fn compressed_calls_are_served() {
    let python = python(&["grpc", "grpc_tools"]);
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let proto = format!("{}/proto", env!("CARGO_MANIFEST_DIR"));
    let gzip = run_hostile(
        python,
        "deadline_churn.py",
        &[
            &addr,
            &proto,
            "--churners",
            "0",
            "--readers",
            "1",
            "--seconds",
            "1",
            "--compression",
            "gzip",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(gzip["reader_calls"].as_u64().unwrap() > 0, "{gzip}");
    assert_eq!(gzip["reader_failures"], serde_json::json!({}), "{gzip}");

    use tonic::codec::CompressionEncoding::Zstd;
    let mut zstd = server
        .new_client()
        .await
        .send_compressed(Zstd)
        .accept_compressed(Zstd);
    let e = start(&mut zstd, "zstd", chain(3)).await;
    assert_eq!(get(&mut zstd, &e.id).await.actions_count, 3);
    server.stop().await;
}

/// Health follows the gRPC health-checking protocol: `Watch` of a service the server does
/// not know sends one SERVICE_UNKNOWN and keeps the stream open; `Check` of it is
/// NOT_FOUND with an ErrorInfo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_of_an_unknown_service_follows_the_protocol() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let server = TestServer::builder().start().await;
    let mut unknown = health_watch(&server, "no.such.Service").await;
    let first = next_within(&mut unknown, 10).await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::ServiceUnknown);
    let more = tokio::time::timeout(Duration::from_secs(1), unknown.message()).await;
    assert!(more.is_err(), "the stream stays open and quiet: {more:?}");
    let err = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "SERVICE_NOT_FOUND", None);
    server.stop().await;
}

/// A server-wide budget bounds the bytes held by answers nobody reads: with 4 MiB
/// allowed, Gets of eight ~0.7 MB executions that their client never reads (HTTP/2
/// window 0) spend it, new calls are then refused with RESOURCE_EXHAUSTED `OVERLOADED`
/// (health still answers), and they are served again once that client goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(test_python_h2), ignore = "needs python3 with h2")]
async fn answers_nobody_reads_have_a_budget() {
    let python = python(&["h2"]);
    let server = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                max_unsent_bytes: 4 << 20,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let mut payloads = Vec::new();
    for i in 0..8 {
        let mut request = start_request_for("heavy", "");
        request.execution_data = Some(to_struct(
            &serde_json::json!({ "blob": format!("{i}").repeat(700_000) }),
        ));
        let e = client.start_execution(request).await.unwrap().into_inner();
        payloads.push(id_request_hex(&e.id));
    }
    let addr = server.addr.to_string();
    let probe = crate::serve::unread_calls(python, &addr, GET, &payloads, 64, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let err = client
        .list_executions(executions::proto::v1::ListExecutionsRequest::default())
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert_health(&server, ServingStatus::Serving).await;
    probe.wait_with_output().await.unwrap();
    let mut served = false;
    for _ in 0..50 {
        if client
            .list_executions(executions::proto::v1::ListExecutionsRequest::default())
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the reader is gone");
    server.stop().await;
}

/// A default Python grpcio client whose request carries a 100,000-character time zone, or
/// a template edge whose source is 100,000 characters, gets INVALID_ARGUMENT with its
/// details, not RESOURCE_EXHAUSTED for an error whose headers are too large to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_python_grpc),
    ignore = "needs python3 with grpcio, grpcio-tools"
)]
async fn a_default_grpcio_client_reads_errors_about_huge_values() {
    let python = python(&["grpc", "grpc_tools"]);
    let server = TestServer::builder().start().await;
    let addr = server.addr.to_string();
    let proto = format!("{}/proto", env!("CARGO_MANIFEST_DIR"));
    let seen = run_hostile(
        python,
        "long_echo.py",
        &[&addr, &proto],
        Duration::from_secs(60),
    )
    .await;
    for call in ["time_zone", "edge_source"] {
        assert_eq!(seen[call]["code"], "INVALID_ARGUMENT", "{seen}");
        assert_eq!(seen[call]["details"], true, "{seen}");
        assert!(seen[call]["message_len"].as_u64().unwrap() <= 512, "{seen}");
    }
    server.stop().await;
}
