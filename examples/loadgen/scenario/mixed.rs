//! The mixed blend: mostly reads (Get FULL and BASIC, List first and second pages), a
//! stream of watchers (each engine lifecycle is watched to its end, plus idle watchers of
//! seeded executions), and some starts and updates; the server's RSS is sampled along the
//! way so that memory flatness over a long run can be read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;

use super::update::Lifecycle;
use crate::drive::{Recorder, Worker};
use crate::{Client, Session, dag};

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
                let request = dag::start_request(template, n);
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

impl Session {
    /// `mixed`: the blend, RSS sampled every `--rss-every` s.
    pub async fn mixed(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 0));
        let counters = Arc::new(WatchCounters::default());
        // Idle watchers of seeded executions, held for the whole run.
        let mut idle = Vec::new();
        for w in 0..self.opts.watchers {
            let id = self.ids[w % self.ids.len()].clone();
            idle.push(tokio::spawn(watch_to_end(
                self.client(w),
                id,
                counters.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (w, d) = (self.warmup(), self.duration());
        let pid = self.server.as_ref().map(|s| s.pid());
        let sampler = tokio::spawn(sample_rss(
            pid,
            Duration::from_secs(self.opts.rss_every.max(1)),
            Instant::now() + w + d,
        ));
        let ops = [
            "get",
            "get-basic",
            "list-first",
            "list-next",
            "start",
            "update",
        ];
        let f = self
            .measure("mixed", &ops, w, d, |s| {
                s.callers(|i| Mixed {
                    client: s.client(i),
                    ids: s.ids.clone(),
                    lifecycle: Lifecycle::new(s.client(i), template.clone()),
                    next_page: String::new(),
                    watch: counters.clone(),
                })
            })
            .await;
        let total: f64 = f.iter().map(|f| f.per_second).sum();
        for (op, figures) in ops.iter().zip(&f) {
            self.summary.row(format!("mixed: {op}"), figures);
        }
        for task in idle {
            task.abort();
        }
        let samples = sampler.await.unwrap_or_default();
        let failed = counters.failed.load(Ordering::Relaxed);
        self.errors += failed;
        let events = counters.events.load(Ordering::Relaxed);
        let mut note = format!(
            "mixed: {total:.0} calls/s in all; {} idle watchers plus one per running lifecycle; {events} watch messages received, {failed} streams failed",
            self.opts.watchers
        );
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
            note.push_str(&format!(
                "; server RSS {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s, max {max:.1} MiB",
                first.1, first.0, last.1, last.0
            ));
        }
        self.summary.note(note);
        Ok(())
    }
}
