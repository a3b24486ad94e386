//! One measured window of `feeds`: the paced writes, each change timed to the moment all
//! its followers had it, and what the servers counted and spent meanwhile (database
//! reads, CPU, RSS). It also lists the seconds of the window whose slowest change took
//! longer than 250 ms, and counts the deliveries that reached a follower only coalesced
//! with a later change (two changes in one reader round, or a feed that fell behind and
//! caught up from the database), so that a tail can be told from a steady state.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::follow::Arrivals;
use super::wait_quiet;
use super::{Bench, writer};
use crate::Session;
use crate::drive::Report;
use crate::report::Figures;
use crate::server::{Server, Stats, cpu_seconds, cpu_seconds_of, rss_kib};

/// How long a change may take to reach its followers before it counts as missed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds of a window whose slowest change took longer than this are listed.
const SLOW_MS: f64 = 250.0;

/// Who must receive a change for it to count as delivered.
pub enum Followers {
    /// Nobody (the writes alone).
    Nobody,
    /// Every feed of the change's tenant (indexed by tenant).
    Feeds(Vec<Vec<u32>>),
    /// The one watcher of the change's execution, when it has one.
    Watchers(HashSet<String>),
}

impl Followers {
    fn of(&self, write: &writer::Write) -> &[u32] {
        match self {
            Followers::Nobody => &[],
            Followers::Feeds(by_tenant) => &by_tenant[write.tenant],
            Followers::Watchers(watched) if watched.contains(&write.id) => &[0],
            Followers::Watchers(_) => &[],
        }
    }
}

/// The figures of one measured window.
pub struct Measured {
    /// UpdateAction latency.
    pub update: Figures,
    /// Change → every follower, from the write's answer.
    pub delivered: Figures,
    /// The same, from the write's sending.
    pub delivered_from_send: Figures,
    /// Counted on the followers' server over the window (warm-up and settling included).
    follow: Option<Stats>,
    /// Counted on the writes' server over the same span.
    written: Option<Stats>,
    /// Changes the writer skipped (behind its schedule).
    pub skipped: u64,
    /// CPU seconds over the same span: the followers' server, the writes' server (the
    /// same one without a replica), the load generator.
    cpu: Option<Cpu>,
    /// The followers' server's RSS before and after the span, KiB.
    pub rss: Option<(u64, u64)>,
    /// UPDATEs the followers received over the span.
    updates: u64,
}

/// CPU seconds used by the processes of a run, so far or over a span.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    follow: f64,
    written: f64,
    loadgen: f64,
    /// Every `postgres` process on this machine (its backends included), on PostgreSQL.
    database: Option<f64>,
}

impl Cpu {
    fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            follow: self.follow - earlier.follow,
            written: self.written - earlier.written,
            loadgen: self.loadgen - earlier.loadgen,
            database: self.database.zip(earlier.database).map(|(a, b)| a - b),
        }
    }
}

impl Measured {
    /// Database rounds of the followers' change reader per committed change.
    pub fn rounds_per_change(&self) -> Option<f64> {
        Some(self.follow?.feed_rounds as f64 / self.written?.published.max(1) as f64)
    }

    /// Executions the followers' change reader read per committed change.
    pub fn rows_per_change(&self) -> Option<f64> {
        Some(self.follow?.feed_rows as f64 / self.written?.published.max(1) as f64)
    }

    /// Executions the followers' change hub read (for WatchExecution) per committed change.
    pub fn state_reads_per_change(&self) -> Option<f64> {
        Some(self.follow?.state_reads as f64 / self.written?.published.max(1) as f64)
    }

    /// Server CPU (both servers with a replica) per committed change, in ms.
    pub fn server_cpu_ms_per_change(&self, replica: bool) -> Option<f64> {
        let cpu = self.cpu?;
        let servers = if replica {
            cpu.follow + cpu.written
        } else {
            cpu.follow
        };
        Some(servers * 1_000.0 / self.written?.published.max(1) as f64)
    }

    /// UPDATEs the followers received per committed change: as many as each change has
    /// followers when none fell behind (a feed that falls behind catches up from the
    /// database, which coalesces changes, and those reads are not in the reader's count).
    pub fn updates_per_change(&self) -> Option<f64> {
        Some(self.updates as f64 / self.written?.published.max(1) as f64)
    }

    /// Rounds of the writes' server's own change reader per committed change (it has no
    /// feed when the feeds sit on B).
    pub fn writer_rounds_per_change(&self) -> Option<f64> {
        let written = self.written?;
        Some(written.feed_rounds as f64 / written.published.max(1) as f64)
    }
}

impl Session {
    /// One window of paced writes with nobody following.
    pub(super) async fn feed_window(
        &mut self,
        bench: &mut Bench,
        label: &str,
        followers: &Followers,
    ) -> anyhow::Result<Measured> {
        self.follow_window(bench, label, followers, &Arrivals::default())
            .await
    }

    /// One window of paced writes, each timed to the moment every one of its `followers`
    /// had it (as `arrivals` saw them).
    pub(super) async fn follow_window(
        &mut self,
        bench: &mut Bench,
        label: &str,
        followers: &Followers,
        arrivals: &Arrivals,
    ) -> anyhow::Result<Measured> {
        if self.opts.wait_quiet {
            wait_quiet().await;
        }
        arrivals.clear();
        let updates_before = arrivals.updates.load(Ordering::Relaxed);
        let began = Instant::now();
        let cpu_before = self.cpu(bench);
        let rss_before = self.follow_rss(bench);
        let before = self.feed_counters(bench)?;
        let (warmup, duration) = (self.warmup(), self.duration());
        let window = bench.writer.run(bench.plan.rate, warmup, duration).await;
        let mut rec = window.rec;
        // Wait until every measured change reached all its followers (or timed out).
        let settling = Instant::now();
        loop {
            let pending = window
                .writes
                .iter()
                .filter(|w| {
                    let to = followers.of(w);
                    !to.is_empty() && arrivals.delivered(&w.id, w.revision, to).is_none()
                })
                .count();
            if pending == 0 || settling.elapsed() > DELIVERY_TIMEOUT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Per second of the window (by sending time), the slowest change; and the
        // deliveries that reached a follower only coalesced with a later change.
        let mut slowest: Vec<Duration> = Vec::new();
        let mut coalesced = 0;
        for w in &window.writes {
            let to = followers.of(w);
            if to.is_empty() {
                continue;
            }
            match arrivals.delivered(&w.id, w.revision, to) {
                Some((last, skipped)) => {
                    let latency = last.saturating_duration_since(w.answered);
                    rec.record("→ all followers", latency);
                    rec.record("→ all, from send", last.saturating_duration_since(w.sent));
                    coalesced += skipped;
                    let second = w
                        .sent
                        .saturating_duration_since(window.measure_from)
                        .as_secs();
                    let second = usize::try_from(second).unwrap_or(usize::MAX).min(3_600);
                    if slowest.len() <= second {
                        slowest.resize(second + 1, Duration::ZERO);
                    }
                    slowest[second] = slowest[second].max(latency);
                }
                None => rec.fail(
                    "→ all followers",
                    format!("revision {} of {} missed a follower", w.revision, w.id),
                ),
            }
        }
        let slow: Vec<String> = slowest
            .iter()
            .enumerate()
            .filter(|(_, max)| max.as_secs_f64() * 1_000.0 > SLOW_MS)
            .map(|(s, max)| format!("{s} s ({:.0} ms)", max.as_secs_f64() * 1_000.0))
            .collect();
        if !slow.is_empty() || coalesced > 0 {
            println!(
                "  {label}: changes slower than {SLOW_MS} ms (from the answer) sent at {}; {coalesced} deliveries coalesced with a later change",
                if slow.is_empty() {
                    "no second".to_owned()
                } else {
                    slow.join(", ")
                }
            );
        }
        let after = self.feed_counters(bench)?;
        let cpu = self.cpu(bench).zip(cpu_before).map(|(a, b)| a.since(&b));
        let rss = rss_before.zip(self.follow_rss(bench));
        let span = began.elapsed().as_secs_f64();
        let updates = arrivals.updates.load(Ordering::Relaxed) - updates_before;
        let report = Report::new(rec, window.measured);
        self.record(label, &report);
        let since = |a: Option<Stats>, b: Option<Stats>| Some(a?.since(&b?));
        let measured = Measured {
            update: Figures::of(&report, "update"),
            delivered: Figures::of(&report, "→ all followers"),
            delivered_from_send: Figures::of(&report, "→ all, from send"),
            follow: since(after.0, before.0),
            written: since(after.1, before.1),
            skipped: window.skipped,
            cpu,
            rss,
            updates,
        };
        println!(
            "  {label}: {} changes sent, {} skipped; {updates} UPDATEs received{}",
            window.sent,
            window.skipped,
            rss.map_or(String::new(), |(b, a)| format!(
                "; followers' server RSS {:.1} → {:.1} MiB",
                b as f64 / 1024.0,
                a as f64 / 1024.0
            ))
        );
        if let (Some(rounds), Some(rows), Some(follow), Some(written)) = (
            measured.rounds_per_change(),
            measured.rows_per_change(),
            measured.follow,
            measured.written,
        ) {
            println!(
                "  {label}: {} committed; followers' server: {} reader rounds ({rounds:.3}/change), {} executions read ({rows:.3}/change), {} hub reads; writes' server: {} reader rounds",
                written.published,
                follow.feed_rounds,
                follow.feed_rows,
                follow.state_reads,
                written.feed_rounds,
            );
        }
        if let Some(cpu) = cpu {
            let share = |s: f64| 100.0 * s / span;
            println!(
                "  {label}: CPU over {span:.1} s: followers' server {:.0}%{}{}, load generator {:.0}% (of one core); load average {}",
                share(cpu.follow),
                if bench.replica.is_some() {
                    format!(", writes' server {:.0}%", share(cpu.written))
                } else {
                    String::new()
                },
                cpu.database
                    .map_or(String::new(), |d| format!(", PostgreSQL {:.0}%", share(d))),
                share(cpu.loadgen),
                load_average()
            );
        }
        Ok(measured)
    }

    /// The counters of the followers' server and of the writes' server (the same server
    /// without a replica), when this run started them.
    fn feed_counters(
        &mut self,
        bench: &mut Bench,
    ) -> anyhow::Result<(Option<Stats>, Option<Stats>)> {
        let written = self.server.as_mut().map(Server::stats).transpose()?;
        let follow = match &mut bench.replica {
            Some(b) => Some(b.stats()?),
            None => written,
        };
        Ok((follow, written))
    }

    /// CPU seconds used so far by the servers (when this run started them) and by this
    /// process.
    fn cpu(&self, bench: &Bench) -> Option<Cpu> {
        let written = self.server.as_ref()?.pid();
        let follow = bench.replica.as_ref().map_or(written, Server::pid);
        Some(Cpu {
            follow: cpu_seconds(follow),
            written: cpu_seconds(written),
            loadgen: cpu_seconds(std::process::id()),
            database: self
                .dbs
                .as_ref()
                .is_some_and(|d| d.is_postgres())
                .then(|| cpu_seconds_of("postgres")),
        })
    }

    /// The followers' server's RSS in KiB, when this run started it.
    pub(super) fn follow_rss(&self, bench: &Bench) -> Option<u64> {
        bench
            .replica
            .as_ref()
            .or(self.server.as_ref())
            .map(|s| rss_kib(s.pid()))
    }
}

/// The machine's load averages (1, 5 and 15 minutes), to tell a busy machine's figures
/// from a quiet one's (`--wait-quiet` waits for compilers only).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
