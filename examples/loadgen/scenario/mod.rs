//! The scenarios, one module each with its load workers, and what they share: which
//! scenarios a command runs, the measurement loop (runs, median, progress lines), the idle
//! RSS check at the end, and waiting for a quiet machine.

mod feeds;
mod get;
mod growth;
mod list;
mod mixed;
mod pgbench;
mod start;
mod stop;
mod stop_event;
mod update;
mod watch_fanout;

use std::time::{Duration, Instant};

use crate::drive::{self, Report, Worker};
use crate::report::{Bound, Figures};
use crate::{Scenario, Session};

impl Scenario {
    /// The scenarios this one stands for, in the order they run.
    pub fn plan(self) -> Vec<Scenario> {
        use Scenario::*;
        match self {
            All | Smoke => vec![
                Get,
                GetBasic,
                ListFirst,
                ListDeep,
                Count,
                Growth,
                WatchFanout,
                Start,
                Update,
                Stop,
                StopEvent,
                Mixed,
            ],
            one => vec![one],
        }
    }
}

impl Session {
    /// Runs one scenario of a plan.
    pub async fn run_scenario(&mut self, scenario: Scenario) -> anyhow::Result<()> {
        use Scenario::*;
        let reads_seeded = matches!(
            scenario,
            Get | GetBasic | ListFirst | ListDeep | Count | Mixed | Growth
        );
        anyhow::ensure!(
            !reads_seeded || !self.ids.is_empty(),
            "{scenario:?} reads seeded executions: --seed must be at least 1"
        );
        match scenario {
            Get => self.get().await,
            GetBasic => self.get_basic().await,
            ListFirst => self.list_first().await.map(drop),
            ListDeep => self.list_deep().await,
            Count => self.count().await,
            Start => self.start().await,
            Update => self.update().await,
            Stop => self.stop().await,
            StopEvent => self.stop_event().await,
            WatchFanout => self.watch_fanout().await,
            Feeds => self.feeds().await,
            Mixed => self.mixed().await,
            Growth => self.growth().await,
            Idle | All | Smoke => Ok(()),
        }
    }

    /// Runs workers made by `make` (`--runs` times) and returns the median figures of each
    /// of `ops`, printing every operation's figures as it goes.
    pub async fn measure<W: Worker>(
        &mut self,
        label: &str,
        ops: &[&'static str],
        warmup: Duration,
        duration: Duration,
        make: impl Fn(&Session) -> Vec<W>,
    ) -> Vec<Figures> {
        let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); ops.len()];
        for run in 0..self.opts.runs.max(1) {
            if self.opts.wait_quiet {
                wait_quiet().await;
            }
            if let Some(dbs) = &self.dbs {
                dbs.checkpoint().await;
            }
            let report = drive::run(make(self), warmup, duration).await;
            self.record(&format!("{label} #{}", run + 1), &report);
            for (i, op) in ops.iter().enumerate() {
                runs[i].push(Figures::of(&report, op));
            }
        }
        runs.iter().map(|r| Figures::median(r)).collect()
    }

    /// One worker per concurrent caller (`--concurrency`), the `i`th made by `make(i)`.
    pub fn callers<W>(&self, make: impl FnMut(usize) -> W) -> Vec<W> {
        (0..self.opts.concurrency).map(make).collect()
    }

    /// [`Session::measure`] of the one operation `op` over the usual warm-up and window.
    pub async fn measure_one<W: Worker>(
        &mut self,
        op: &'static str,
        make: impl Fn(&Session) -> Vec<W>,
    ) -> Figures {
        let (w, d) = (self.warmup(), self.duration());
        let mut figures = self.measure(op, &[op], w, d, make).await;
        figures.remove(0)
    }

    /// Counts a report's failed calls and prints each of its operations' figures.
    pub fn record(&mut self, label: &str, report: &Report) {
        self.errors += report.errors();
        for (op, stats) in &report.ops {
            let f = Figures::of(report, op);
            println!("  {label}  {op:<22} {}", f.line());
            if let Some(message) = &stats.first_error {
                println!("    first error: {message}");
            }
        }
    }

    /// The server's RSS once the load is over and it has been quiet for 3 s.
    pub async fn idle_rss(&mut self) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(mib) = self.rss_mib() {
            self.summary.check(
                "server RSS, idle after the load, MiB",
                format!("{mib:.1} MiB"),
                "—".into(),
                mib,
                Bound::AtMost(64.0),
            );
        }
    }
}

/// Waits (at most 5 minutes) until no `rustc` process runs on the machine.
pub async fn wait_quiet() {
    let began = Instant::now();
    while rustc_running() {
        if began.elapsed() > Duration::from_secs(300) {
            println!("  (rustc still running after 5 min: figures may be noisy)");
            return;
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
}

fn rustc_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "rustc"))
}
