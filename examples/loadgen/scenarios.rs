//! The scenarios: seeding, each measurement with its baseline, and the checks against the
//! targets of issue 5.

use std::sync::Arc;
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tonic_health::pb::health_client::HealthClient;

use crate::drive::{self, Worker};
use crate::mixed::{self, WatchCounters};
use crate::report::{Bound, Figures};
use crate::workers::{self, Lifecycle};
use crate::{SeedMode, Session, dag, database, fanout, seed};

/// Rows per page of the list scenarios.
const PAGE: u64 = 25;

impl Session {
    /// Seeds up to `--seed` executions and samples their ids.
    pub async fn seed(&mut self) -> anyhow::Result<()> {
        let o = self.opts.clone();
        let existing = match &self.dbs {
            Some(dbs) => database::count(&dbs.conn).await?,
            None => 0,
        };
        let wanted = (o.seed as u64).saturating_sub(existing) as usize;
        let sql = match o.seed_mode {
            SeedMode::Sql => true,
            SeedMode::Api => false,
            SeedMode::Auto => wanted > 200_000,
        } && self.dbs.is_some();
        let began = Instant::now();
        let mut api_ids = Vec::new();
        if wanted > 0 {
            println!(
                "  seeding {wanted} executions of {} actions {}",
                o.actions,
                if sql {
                    "(3 through StartExecution, the rest copied in SQL)"
                } else {
                    "through StartExecution"
                }
            );
            match (&self.dbs, sql) {
                (Some(dbs), true) => {
                    seed::via_sql(&self.channels, &dbs.conn, wanted, o.actions).await?;
                }
                _ => {
                    api_ids = seed::via_api(&self.channels, wanted, o.actions, o.seed_concurrency)
                        .await?;
                }
            }
            let secs = began.elapsed().as_secs_f64();
            let note = format!(
                "seeded {wanted} executions of {} actions {} in {secs:.1} s ({:.0}/s)",
                o.actions,
                if sql {
                    "by SQL copy"
                } else {
                    "through StartExecution"
                },
                wanted as f64 / secs
            );
            println!("  {note}");
            self.summary.notes.push(note);
        }
        let (ids, total) = match &self.dbs {
            Some(dbs) => (
                database::sample_ids(&dbs.conn, 10_000).await?,
                database::count(&dbs.conn).await?,
            ),
            None => (api_ids, o.seed as u64),
        };
        anyhow::ensure!(!ids.is_empty(), "no executions to read");
        println!(
            "  {total} executions stored; reading a sample of {}",
            ids.len()
        );
        self.ids = Arc::new(ids);
        self.total = total;
        Ok(())
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
            let report = drive::run(make(self), warmup, duration).await;
            self.errors += report.errors();
            for (op, stats) in &report.ops {
                let f = Figures::of(&report, op);
                println!("  {label} #{}  {op:<22} {}", run + 1, f.line());
                if let Some(message) = &stats.first_error {
                    println!("    first error: {message}");
                }
            }
            for (i, op) in ops.iter().enumerate() {
                runs[i].push(Figures::of(&report, op));
            }
        }
        runs.iter().map(|r| Figures::median(r)).collect()
    }

    /// Health/Check on the same connections and concurrency (measured once).
    async fn health(&mut self) -> Figures {
        if let Some(h) = &self.health {
            return h.clone();
        }
        let (w, d) = (self.warmup(), self.duration());
        let f = self
            .measure("health", &["health"], w, d, |s| {
                (0..s.opts.concurrency)
                    .map(|i| workers::Health {
                        client: HealthClient::new(s.channels[i % s.channels.len()].clone()),
                    })
                    .collect()
            })
            .await
            .remove(0);
        self.summary
            .row("grpc.health.v1.Health/Check (baseline)", &f);
        self.health = Some(f.clone());
        f
    }

    fn getters(&self, view: pb::ExecutionView, op: &'static str) -> Vec<workers::Get> {
        (0..self.opts.concurrency)
            .map(|i| workers::Get {
                client: self.client(i),
                ids: self.ids.clone(),
                view,
                op,
            })
            .collect()
    }

    /// `get`: FULL view vs Health/Check, and vs pgbench -S on PostgreSQL.
    pub async fn get(&mut self) -> anyhow::Result<()> {
        let health = self.health().await;
        let (w, d) = (self.warmup(), self.duration());
        let get = self
            .measure("get", &["get"], w, d, |s| {
                s.getters(pb::ExecutionView::Full, "get")
            })
            .await
            .remove(0);
        self.summary
            .row(format!("get (FULL, {} actions)", self.opts.actions), &get);
        self.summary.check(
            "get FULL vs Health/Check, calls/s",
            format!("{:.0}/s", get.per_second),
            format!("{:.0}/s", health.per_second),
            get.per_second / health.per_second,
            Bound::AtLeast(0.5),
        );
        if let Some(tps) = self.pgbench(&["-S"]).await? {
            self.summary.check(
                format!(
                    "get FULL vs pgbench -S -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                format!("{:.0}/s", get.per_second),
                format!("{tps:.0} TPS"),
                get.per_second / tps,
                Bound::AtLeast(0.5),
            );
        }
        Ok(())
    }

    /// `get-basic`: BASIC view vs Health/Check.
    pub async fn get_basic(&mut self) -> anyhow::Result<()> {
        let health = self.health().await;
        let (w, d) = (self.warmup(), self.duration());
        let get = self
            .measure("get-basic", &["get-basic"], w, d, |s| {
                s.getters(pb::ExecutionView::Basic, "get-basic")
            })
            .await
            .remove(0);
        self.summary.row("get-basic (BASIC)", &get);
        self.summary.check(
            "get BASIC vs Health/Check, calls/s",
            format!("{:.0}/s", get.per_second),
            format!("{:.0}/s", health.per_second),
            get.per_second / health.per_second,
            Bound::AtLeast(0.5),
        );
        Ok(())
    }

    fn listers(&self, token: &str, op: &'static str, concurrency: usize) -> Vec<workers::List> {
        (0..concurrency)
            .map(|i| workers::List {
                client: self.client(i),
                token: token.to_owned(),
                op,
            })
            .collect()
    }

    /// `list-first`: the first page of 25 (measured once).
    pub async fn list_first(&mut self) -> anyhow::Result<Figures> {
        if let Some(f) = &self.list_first {
            return Ok(f.clone());
        }
        let (w, d) = (self.warmup(), self.duration());
        let f = self
            .measure("list-first", &["list-first"], w, d, |s| {
                s.listers("", "list-first", s.opts.concurrency)
            })
            .await
            .remove(0);
        self.summary.row("list-first (25, BASIC)", &f);
        self.list_first = Some(f.clone());
        Ok(f)
    }

    /// `list-deep`: the page after a deep token vs the first page, p50.
    pub async fn list_deep(&mut self) -> anyhow::Result<()> {
        let first = self.list_first().await?;
        let depth = self.deep_depth();
        let began = Instant::now();
        let tokens = self.tokens_at(&[depth]).await?;
        let Some((depth, token)) = tokens.last().cloned() else {
            anyhow::bail!("no page at depth {depth}");
        };
        println!(
            "  reached depth {depth} by following page tokens in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        let (w, d) = (self.warmup(), self.duration());
        let deep = self
            .measure("list-deep", &["list-deep"], w, d, |s| {
                s.listers(&token, "list-deep", s.opts.concurrency)
            })
            .await
            .remove(0);
        self.summary.row(
            format!("list-deep (25 after {depth} of {})", self.total),
            &deep,
        );
        self.summary.check(
            format!("list page after {depth} rows vs first page, p50"),
            format!("{:.3} ms", deep.p50),
            format!("{:.3} ms", first.p50),
            deep.p50 / first.p50,
            Bound::AtMost(1.5),
        );
        Ok(())
    }

    /// `--depth`, or 90% of the rows, in whole pages.
    fn deep_depth(&self) -> u64 {
        let depth = self.opts.depth.unwrap_or(self.total * 9 / 10);
        (depth.min(self.total.saturating_sub(PAGE)) / PAGE) * PAGE
    }

    /// Follows page tokens (pages of up to 500, BASIC) once from the first page, and
    /// returns the token that resumes after each of `depths` rows (0: the empty token).
    pub async fn tokens_at(&self, depths: &[u64]) -> anyhow::Result<Vec<(u64, String)>> {
        let mut client = self.client(0);
        let mut wanted: Vec<u64> = depths.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let (mut depth, mut token) = (0u64, String::new());
        let mut found = Vec::new();
        for target in wanted {
            while depth < target {
                let size = (target - depth).min(500) as i32;
                let page = client
                    .list_executions(pb::ListExecutionsRequest {
                        page_size: size,
                        page_token: token.clone(),
                        view: pb::ExecutionView::Basic as i32,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                depth += page.executions.len() as u64;
                token = page.next_page_token;
                if token.is_empty() {
                    return Ok(found);
                }
            }
            found.push((depth, token.clone()));
        }
        Ok(found)
    }

    /// `start`: StartExecution of a fork/join template.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 1));
        let (w, d) = (self.warmup(), self.duration());
        let f = self
            .measure("start", &["start"], w, d, |s| {
                (0..s.opts.concurrency)
                    .map(|i| workers::Start {
                        client: s.client(i),
                        template: template.clone(),
                        n: i * 1_000_000,
                    })
                    .collect()
            })
            .await
            .remove(0);
        self.summary
            .row(format!("start ({} actions)", self.opts.actions), &f);
        Ok(())
    }

    /// `update`: whole worker lifecycles; vs pgbench TPC-B on PostgreSQL.
    pub async fn update(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 0));
        let (w, d) = (self.warmup(), self.duration());
        let mut f = self
            .measure("update", &["update", "lifecycle"], w, d, |s| {
                (0..s.opts.concurrency)
                    .map(|i| Lifecycle::new(s.client(i), template.clone()))
                    .collect()
            })
            .await;
        let lifecycle = f.remove(1);
        let update = f.remove(0);
        self.summary.row(
            format!("update (UpdateAction, {} actions)", self.opts.actions),
            &update,
        );
        self.summary.row(
            format!(
                "  whole lifecycle: executions/s, start to COMPLETED ({} updates)",
                self.opts.actions * 3
            ),
            &lifecycle,
        );
        self.update = Some(update.clone());
        if let Some(tps) = self.pgbench(&[]).await? {
            self.summary.check(
                format!(
                    "UpdateAction vs pgbench TPC-B -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                format!("{:.0}/s", update.per_second),
                format!("{tps:.0} TPS"),
                update.per_second / tps,
                Bound::AtLeast(0.5),
            );
        }
        Ok(())
    }

    /// `stop`: StopExecution of 999 actions vs UpdateAction on the same execution.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(dag::MAX_ACTIONS, 2));
        let (w, d) = (self.warmup(), self.duration());
        let ops = [
            "stop (999 actions)",
            "update (999 actions)",
            "start 999 (setup)",
        ];
        let f = self
            .measure("stop", &ops, w, d, |s| {
                (0..s.opts.concurrency)
                    .map(|i| workers::Stop {
                        client: s.client(i),
                        template: template.clone(),
                        n: i * 1_000_000,
                    })
                    .collect()
            })
            .await;
        for (op, figures) in ops.iter().zip(&f) {
            self.summary.row(*op, figures);
        }
        let (stop, update) = (&f[0], &f[1]);
        self.summary.check(
            "stop of 999 actions vs UpdateAction on it, p50",
            format!("{:.3} ms", stop.p50),
            format!("{:.3} ms", update.p50),
            stop.p50 / update.p50,
            Bound::AtMost(10.0),
        );
        if let Some(small) = self.update.clone() {
            self.summary.check(
                format!(
                    "stop of 999 actions vs UpdateAction of `update` ({} actions), p50",
                    self.opts.actions
                ),
                format!("{:.3} ms", stop.p50),
                format!("{:.3} ms", small.p50),
                stop.p50 / small.p50,
                Bound::AtMost(10.0),
            );
        }
        Ok(())
    }

    /// `watch-fanout`: change → last of `--watchers` watchers.
    pub async fn watch_fanout(&mut self) -> anyhow::Result<()> {
        if self.opts.wait_quiet {
            wait_quiet().await;
        }
        let watchers = self.opts.watchers;
        let report =
            fanout::run(&self.channels, watchers, self.opts.actions, self.duration()).await?;
        self.errors += report.errors();
        for (op, stats) in &report.ops {
            let f = Figures::of(&report, op);
            println!("  watch-fanout  {op:<22} {}", f.line());
            if let Some(message) = &stats.first_error {
                println!("    first error: {message}");
            }
        }
        let fan = Figures::of(&report, "fan-out");
        self.summary.row(
            format!(
                "watch fan-out to {watchers} watchers, {} actions (changes/s, one at a time)",
                self.opts.actions.clamp(50, dag::MAX_ACTIONS)
            ),
            &fan,
        );
        self.summary.row(
            "  update (watched)",
            &Figures::of(&report, "update (watched)"),
        );
        Ok(())
    }

    /// `mixed`: the blend, RSS sampled every `--rss-every` s.
    pub async fn mixed(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 0));
        let counters = Arc::new(WatchCounters::default());
        // Idle watchers of seeded executions, held for the whole run.
        let mut idle = Vec::new();
        for w in 0..self.opts.watchers {
            let id = self.ids[w % self.ids.len()].clone();
            idle.push(tokio::spawn(mixed::watch_to_end(
                self.client(w),
                id,
                counters.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (w, d) = (self.warmup(), self.duration());
        let pid = self.server.as_ref().map(|s| s.pid());
        let sampler = tokio::spawn(mixed::sample_rss(
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
                (0..s.opts.concurrency)
                    .map(|i| mixed::Mixed {
                        client: s.client(i),
                        ids: s.ids.clone(),
                        lifecycle: Lifecycle::new(s.client(i), template.clone()),
                        next_page: String::new(),
                        watch: counters.clone(),
                    })
                    .collect()
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
        let failed = counters.failed.load(std::sync::atomic::Ordering::Relaxed);
        self.errors += failed;
        let events = counters.events.load(std::sync::atomic::Ordering::Relaxed);
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
        println!("  {note}");
        self.summary.notes.push(note);
        Ok(())
    }

    /// `growth`: Get latency vs actions per execution, List latency vs depth, one caller.
    pub async fn growth(&mut self) -> anyhow::Result<()> {
        let d = self.duration().min(Duration::from_secs(5));
        let w = self.warmup().min(Duration::from_millis(500));
        let mut client = self.client(0);
        let mut get_p50 = Vec::new();
        for actions in [1, 20, 200, dag::MAX_ACTIONS] {
            let e = client
                .start_execution(dag::start_request(dag::fork_join(actions, 0), actions))
                .await?
                .into_inner();
            let ids = Arc::new(vec![e.id]);
            let f = self
                .measure(&format!("get {actions} actions"), &["get"], w, d, |s| {
                    vec![workers::Get {
                        client: s.client(0),
                        ids: ids.clone(),
                        view: pb::ExecutionView::Full,
                        op: "get",
                    }]
                })
                .await
                .remove(0);
            self.summary
                .row(format!("growth: get FULL, {actions} actions, 1 caller"), &f);
            get_p50.push((actions, f.p50));
        }
        let mut depths: Vec<u64> = [0, 1_000, 10_000, 100_000, 1_000_000]
            .into_iter()
            .filter(|d| *d + PAGE <= self.total)
            .collect();
        depths.push(self.deep_depth());
        let tokens = self.tokens_at(&depths).await?;
        let mut first = None;
        for (depth, token) in tokens {
            let f = self
                .measure(&format!("list after {depth}"), &["list"], w, d, |s| {
                    s.listers(&token, "list", 1)
                })
                .await
                .remove(0);
            self.summary.row(
                format!("growth: list 25 BASIC after {depth} rows, 1 caller"),
                &f,
            );
            let first_p50 = *first.get_or_insert(f.p50);
            if depth > 0 {
                println!(
                    "  list after {depth}: p50 {:.3} ms = {:.2} × the first page",
                    f.p50,
                    f.p50 / first_p50
                );
            }
        }
        if let (Some(small), Some(large)) = (get_p50.get(1), get_p50.last()) {
            self.summary.notes.push(format!(
                "growth: get FULL p50 {:.3} ms at {} actions, {:.3} ms at {} actions ({:.1}×)",
                small.1,
                small.0,
                large.1,
                large.0,
                large.1 / small.1
            ));
        }
        Ok(())
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

    /// Runs pgbench with `script_args` (`-S`, or none for TPC-B) with `--concurrency`
    /// clients for `--duration` s in a scratch database on the same PostgreSQL server
    /// (initialised once with `-s 10`). `None` off PostgreSQL or with `--no-pgbench`.
    async fn pgbench(&mut self, script_args: &[&str]) -> anyhow::Result<Option<f64>> {
        let Some(dbs) = self.dbs.as_mut() else {
            return Ok(None);
        };
        if !dbs.is_postgres() || self.opts.no_pgbench {
            return Ok(None);
        }
        let binary = self.opts.pgbench.clone();
        let database = match &self.pgbench_db {
            Some(name) => name.clone(),
            None => {
                let name = dbs
                    .scratch(&format!("loadgen_pgbench_{}", std::process::id()))
                    .await?;
                println!("  pgbench -i -s 10 {name}");
                let (b, u) = (binary.clone(), dbs.libpq_url(&name)?);
                tokio::task::spawn_blocking(move || database::pgbench_init(&b, &u, 10)).await??;
                self.pgbench_db = Some(name.clone());
                name
            }
        };
        let url = dbs.libpq_url(&database)?;
        let clients = self.opts.concurrency.max(1);
        let mut args: Vec<String> = script_args.iter().map(|a| (*a).to_owned()).collect();
        args.extend([
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            clients.min(2).to_string(),
            "-T".into(),
            (self.opts.duration.ceil() as u64).max(1).to_string(),
        ]);
        let mut runs = Vec::new();
        for run in 0..self.opts.runs.max(1) {
            if self.opts.wait_quiet {
                wait_quiet().await;
            }
            let (b, u, a) = (binary.clone(), url.clone(), args.clone());
            let tps = tokio::task::spawn_blocking(move || database::pgbench(&b, &u, &a)).await??;
            println!("  pgbench {} #{}: {tps:.0} TPS", args.join(" "), run + 1);
            runs.push(tps);
        }
        runs.sort_by(f64::total_cmp);
        let tps = runs[runs.len() / 2];
        self.summary.row(
            format!("pgbench {} (baseline, TPS)", args.join(" ")),
            &Figures {
                per_second: tps,
                ..Default::default()
            },
        );
        Ok(Some(tps))
    }
}

/// Waits (at most 5 minutes) until no `rustc` process runs on the machine.
async fn wait_quiet() {
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
