//! The mixed blend: mostly reads (Get FULL and BASIC, List first and second pages), a
//! stream of watchers (each engine lifecycle is watched to its end, plus idle watchers of
//! seeded executions), and some starts and updates; the server's RSS is sampled along the
//! way so that memory flatness over a long run can be read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;

use crate::Client;
use crate::drive::{Recorder, Worker};
use crate::workers::Lifecycle;

/// Watch events received and watch streams that failed, over all mixed workers.
#[derive(Default)]
pub struct WatchCounters {
    /// Messages received.
    pub events: AtomicU64,
    /// Streams that ended with an error.
    pub failed: AtomicU64,
}

/// One caller of the blend.
pub struct Mixed {
    /// Client on one of the shared connections.
    pub client: Client,
    /// Seeded executions to read.
    pub ids: Arc<Vec<String>>,
    /// Its own engine lifecycle (updates), watched while it runs.
    pub lifecycle: Lifecycle,
    /// Token of the second page, once a first page was read.
    pub next_page: String,
    /// Shared watch counters.
    pub watch: Arc<WatchCounters>,
}

impl Worker for Mixed {
    async fn step(&mut self, rec: &mut Recorder) {
        let roll = rand::random_range(0..100);
        let random_id = || self.ids[rand::random_range(0..self.ids.len())].clone();
        match roll {
            0..45 => {
                let request = pb::GetExecutionRequest {
                    id: random_id(),
                    ..Default::default()
                };
                rec.time("get", self.client.get_execution(request)).await;
            }
            45..60 => {
                let request = pb::GetExecutionRequest {
                    id: random_id(),
                    view: pb::ExecutionView::Basic as i32,
                    ..Default::default()
                };
                rec.time("get-basic", self.client.get_execution(request))
                    .await;
            }
            60..78 => {
                let (op, token) = if roll < 72 || self.next_page.is_empty() {
                    ("list-first", String::new())
                } else {
                    ("list-next", self.next_page.clone())
                };
                let request = pb::ListExecutionsRequest {
                    page_size: 25,
                    page_token: token,
                    ..Default::default()
                };
                if let Some(page) = rec.time(op, self.client.list_executions(request)).await
                    && op == "list-first"
                {
                    self.next_page = page.next_page_token;
                }
            }
            78..80 => {
                let n = rand::random_range(0..1_000_000);
                let template = pb::Template::clone(&self.lifecycle.template);
                let request = crate::dag::start_request(template, n);
                rec.time("start", self.client.start_execution(request))
                    .await;
            }
            _ => {
                if let Some(id) = self.lifecycle.advance(rec, "start", "update").await {
                    tokio::spawn(watch_to_end(self.client.clone(), id, self.watch.clone()));
                }
            }
        }
    }
}

/// Watches one execution until its stream ends (OK after its terminal state).
pub async fn watch_to_end(mut client: Client, id: String, counters: Arc<WatchCounters>) {
    let request = pb::WatchExecutionRequest {
        id,
        ..Default::default()
    };
    let mut events = match client.watch_execution(request).await {
        Ok(response) => response.into_inner(),
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    loop {
        match events.message().await {
            Ok(Some(_)) => {
                counters.events.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => return,
            Err(status) => {
                // The end of the run cuts streams off; anything else is a failure.
                if status.code() != tonic::Code::Cancelled {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    }
}

/// Samples the server's RSS every `every` until `until`, printing each sample; returns
/// them (MiB).
pub async fn sample_rss(pid: Option<u32>, every: Duration, until: Instant) -> Vec<(f64, f64)> {
    let began = Instant::now();
    let mut samples = Vec::new();
    let Some(pid) = pid else {
        return samples;
    };
    while Instant::now() + every <= until + Duration::from_millis(100) {
        tokio::time::sleep(every).await;
        let mib = crate::server::rss_kib(pid) as f64 / 1024.0;
        let t = began.elapsed().as_secs_f64();
        eprintln!("    t={t:>5.0}s  server RSS {mib:.1} MiB");
        samples.push((t, mib));
    }
    samples
}
