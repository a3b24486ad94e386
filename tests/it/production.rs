//! What a platform team relies on in production: bearer tokens and tenants, TLS and
//! mTLS, transport limits, load shedding, deadlines, and metrics.

use std::time::{Duration, Instant};

use executions::grpc::{Limits, ServerConfig, TlsSettings};
use executions::proto::v1 as pb;
use sea_orm::ConnectionTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::db_tests;
use crate::harness::*;

db_tests!(
    tokens_and_roles_guard_every_call,
    a_tenant_token_sees_only_its_tenant,
    load_past_the_limit_is_shed_at_once,
    a_passed_deadline_cancels_the_database_work,
);

/// Without a token, or with an unknown one, every API call (unary or stream) is
/// UNAUTHENTICATED; a reader may read but not write (PERMISSION_DENIED); health answers
/// without a token; a refused call changes nothing.
async fn tokens_and_roles_guard_every_call(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(tokens_config())
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start_as(&mut client, WRITER_TOKEN, "guarded", "")
        .await
        .expect("a writer starts");

    for token in [
        None,
        Some("not-a-known-token"),
        Some(WRITER_TOKEN.to_uppercase().as_str()),
    ] {
        let err = client
            .get_execution(maybe_bearer(token, get_request(&e.id)))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
        let err = client
            .start_execution(maybe_bearer(token, start_request_for("intruder", "")))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
        let err = client
            .watch_execution(maybe_bearer(token, watch_request(&e.id)))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "UNAUTHENTICATED", None);
    }

    // A reader reads, lists and watches ...
    let read = client
        .get_execution(bearer(READER_TOKEN, get_request(&e.id)))
        .await
        .expect("a reader gets")
        .into_inner();
    assert_eq!(read.revision, 1);
    let page = client
        .list_executions(bearer(READER_TOKEN, pb::ListExecutionsRequest::default()))
        .await
        .expect("a reader lists")
        .into_inner();
    assert_eq!(page.executions.len(), 1);
    let mut watch = client
        .watch_execution(bearer(READER_TOKEN, watch_request(&e.id)))
        .await
        .expect("a reader watches")
        .into_inner();
    let snapshot = next_within(&mut watch, 10).await.unwrap().unwrap();
    assert_eq!(snapshot.revision, 1);

    // ... but changes nothing.
    let err = start_as(&mut client, READER_TOKEN, "by-reader", "")
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);
    let err = client
        .update_action(bearer(
            READER_TOKEN,
            report(&e.id, "a1", ActionStatus::Running),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);
    let err = client
        .stop_execution(bearer(READER_TOKEN, stop_request(&e.id, "not allowed")))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "READ_ONLY_TOKEN", None);

    // Health stays open for probes.
    assert_health(&server, ServingStatus::Serving).await;

    let after = client
        .list_executions(bearer(WRITER_TOKEN, pb::ListExecutionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.executions.len(), 1, "refused calls created nothing");
    assert_eq!(
        after.executions[0].revision, 1,
        "refused calls changed nothing"
    );
    server.stop().await;
}

/// A token confined to tenant `acme` creates in `acme` only, and finds nothing of another
/// tenant: Get, Watch, UpdateAction and Stop answer NOT_FOUND exactly as for an id that
/// does not exist, List returns `acme`'s executions whatever its filter says, and the
/// other tenant's execution is left unchanged.
async fn a_tenant_token_sees_only_its_tenant(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(tokens_config())
        .start()
        .await;
    let mut client = server.client.clone();
    let ours = start_as(&mut client, ACME_WRITER_TOKEN, "ours", "")
        .await
        .expect("acme starts");
    assert_eq!(
        ours.user_key, "acme",
        "a confined token creates in its tenant"
    );
    let theirs = start_as(&mut client, WRITER_TOKEN, "theirs", "globex")
        .await
        .expect("ops starts for globex");

    let err = start_as(&mut client, ACME_WRITER_TOKEN, "smuggled", "globex")
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "OTHER_TENANT", None);

    for token in [ACME_READER_TOKEN, ACME_WRITER_TOKEN] {
        for id in [&theirs.id, &theirs.hashid] {
            let err = client
                .get_execution(bearer(token, get_request(id)))
                .await
                .unwrap_err();
            assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
            let err = client
                .watch_execution(bearer(token, watch_request(id)))
                .await
                .unwrap_err();
            assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
        }
        let page = client
            .list_executions(bearer(
                token,
                pb::ListExecutionsRequest {
                    user_key: "globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<_> = page.executions.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ours"], "List is confined to acme");
    }
    // The same answer as for an id that does not exist.
    let unknown = client
        .get_execution(bearer(
            ACME_READER_TOKEN,
            get_request("01890a5d-ac96-774b-bcce-b302099a8057"),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let err = client
        .update_action(bearer(
            ACME_WRITER_TOKEN,
            report(&theirs.id, "a1", ActionStatus::Running),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let err = client
        .stop_execution(bearer(
            ACME_WRITER_TOKEN,
            stop_request(&theirs.id, "not ours"),
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "EXECUTION_NOT_FOUND", None);
    let untouched = client
        .get_execution(bearer(WRITER_TOKEN, get_request(&theirs.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.revision, 1);
    assert_eq!(untouched.status, ExecutionStatus::Running as i32);

    // Its own executions work as usual.
    let moved = client
        .update_action(bearer(
            ACME_WRITER_TOKEN,
            report(&ours.id, "a1", ActionStatus::Running),
        ))
        .await
        .expect("acme updates its own")
        .into_inner();
    assert_eq!(moved.revision, 2);
    server.stop().await;
}

/// With one call allowed at a time and that one stuck behind a lock, the next unary call
/// is refused at once with RESOURCE_EXHAUSTED (`OVERLOADED`) instead of waiting, and so
/// is a watch trying to open, while health checks still get through; the stuck call then
/// completes.
async fn load_past_the_limit_is_shed_at_once(server: &TestServer) {
    let server = TestServer::builder()
        .on(server.backend())
        .config(ServerConfig {
            limits: Limits {
                max_concurrent_calls: 1,
                ..Limits::default()
            },
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "shed", chain(2)).await;
    let lock = hold_lock(&server, &e.id).await;
    let mut stuck_client = server.new_client().await;
    let id = e.id.clone();
    let stuck = tokio::spawn(async move {
        stuck_client
            .update_action(report(&id, "a1", ActionStatus::Running))
            .await
    });
    // Let the stuck call take the one slot.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_execution(get_request(&e.id)),
    )
    .await
    .expect("refused at once, not queued")
    .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let err = client
        .watch_execution(watch_request(&e.id))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "OVERLOADED", None);
    assert_health(&server, ServingStatus::Serving).await;

    drop(lock);
    let moved = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("the stuck call finishes once the lock is gone")
        .unwrap()
        .expect("and succeeds")
        .into_inner();
    assert_eq!(moved.revision, 2);
    // The slot is free again.
    assert_eq!(get(&mut client, &e.id).await.revision, 2);
    server.stop().await;
}

/// A change whose client deadline passes while it waits for a lock is cancelled with its
/// database work: on PostgreSQL no statement of it is left waiting in the database, and
/// on both databases the change never lands once the lock is released.
async fn a_passed_deadline_cancels_the_database_work(server: &TestServer) {
    let mut client = server.client.clone();
    let e = start(&mut client, "deadline", chain(2)).await;
    let lock = hold_lock(server, &e.id).await;

    let mut request = tonic::Request::new(report(&e.id, "a1", ActionStatus::Running));
    request.set_timeout(Duration::from_millis(300));
    let asked = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), client.update_action(request))
        .await
        .expect("the deadline ends the call")
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    if let Some(database) = server.postgres() {
        let admin = database.admin().await;
        let waiting = format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
            database.name()
        );
        let mut left = i64::MAX;
        for _ in 0..40 {
            let row = admin
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    waiting.clone(),
                ))
                .await
                .unwrap()
                .unwrap();
            left = row.try_get("", "n").unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(left, 0, "the server's statement still waits for the lock");
    }

    drop(lock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = get(&mut client, &e.id).await;
    assert_eq!(after.revision, 1, "the cancelled change never landed");
    assert_eq!(action_status(&after, "a1"), ActionStatus::Idle);
    // The execution is not left locked: the next change goes through.
    let moved = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    assert_eq!(moved.revision, 2);
}

/// Messages larger than `max_message_bytes` are refused both ways: a request that large
/// is OUT_OF_RANGE (tonic's code for it) and stores nothing; a response that large (a FULL read of a big
/// execution stored through another server) is an error too, while the BASIC view of the
/// same execution, which is small, reads fine.
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

/// A test CA, and a certificate it signed for `name` (server: SAN localhost/127.0.0.1).
struct TestPki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "executions test CA");
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for these names.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn tls_client(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&(String, String)>,
) -> Result<Client, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(Client::new(channel))
}

/// With a certificate and key the server speaks TLS only (a plaintext client fails, a
/// client trusting the CA works); with a client CA as well it also requires a client
/// certificate that CA signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls_are_served() {
    let pki = TestPki::new();
    let (cert, key) = pki.issue(&["localhost", "127.0.0.1"]);
    let tls = TlsSettings {
        cert_pem: cert.clone().into_bytes(),
        key_pem: key.clone().into_bytes(),
        client_ca_pem: None,
    };
    let server = TestServer::builder()
        .config(ServerConfig {
            tls: Some(tls.clone()),
            ..test_config()
        })
        .start()
        .await;
    let mut plain = server.client.clone();
    assert!(
        plain
            .list_executions(pb::ListExecutionsRequest::default())
            .await
            .is_err(),
        "plaintext is refused"
    );
    let mut client = tls_client(server.addr, &pki.ca_pem, None)
        .await
        .expect("TLS connects");
    let e = start(&mut client, "over-tls", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    let other_ca = TestPki::new();
    let untrusted = match tls_client(server.addr, &other_ca.ca_pem, None).await {
        Ok(mut client) => client
            .list_executions(pb::ListExecutionsRequest::default())
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(untrusted, "a client that does not trust the CA fails");
    server.stop().await;

    let mutual = TestServer::builder()
        .config(ServerConfig {
            tls: Some(TlsSettings {
                client_ca_pem: Some(pki.ca_pem.clone().into_bytes()),
                ..tls
            }),
            ..test_config()
        })
        .start()
        .await;
    let anonymous = match tls_client(mutual.addr, &pki.ca_pem, None).await {
        Ok(mut client) => client
            .list_executions(pb::ListExecutionsRequest::default())
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(anonymous, "a client without a certificate is refused");
    let stranger = other_ca.issue(&["stranger"]);
    let foreign = match tls_client(mutual.addr, &pki.ca_pem, Some(&stranger)).await {
        Ok(mut client) => client
            .list_executions(pb::ListExecutionsRequest::default())
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(foreign, "a certificate from another CA is refused");
    let worker = pki.issue(&["worker"]);
    let mut client = tls_client(mutual.addr, &pki.ca_pem, Some(&worker))
        .await
        .expect("mTLS connects");
    let e = start(&mut client, "over-mtls", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    mutual.stop().await;
}

/// `GET /metrics` on the metrics address shows calls by method and code, latency
/// histograms, open watches and changes published, as the calls made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http() {
    let port = free_port();
    let server = TestServer::builder()
        .config(ServerConfig {
            metrics_listen: Some(([127, 0, 0, 1], port).into()),
            ..test_config()
        })
        .start()
        .await;
    let mut client = server.client.clone();
    let e = start(&mut client, "metered", chain(2)).await;
    let updated = update(&mut client, &e.id, "a1", ActionStatus::Running).await;
    // One change per revision, the creation included.
    let changes = updated.revision as f64;
    let missing = client
        .get_execution(get_request("01890a5d-ac96-774b-bcce-b302099a8057"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut watch = client
        .watch_execution(watch_request(&e.id))
        .await
        .unwrap()
        .into_inner();
    next_within(&mut watch, 10).await.unwrap();

    let text = http_get(port, "/metrics").await;
    let api = "workflow.executions.v1.ExecutionService";
    for (series, expected) in [
        (
            format!("executions_rpc_requests_total{{method=\"{api}/StartExecution\",code=\"OK\"}}"),
            1.0,
        ),
        (
            format!("executions_rpc_requests_total{{method=\"{api}/UpdateAction\",code=\"OK\"}}"),
            1.0,
        ),
        (
            format!(
                "executions_rpc_requests_total{{method=\"{api}/GetExecution\",code=\"NOT_FOUND\"}}"
            ),
            1.0,
        ),
        (
            format!("executions_rpc_duration_seconds_count{{method=\"{api}/StartExecution\"}}"),
            1.0,
        ),
        ("executions_open_watches".to_owned(), 1.0),
        ("executions_changes_published_total".to_owned(), changes),
        ("executions_database_errors_total".to_owned(), 0.0),
    ] {
        assert_eq!(
            sample(&text, &series),
            Some(expected),
            "{series} in\n{text}"
        );
    }
    assert!(
        text.contains("executions_rpc_duration_seconds_bucket{"),
        "{text}"
    );

    drop(watch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = http_get(port, "/metrics").await;
    assert_eq!(
        sample(&text, "executions_open_watches"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "executions_rpc_requests_total{{method=\"{api}/WatchExecution\",code=\"CANCELLED\"}}"
            )
        ),
        Some(1.0),
        "a watch its client dropped is counted when it ends:\n{text}"
    );
    server.stop().await;
}

/// A health `Watch` stream sees SERVING, then NOT_SERVING as soon as shutdown begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watch_sees_shutdown() {
    let server = TestServer::builder().start().await;
    let mut health = health_watch(&server, "workflow.executions.v1.ExecutionService").await;
    let first = next_within(&mut health, 10).await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let watcher = tokio::spawn(async move {
        next_within(&mut health, 10)
            .await
            .map(|m| m.map(|m| m.status()))
    });
    server.stop().await;
    let seen = watcher.await.unwrap();
    assert!(
        matches!(seen, Ok(Some(ServingStatus::NotServing))),
        "{seen:?}"
    );
}
