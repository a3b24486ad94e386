//! TLS and mutual TLS: with a certificate the server speaks TLS only, and with a client
//! CA it also requires a client certificate that CA signed.

use executions::grpc::{ServerConfig, TlsSettings};
use executions::proto::v1 as pb;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::harness::*;

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

/// A client of the server at `addr` over TLS, trusting `ca_pem`, with a client
/// certificate when `identity` is given.
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

/// Whether a TLS client like [`tls_client`]'s fails to connect or to List.
async fn tls_refused(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&(String, String)>,
) -> bool {
    match tls_client(addr, ca_pem, identity).await {
        Ok(mut client) => client
            .list_executions(pb::ListExecutionsRequest::default())
            .await
            .is_err(),
        Err(_) => true,
    }
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
    let untrusted = tls_refused(server.addr, &other_ca.ca_pem, None).await;
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
    let anonymous = tls_refused(mutual.addr, &pki.ca_pem, None).await;
    assert!(anonymous, "a client without a certificate is refused");
    let stranger = other_ca.issue(&["stranger"]);
    let foreign = tls_refused(mutual.addr, &pki.ca_pem, Some(&stranger)).await;
    assert!(foreign, "a certificate from another CA is refused");
    let worker = pki.issue(&["worker"]);
    let mut client = tls_client(mutual.addr, &pki.ca_pem, Some(&worker))
        .await
        .expect("mTLS connects");
    let e = start(&mut client, "over-mtls", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    mutual.stop().await;
}

/// A connection to a TLS server that never sends its ClientHello (a mute peer, or one
/// that stops after a few bytes of it) is closed after the handshake timeout, as over
/// plain TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_comes_is_cut_short() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::new();
    let (cert, key) = pki.issue(&["localhost", "127.0.0.1"]);
    let server = TestServer::builder()
        .config(ServerConfig {
            tls: Some(TlsSettings {
                cert_pem: cert.into_bytes(),
                key_pem: key.into_bytes(),
                client_ca_pem: None,
            }),
            limits: executions::grpc::Limits {
                handshake_timeout: std::time::Duration::from_secs(2),
                ..Default::default()
            },
            ..test_config()
        })
        .start()
        .await;
    for opening in [&b""[..], &[0x16, 0x03, 0x01, 0x02][..]] {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(opening).await.unwrap();
        let opened = std::time::Instant::now();
        let mut buffer = [0u8; 64];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(n) = socket.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after 10 s");
        let lived = opened.elapsed();
        assert!(
            lived >= std::time::Duration::from_millis(1_500),
            "closed after {lived:?}"
        );
    }
    let mut client = tls_client(server.addr, &pki.ca_pem, None).await.unwrap();
    let e = start(&mut client, "after-mute", chain(1)).await;
    assert_eq!(get(&mut client, &e.id).await.revision, 1);
    server.stop().await;
}
