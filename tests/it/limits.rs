//! Transport limits: message size both ways, streams per HTTP/2 connection, and
//! keepalive for peers that stop answering.

use std::time::{Duration, Instant};

use executions::grpc::{Limits, ServerConfig};
use executions::proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::harness::*;

/// Messages larger than `max_message_bytes` are refused both ways, with RESOURCE_EXHAUSTED
/// and reason `MESSAGE_TOO_LARGE` (as other gRPC servers answer): a request that large
/// stores nothing; a response that large (a FULL page of several executions, each of
/// which fits alone) is refused too, while the BASIC page of the same executions reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_size_limit_are_refused_both_ways() {
    const LIMIT: usize = 64 * 1024;
    let tight = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                max_message_bytes: LIMIT,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let data = |bytes: usize| {
        let mut data = serde_json::Map::new();
        data.insert("blob".to_owned(), serde_json::json!("x".repeat(bytes)));
        to_struct(&serde_json::Value::Object(data))
    };

    let mut client = tight.client.clone();
    let mut request = start_request_for("too-big", "");
    request.execution_data = Some(data(LIMIT));
    let err = client.start_execution(request).await.unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "MESSAGE_TOO_LARGE", None);
    let list = |view: ExecutionView| pb::ListExecutionsRequest {
        view: view as i32,
        ..Default::default()
    };
    let stored = client
        .list_executions(list(ExecutionView::Basic))
        .await
        .unwrap()
        .into_inner();
    assert!(stored.executions.is_empty(), "nothing was stored");

    for _ in 0..4 {
        let mut request = start_request_for("big", "");
        request.execution_data = Some(data(LIMIT / 3));
        client
            .start_execution(request)
            .await
            .expect("each one fits");
    }
    let err = client
        .list_executions(list(ExecutionView::Full))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "MESSAGE_TOO_LARGE", None);
    let basic = client
        .list_executions(list(ExecutionView::Basic))
        .await
        .expect("the BASIC page is small")
        .into_inner();
    assert_eq!(basic.executions.len(), 4);
    tight.stop().await;
}

/// With at most two streams per HTTP/2 connection, a third call on the same connection
/// waits (the client queues it) until one of the two ends, then goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_connection_limit_wait_for_a_free_one() {
    let server = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                max_concurrent_streams: 2,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "streams", chain(2)).await;
    let watch = |mut client: Client, id: String| async move {
        let mut stream = client
            .watch_execution(watch_request(&id))
            .await?
            .into_inner();
        next_within(&mut stream, 10).await?;
        Ok::<_, tonic::Status>(stream)
    };
    let first = watch(client.clone(), e.id.clone()).await.unwrap();
    let _second = watch(client.clone(), e.id.clone()).await.unwrap();
    let third = tokio::spawn(watch(client.clone(), e.id.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !third.is_finished(),
        "a third stream on the connection waits"
    );
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the third stream opens once one ends")
        .unwrap();
    assert!(third.is_ok(), "{third:?}");
    server.stop().await;
}

/// Connects raw TCP and sends `opening` (nothing, or the HTTP/2 preface and SETTINGS),
/// then never answers anything (not even PINGs); returns how long until the server closed
/// the connection, if it did within `patience`.
async fn peer_lifetime(
    addr: std::net::SocketAddr,
    opening: &[u8],
    patience: Duration,
) -> Option<Duration> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(opening).await.unwrap();
    let opened = Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(patience, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A peer that stops answering is dropped by keepalive: with a 1 s interval and 1 s
/// timeout the server closes a connection whose PINGs go unanswered within a few seconds,
/// while with the default settings the same silent connection is still open after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_closes_connections_that_stop_answering() {
    let quick = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                keepalive_interval: Duration::from_secs(1),
                keepalive_timeout: Duration::from_secs(1),
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let default = TestServer::builder().start().await;
    let (closed, kept) = tokio::join!(
        peer_lifetime(quick.addr, PREFACE, Duration::from_secs(8)),
        peer_lifetime(default.addr, PREFACE, Duration::from_secs(4)),
    );
    let closed = closed.expect("the quick-keepalive server closes the silent connection");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}"
    );
    assert_eq!(kept, None, "the default server keeps it for now");
    // A live client answers the PINGs and keeps its connection.
    let mut client = quick.client.clone();
    let e = start(&mut client, "alive", chain(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    quick.stop().await;
    default.stop().await;
}

/// Connections that never speak are closed after the handshake timeout, and at most
/// `max_connections` are kept: with 3 held by mute peers a fourth is closed at once, and
/// once the mute ones are gone a client connects and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_connections_are_closed_and_counted_against_a_cap() {
    let server = TestServer::builder()
        .config(ServerConfig {
            limits: Limits {
                handshake_timeout: Duration::from_secs(2),
                max_connections: 3,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mute: Vec<_> = (0..3)
        .map(|_| tokio::spawn(peer_lifetime(server.addr, b"", Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fourth = peer_lifetime(server.addr, b"", Duration::from_secs(10))
        .await
        .expect("closed");
    assert!(
        fourth < Duration::from_millis(500),
        "past the cap: closed after {fourth:?}"
    );
    for peer in mute {
        let lived = peer.await.unwrap().expect("a mute connection is closed");
        assert!(
            lived >= Duration::from_millis(1_500) && lived < Duration::from_secs(5),
            "closed after {lived:?}"
        );
    }
    let mut client = server.new_client().await;
    let e = start(&mut client, "after", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    server.stop().await;
}
