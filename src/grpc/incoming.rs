//! The connections the server accepts, each bounded in number and in silence:
//!
//! - at most `max_connections` open at once, kept below the process's file-descriptor
//!   limit; past it a new connection is closed at once (and a warning logged, at most
//!   once a second), so it fails fast rather than hanging;
//! - a connection must send its first bytes (the HTTP/2 preface, or a TLS ClientHello)
//!   within `handshake_timeout`, and may then stay silent for at most the keepalive
//!   interval plus the keepalive timeout (the server pings an idle connection every
//!   interval, and a live client answers), else it is closed. A browser's HTTP/1.1
//!   connection has no pings, and a client that only reads a long answer (a gRPC-Web
//!   watch) sends nothing while it does: there, bytes the server manages to write count
//!   as life too (a client that stops reading soon stops them, and is closed);
//! - when `accept` fails (out of file descriptors, say) the loop backs off and warns
//!   instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes a client sends first over plain HTTP/2: the connection preface.
const PREFACE_BYTES: u64 = 24;
/// How the HTTP/2 preface begins; a first byte of 0x16 is a TLS handshake (HTTP/2 by
/// ALPN); anything else is HTTP/1.1.
const PREFACE_START: &[u8] = b"PRI ";
const TLS_HANDSHAKE: u8 = 0x16;
/// Descriptors kept for everything but client connections (database pool, files, the
/// listener, the metrics endpoint).
const RESERVED_DESCRIPTORS: u64 = 256;
/// Longest pause of the accept loop after `accept` failed.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Bounds on the connections of one server.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Most connections open at once (lowered to fit the file-descriptor limit).
    pub max_connections: usize,
    /// Time a new connection has to send its first bytes.
    pub handshake_timeout: Duration,
    /// Longest silence of a connection before it is closed.
    pub idle_timeout: Duration,
    /// TCP keepalive probes after this much idle time.
    pub tcp_keepalive: Duration,
}

/// `wanted`, lowered to leave [`RESERVED_DESCRIPTORS`] of the soft file-descriptor limit
/// (or half of it, when the limit is that low).
pub fn fit_to_descriptor_limit(wanted: usize) -> usize {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => {
            let room = soft
                .saturating_sub(RESERVED_DESCRIPTORS.min(soft / 2))
                .max(1);
            wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        Err(_) => wanted,
    }
}

/// The accepted connections of `listener`, as tonic serves them.
pub fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<Connection, io::Error>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    async_stream::stream! {
        let mut backoff = Duration::from_millis(10);
        let mut last_warning: Option<Instant> = None;
        let mut warn_at_most_once_a_second = |message: &str, detail: &dyn std::fmt::Display| {
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                last_warning = Some(Instant::now());
                tracing::warn!(detail = %detail, "{message}");
            }
        };
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors (EMFILE, ENFILE) or memory: the connection stays
                    // in the backlog; retrying at once would spin.
                    warn_at_most_once_a_second("cannot accept connections; backing off", &err);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(10);
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn_at_most_once_a_second(
                    "connection limit reached; closing new connections",
                    &limits.max_connections,
                );
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let keepalive = socket2::TcpKeepalive::new().with_time(limits.tcp_keepalive);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
            yield Ok(Connection::new(stream, peer, slot, &limits));
        }
    }
}

pin_project_lite::pin_project! {
    /// An accepted TCP connection that holds its slot until it closes, and fails its reads
    /// once it has been silent for too long.
    pub struct Connection {
        #[pin]
        stream: TcpStream,
        peer: SocketAddr,
        _slot: OwnedSemaphorePermit,
        read: u64,
        // A plain HTTP/1.1 connection (known from its first bytes), whose writes count as
        // life.
        http1: bool,
        handshake_timeout: Duration,
        idle_timeout: Duration,
        // When the connection is closed unless bytes arrive.
        silence: Pin<Box<Sleep>>,
    }
}

impl Connection {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        limits: &ConnectionLimits,
    ) -> Self {
        Self {
            stream,
            peer,
            _slot: slot,
            read: 0,
            http1: false,
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            silence: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        match this.stream.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    if *this.read == 0 {
                        let first = &buf.filled()[before..];
                        *this.http1 = first[0] != TLS_HANDSHAKE
                            && !PREFACE_START
                                .starts_with(&first[..first.len().min(PREFACE_START.len())]);
                    }
                    *this.read += n;
                    // Until the first bytes are in, the handshake deadline stands.
                    if *this.read >= PREFACE_BYTES {
                        this.silence
                            .as_mut()
                            .reset(Instant::now() + *this.idle_timeout);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                if this.silence.as_mut().poll(cx).is_ready() {
                    let (what, after) = if *this.read < PREFACE_BYTES {
                        ("no handshake", *this.handshake_timeout)
                    } else {
                        ("silent", *this.idle_timeout)
                    };
                    tracing::debug!(peer = %this.peer, ?after, "closing a connection: {what}");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{what} for {after:?}"),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.stream.poll_write(cx, buf);
        if *this.http1 && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.silence
                .as_mut()
                .reset(Instant::now() + *this.idle_timeout);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.stream.poll_write_vectored(cx, bufs);
        if *this.http1 && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.silence
                .as_mut()
                .reset(Instant::now() + *this.idle_timeout);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
