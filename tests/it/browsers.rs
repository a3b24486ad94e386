//! Browsers on the API's port, as a browser speaks to it (HTTP/1.1, over a raw socket
//! here): the dashboard's files, gRPC-Web calls that keep the edge's promises (an
//! ErrorInfo on every error, deadlines), and CORS for the listed origins only.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use executions::grpc::ServerConfig;
use executions::proto::v1 as pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_types::StatusExt;

use crate::harness::*;

/// One HTTP/1.1 answer: status, headers (lowercase names), body (de-chunked).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole answer, within
/// `limit`.
async fn http1(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Answer {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        server.addr,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(limit, socket.read_to_end(&mut raw))
        .await
        .expect("the answer ends in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        rest.to_vec()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A gRPC-Web request body: the one message, framed.
fn framed(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_u32(encoded.len() as u32);
    body.extend_from_slice(&encoded);
    body.to_vec()
}

/// The messages and the trailers of a gRPC-Web answer body (trailers as a status).
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, tonic::Status) {
    let mut messages = Vec::new();
    let mut trailers = http::HeaderMap::new();
    while body.has_remaining() {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let (frame, rest) = body.split_at(len);
        body = rest;
        if flag & 0x80 == 0 {
            messages.push(frame.to_vec());
            continue;
        }
        for line in String::from_utf8_lossy(frame).split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                trailers.insert(
                    http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                    value.trim().parse().unwrap(),
                );
            }
        }
    }
    let status = tonic::Status::from_header_map(&trailers).expect("a status in the trailers");
    (messages, status)
}

async fn grpc_web(
    server: &TestServer,
    method: &str,
    message: &impl Message,
    extra: &[(&str, &str)],
) -> (Answer, Vec<Vec<u8>>, tonic::Status) {
    let mut headers = vec![
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
    ];
    headers.extend_from_slice(extra);
    let answer = http1(
        server,
        "POST",
        &format!("/workflow.executions.v1.ExecutionService/{method}"),
        &headers,
        &framed(message),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer.status, 200, "{method}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/grpc-web+proto")
    );
    let (messages, status) = match answer.header("grpc-status") {
        // Trailers-only: the status came in the headers.
        Some(_) => {
            let mut map = http::HeaderMap::new();
            for (n, v) in &answer.headers {
                if n.starts_with("grpc-") {
                    map.insert(
                        http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
            }
            (Vec::new(), tonic::Status::from_header_map(&map).unwrap())
        }
        None => unframe(&answer.body),
    };
    (answer, messages, status)
}

/// The dashboard is served at `/` over HTTP/1.1, with its content types, a
/// Content-Security-Policy without inline script, gzip when accepted, and 304 for a tag
/// the browser has; other paths are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_at_the_root() {
    let server = TestServer::builder().start().await;
    let limit = Duration::from_secs(10);
    let page = http1(&server, "GET", "/", &[], b"", limit).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains(r#"src="/assets/dashboard.js""#), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");

    let script = http1(
        &server,
        "GET",
        "/assets/dashboard.js",
        &[("accept-encoding", "gzip, br")],
        b"",
        limit,
    )
    .await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(script.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&script.body[..]),
        &mut unzipped,
    )
    .unwrap();
    let plain = http1(&server, "GET", "/assets/dashboard.js", &[], b"", limit).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(unzipped, plain.body);

    let tag = page.header("etag").unwrap().to_owned();
    let again = http1(&server, "GET", "/", &[("if-none-match", &tag)], b"", limit).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let css = http1(&server, "HEAD", "/assets/dashboard.css", &[], b"", limit).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.is_empty());
    assert_eq!(
        http1(&server, "GET", "/x", &[], b"", limit).await.status,
        404
    );
    server.stop().await;
}

/// gRPC-Web calls over HTTP/1.1 reach the API, and keep the edge's promises: every error
/// has its ErrorInfo (the handler's, and the transport's for an unknown method), and a
/// watch ends with DEADLINE_EXCEEDED at its `grpc-timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_keep_the_edge_promises() {
    let server = TestServer::builder().start().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "web", chain(2)).await;

    let (_, messages, status) = grpc_web(&server, "GetExecution", &get_request(&e.id), &[]).await;
    assert_eq!(status.code(), tonic::Code::Ok);
    let got = pb::Execution::decode(&messages[0][..]).unwrap();
    assert_eq!((got.id.as_str(), got.revision), (e.id.as_str(), 1));

    let (_, _, status) = grpc_web(&server, "GetExecution", &get_request("zzzzzzzz"), &[]).await;
    assert_error(&status, tonic::Code::NotFound, "EXECUTION_NOT_FOUND", None);

    let (_, _, status) = grpc_web(&server, "NoSuchMethod", &get_request(&e.id), &[]).await;
    assert_error(&status, tonic::Code::Unimplemented, "UNIMPLEMENTED", None);

    let started = std::time::Instant::now();
    let (_, messages, status) = grpc_web(
        &server,
        "WatchExecution",
        &watch_request(&e.id),
        &[("grpc-timeout", "400m")],
    )
    .await;
    assert_eq!(messages.len(), 1, "the snapshot, then the deadline");
    assert_error(
        &status,
        tonic::Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        None,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().domain, "executions");
    server.stop().await;
}

/// Cross-origin browsers get CORS headers only for the listed origins; the preflight is
/// answered before authentication (it carries no token), and the status headers are
/// exposed so a page can read an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_for_the_listed_origins_only() {
    let allowed = "http://ops.example.com:8080";
    let server = TestServer::builder()
        .config(ServerConfig {
            cors_origins: vec![allowed.parse().unwrap()],
            ..tokens_config()
        })
        .start()
        .await;
    let preflight = |origin: &'static str| {
        let server = &server;
        async move {
            http1(
                server,
                "OPTIONS",
                "/workflow.executions.v1.ExecutionService/ListExecutions",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout",
                    ),
                ],
                b"",
                Duration::from_secs(10),
            )
            .await
        }
    };
    let ok = preflight(allowed).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some(allowed));
    let allowed_headers = ok.header("access-control-allow-headers").unwrap();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let refused = preflight("http://evil.example").await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let (answer, _, status) = grpc_web(
        &server,
        "ListExecutions",
        &pb::ListExecutionsRequest::default(),
        &[("origin", allowed)],
    )
    .await;
    assert_error(
        &status,
        tonic::Code::Unauthenticated,
        "UNAUTHENTICATED",
        None,
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(allowed));
    assert!(
        answer
            .header("access-control-expose-headers")
            .unwrap()
            .contains("grpc-status-details-bin")
    );
    let (_, _, status) = grpc_web(
        &server,
        "ListExecutions",
        &pb::ListExecutionsRequest::default(),
        &[
            ("origin", allowed),
            ("authorization", &format!("Bearer {READER_TOKEN}")),
        ],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Ok);
    server.stop().await;
}

/// Settings where a connection silent for 3 s is closed (keepalive 1 s + 1 s), and watch
/// streams get a heartbeat every second.
async fn quick_silence_server() -> TestServer {
    TestServer::builder()
        .config(ServerConfig {
            limits: executions::grpc::Limits {
                keepalive_interval: Duration::from_secs(1),
                keepalive_timeout: Duration::from_secs(1),
                ..executions::grpc::Limits::default()
            },
            ..test_config()
        })
        .watch(executions::service::WatchSettings {
            heartbeat: Duration::from_secs(1),
            ..executions::service::WatchSettings::default()
        })
        .start()
        .await
}

/// A browser's gRPC-Web watch over HTTP/1.1 sends nothing while it reads: it lives past
/// the silence limit as long as the server's heartbeats reach it (here it ends at its own
/// deadline, with trailers, not with a cut connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_watch_over_http1_outlives_the_silence_limit() {
    let server = quick_silence_server().await;
    let mut client = server.client.clone();
    let e = start(&mut client, "long-watch", chain(1)).await;
    let started = std::time::Instant::now();
    let (_, messages, status) = grpc_web(
        &server,
        "WatchExecution",
        &watch_request(&e.id),
        &[("grpc-timeout", "6S")],
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_error(
        &status,
        tonic::Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        None,
    );
    assert!(
        messages.len() >= 4,
        "a snapshot and heartbeats: {}",
        messages.len()
    );
    server.stop().await;
}

/// An HTTP/1.1 connection with nothing in flight is still closed once silent past the
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_connection_is_closed() {
    let server = quick_silence_server().await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("HEAD / HTTP/1.1\r\nhost: {}\r\n\r\n", server.addr);
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("closed within 10 s");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_secs(2), "closed after {after:?}");
    server.stop().await;
}
