//! The followers of `feeds`: WatchExecutions feeds, WatchExecution watchers (the
//! baseline), and a feed whose client never reads; and when each (execution, revision)
//! reached each follower.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::Client;

/// One arrival: which follower received which revision, and when.
#[derive(Clone, Copy)]
struct Arrival {
    follower: u32,
    revision: i64,
    at: Instant,
}

/// What every follower received, and how their streams fare.
#[derive(Default)]
pub struct Arrivals {
    /// Per execution id, every revision a follower received, in arrival order (so, per
    /// follower, in increasing revision order: a stream's revisions only go up).
    by_execution: Mutex<HashMap<String, Vec<Arrival>>>,
    /// Followers whose stream is open and synced (SYNCED, or a watch's SNAPSHOT).
    pub opened: AtomicUsize,
    /// Followers whose stream failed.
    pub failed: AtomicU64,
    /// UPDATEs received, by every follower.
    pub updates: AtomicU64,
    /// Opens the server refused for now (RESOURCE_EXHAUSTED or UNAVAILABLE), retried.
    pub refused: AtomicU64,
    /// Why the first one failed.
    first_error: Mutex<Option<String>>,
}

impl Arrivals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arrival>>> {
        self.by_execution.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arrived(&self, id: String, follower: u32, revision: i64) {
        let at = Instant::now();
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(id).or_default().push(Arrival {
            follower,
            revision,
            at,
        });
    }

    fn failed(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }

    /// Why the first stream failed, if one did.
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Followers open or failed.
    pub fn settled(&self) -> usize {
        self.opened.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) as usize
    }

    /// Forgets every arrival (between measured windows).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// When the last of `followers` had received revision `revision` of execution `id` or
    /// a newer one, and how many of them first received a newer one (the change reached
    /// them coalesced with a later one); `None` while one of them has not.
    pub fn delivered(
        &self,
        id: &str,
        revision: i64,
        followers: &[u32],
    ) -> Option<(Instant, usize)> {
        let map = self.lock();
        let arrivals = map.get(id)?;
        let (mut last, mut coalesced): (Option<Instant>, usize) = (None, 0);
        for &follower in followers {
            let first = arrivals
                .iter()
                .find(|a| a.follower == follower && a.revision >= revision)?;
            last = Some(last.map_or(first.at, |l| l.max(first.at)));
            coalesced += usize::from(first.revision > revision);
        }
        Some((last?, coalesced))
    }
}

/// Opens a stream through `open`, retrying for up to two minutes (with exponential
/// backoff, as a real client would) what a server answers when thousands open at once: RESOURCE_EXHAUSTED past its in-flight
/// limit, UNAVAILABLE when its database pool had no connection for it in time. Each
/// attempt's future owns what it sends (a clone of the client and of the request), so
/// that the future of a whole follower stays `Send`.
async fn open_retrying<T, Fut>(
    jitter: u64,
    refused: &AtomicU64,
    mut open: impl FnMut() -> Fut,
) -> Result<T, tonic::Status>
where
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let began = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match open().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status)
                if began.elapsed() < Duration::from_secs(120)
                    && matches!(
                        status.code(),
                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                    ) =>
            {
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause + Duration::from_millis(jitter % 50)).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(status) => return Err(status),
        }
    }
}

/// Feed number `follower`: opens `request` on `client`, counts itself open at SYNCED, then
/// records the revision of every execution each UPDATE carries.
pub async fn feed(
    client: Client,
    request: pb::WatchExecutionsRequest,
    follower: u32,
    shared: Arc<Arrivals>,
) {
    let opened = open_retrying(u64::from(follower), &shared.refused, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.watch_executions(request).await }
    })
    .await;
    let mut messages = match opened {
        Ok(messages) => messages,
        Err(status) => return shared.failed(format!("open: {status}")),
    };
    loop {
        match messages.message().await {
            Ok(Some(m)) => match m.kind() {
                pb::WatchEventKind::Synced => {
                    shared.opened.fetch_add(1, Ordering::Relaxed);
                }
                pb::WatchEventKind::Update => {
                    if let Some(e) = m.execution {
                        shared.arrived(e.id, follower, e.revision);
                    }
                }
                _ => {}
            },
            Ok(None) => return shared.failed("the feed ended".into()),
            Err(status) => return shared.failed(format!("feed: {status}")),
        }
    }
}

/// A WatchExecution of execution `id` (BASIC view), follower 0 of that execution: counts
/// itself open at its SNAPSHOT, then records each UPDATE's revision. Its stream ends
/// (OK) once the execution is stopped or completes.
pub async fn watch(client: Client, id: String, jitter: u64, shared: Arc<Arrivals>) {
    let request = pb::WatchExecutionRequest {
        id: id.clone(),
        view: pb::ExecutionView::Basic as i32,
        ..Default::default()
    };
    let opened = open_retrying(jitter, &shared.refused, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.watch_execution(request).await }
    })
    .await;
    let mut messages = match opened {
        Ok(messages) => messages,
        Err(status) => return shared.failed(format!("open: {status}")),
    };
    loop {
        match messages.message().await {
            Ok(Some(m)) => match m.kind() {
                pb::WatchEventKind::Snapshot => {
                    shared.opened.fetch_add(1, Ordering::Relaxed);
                }
                pb::WatchEventKind::Update => shared.arrived(id.clone(), 0, m.revision),
                _ => {}
            },
            Ok(None) => return,
            Err(status) => return shared.failed(format!("watch: {status}")),
        }
    }
}

/// Waits (at most the time opens are retried, and a little more) until `n` followers are
/// open or failed; answers how long.
pub async fn settle(shared: &Arrivals, n: usize) -> Duration {
    let began = Instant::now();
    while shared.settled() < n && began.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    began.elapsed()
}

/// Stops followers' tasks (their streams are reset) and waits until they are gone.
pub async fn close(tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// A feed whose client never reads: a connection of its own whose HTTP/2 stream window is
/// 64 KiB (HTTP/2's default; tonic's client would take 2 MiB before pushing back), and a
/// WatchExecutions of every execution whose messages are never taken, so the server's
/// stream is stuck once 64 KiB are in flight. Dropping it closes the connection.
pub struct Unread {
    _messages: tonic::Streaming<pb::WatchExecutionsResponse>,
    _channel: Channel,
}

impl Unread {
    /// Opens it on the server at `addr`.
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(addr.to_owned())?
            .initial_stream_window_size(65_535)
            .connect()
            .await?;
        let request = pb::WatchExecutionsRequest {
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        let client = Client::new(channel.clone());
        let messages = open_retrying(0, &AtomicU64::new(0), || {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.watch_executions(request).await }
        })
        .await?;
        Ok(Self {
            _messages: messages,
            _channel: channel,
        })
    }
}
