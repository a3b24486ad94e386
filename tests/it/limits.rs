//! Transport limits: message size both ways, streams per HTTP/2 connection, and
//! keepalive for peers that stop answering.

use std::time::{Duration, Instant};

use executions::grpc::{Limits, ServerConfig};
use executions::proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::harness::*;

/// Messages larger than `max_message_bytes` are refused both ways: a request that large
/// is OUT_OF_RANGE (tonic's code for it) and stores nothing; a response that large (a
/// FULL read of a big execution stored through another server) is an error too, while
/// the BASIC view of the same execution, which is small, reads fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_size_limit_are_refused_both_ways() {
    const LIMIT: usize = 64 * 1024;
    let roomy = TestServer::builder().start().await;
    let tight = TestServer::builder()
        .same_database_as(&roomy)
        .config(ServerConfig {
            limits: Limits {
                max_message_bytes: LIMIT,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let big_data = || {
        let mut data = std::collections::BTreeMap::new();
        data.insert("blob".to_owned(), serde_json::json!("x".repeat(LIMIT)));
        to_struct(&serde_json::Value::Object(data.into_iter().collect()))
    };

    let mut tight_client = tight.client.clone();
    let mut request = start_request_for("too-big", "");
    request.execution_data = Some(big_data());
    let err = tight_client
        .start_execution(request.clone())
        .await
        .unwrap_err();
    // tonic's code for a message past the limit.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let stored = tight_client
        .list_executions(pb::ListExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(stored.executions.is_empty(), "nothing was stored");

    let mut roomy_client = roomy.client.clone();
    let big = roomy_client
        .start_execution(request)
        .await
        .expect("the default limit takes it")
        .into_inner();
    let err = tight_client
        .get_execution(get_request(&big.id))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::Internal
        ),
        "{err:?}"
    );
    let basic = tight_client
        .get_execution(pb::GetExecutionRequest {
            id: big.id.clone(),
            view: ExecutionView::Basic as i32,
            ..Default::default()
        })
        .await
        .expect("the BASIC view is small")
        .into_inner();
    assert_eq!(basic.revision, 1);
    tight.stop().await;
    roomy.stop().await;
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

/// Connects raw TCP, speaks the HTTP/2 preface and SETTINGS, then never answers anything
/// (not even PINGs); returns how long until the server closed the connection, if it did
/// within `patience`.
async fn silent_peer_lifetime(addr: std::net::SocketAddr, patience: Duration) -> Option<Duration> {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
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
        silent_peer_lifetime(quick.addr, Duration::from_secs(8)),
        silent_peer_lifetime(default.addr, Duration::from_secs(4)),
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
