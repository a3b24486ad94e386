//! A TCP proxy on loopback between the service and its database, that the test turns
//! slow, black-holed (bytes are held, not forwarded, and new connections hang, as when
//! packets are dropped), or healthy again. Stopped (its tasks aborted) when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards at once.
    Pass,
    /// Forwards every chunk after this delay.
    Slow(Duration),
    /// Forwards nothing (held until healed) and connects nothing.
    BlackHole,
}

/// A running proxy.
pub struct Proxy {
    /// The address to connect to instead of the upstream one.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    upstream: watch::Sender<SocketAddr>,
    tasks: Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, modes) = watch::channel(Mode::Pass);
        let (upstream, upstreams) = watch::channel(upstream);
        let tasks = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let spawner = tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let modes = modes.clone();
                let upstream = *upstreams.borrow();
                spawner.lock().unwrap().spawn(async move {
                    // A black hole answers no SYN: the connection waits until healed.
                    let mut waiting = modes.clone();
                    let _ = waiting.wait_for(|m| *m != Mode::BlackHole).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, modes.clone()),
                        pump(server_read, client_write, modes),
                    );
                });
            }
        });
        Proxy {
            addr,
            mode,
            upstream,
            tasks,
        }
    }

    /// Sends new connections to `upstream` from now on (a failover).
    pub fn redirect(&self, upstream: SocketAddr) {
        self.upstream.send_replace(upstream);
    }

    /// Sets what it does from now on (to bytes already held too).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }
}

/// Copies `from` to `to` chunk by chunk, as the mode says.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut modes: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let mode = *modes.borrow_and_update();
            match mode {
                Mode::Pass => break,
                Mode::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Mode::BlackHole => {
                    if modes.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
