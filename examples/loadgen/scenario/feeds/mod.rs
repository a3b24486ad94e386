//! `feeds`: WatchExecutions under a steady write load, as issue 12 asks.
//!
//! `--feed-executions` RUNNING executions spread over `--feed-tenants` tenants take
//! `--change-rate` changes a second (see [`writer`]), while `--feeds` feeds, each
//! following its tenant's RUNNING executions (BASIC view), share `--feed-connections`
//! HTTP/2 connections. In the same run, one phase after the other, on the same executions:
//!
//! 1. the writes alone, no feed open: their latency is the baseline of the writes';
//! 2. the feeds open, idle (no change): the server's memory per idle feed (its RSS with
//!    them open and synced, minus its RSS before, over their number);
//! 3. `--runs` times: the paced writes with the feeds open, each change timed from its
//!    write's answer (it had committed by then; and from its sending, which bounds it from
//!    above) to the moment EVERY feed of its tenant had received it, matched by (execution,
//!    revision); with the database reads of the feeds' change reader per change; then the
//!    same with one more feed whose client never reads (see [`follow::Unread`]), and the
//!    server's RSS before and after it;
//! 4. the feeds closed, one WatchExecution per execution instead (BASIC), the same writes
//!    timed to their one watcher: the baseline of the feeds' latency and memory.
//!
//! With `--replicas 2` (PostgreSQL) the feeds and watchers sit on a second server, B, and
//! the writes go through the first, A: every change reaches B through the NOTIFY relay.

mod follow;
mod summary;
mod window;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tonic::transport::Channel;

use super::wait_quiet;
use crate::server::Server;
use crate::{Client, Options, Session, connect, seed};
use follow::{Arrivals, Unread};
use window::{Followers, Measured};
use writer::{Running, Writer};

/// The shape of the load, from the options.
struct Plan {
    tenants: usize,
    feeds: usize,
    executions: usize,
    rate: f64,
    connections: usize,
    actions: usize,
}

impl Plan {
    fn of(o: &Options) -> Self {
        Self {
            tenants: o.feed_tenants.max(1),
            feeds: o.feeds,
            executions: o.feed_executions.max(1),
            rate: o.change_rate,
            connections: o.feed_connections.max(1),
            actions: o.actions.clamp(1, crate::dag::MAX_ACTIONS),
        }
    }

    /// Feeds of tenant `t` (feed `f` follows tenant `f mod T`).
    fn feeds_of(&self, t: usize) -> Vec<u32> {
        (t..self.feeds)
            .step_by(self.tenants)
            .map(|f| f as u32)
            .collect()
    }

    /// Connection of feed `f`: ten feeds in a row share one, so that the feeds of one
    /// tenant (`t`, `t + T`, ...) sit on different connections when there are at least ten
    /// tenants.
    fn connection_of(&self, f: usize) -> usize {
        (f / 10) % self.connections
    }
}

/// What the phases share.
struct Bench {
    plan: Plan,
    /// Replica B, when the followers sit on a server of their own.
    replica: Option<Server>,
    /// The followers' server's address.
    follow_addr: String,
    /// Connections to it, shared by the followers.
    follow_channels: Vec<Channel>,
    writer: Arc<Writer>,
}

/// What the phases measured, for the summary.
#[derive(Default)]
struct Results {
    /// Windows of the writes alone.
    alone: Vec<Measured>,
    /// Windows with the feeds open.
    with_feeds: Vec<Measured>,
    /// Windows with the feeds and one feed nobody reads.
    with_unread: Vec<Measured>,
    /// Windows with one WatchExecution per execution instead of the feeds.
    with_watchers: Vec<Measured>,
    /// KiB of the followers' server's RSS per idle feed: over all of them, and over the
    /// second half (opened once the first half's transient memory was free again).
    per_feed: Option<f64>,
    per_feed_kept: Option<f64>,
    /// KiB per idle WatchExecution.
    per_watcher: Option<f64>,
    /// The followers' server's RSS (KiB) before each feed nobody reads opened, and after
    /// its window.
    unread_rss: Vec<(u64, u64)>,
}

impl Session {
    /// `feeds`: see the module's documentation.
    pub async fn feeds(&mut self) -> anyhow::Result<()> {
        if self.opts.wait_quiet {
            wait_quiet().await;
        }
        let plan = Plan::of(&self.opts);
        let replica = match (self.opts.replicas, &self.server, &self.dbs) {
            (1, ..) => None,
            (_, Some(_), Some(dbs)) if dbs.is_postgres() => {
                Some(Server::spawn(&dbs.url, self.opts.pool)?)
            }
            _ => anyhow::bail!("--replicas 2 needs PostgreSQL and a server this run starts"),
        };
        let follow_addr = replica
            .as_ref()
            .map_or_else(|| self.addr.clone(), |b| b.addr.clone());
        let mut bench = Bench {
            follow_channels: connect(&follow_addr, plan.connections).await?,
            follow_addr,
            replica,
            writer: Arc::new(Writer::new(Vec::new(), Vec::new(), Vec::new(), 0)),
            plan,
        };
        let mut results = Results::default();
        let outcome = self.feeds_phases(&mut bench, &mut results).await;
        if outcome.is_ok() {
            self.feeds_summary(&bench.plan, bench.replica.is_some(), &results);
        }
        if let Some(replica) = bench.replica.take() {
            replica.stop();
        }
        outcome
    }

    async fn feeds_phases(
        &mut self,
        bench: &mut Bench,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let p = &bench.plan;
        println!(
            "  {} executions of {} actions over {} tenants, {} changes/s; {} feeds over {} connections{}",
            p.executions,
            p.actions,
            p.tenants,
            p.rate,
            p.feeds,
            p.connections,
            if bench.replica.is_some() {
                " to replica B, changes through A"
            } else {
                ""
            }
        );
        self.start_feed_executions(bench).await?;
        // 1. The writes alone.
        for run in 0..self.opts.runs.max(1) {
            let label = format!("feeds: writes alone #{}", run + 1);
            let measured = self.feed_window(bench, &label, &Followers::Nobody).await?;
            results.alone.push(measured);
        }
        // 2. and 3.
        self.feeds_open(bench, results).await?;
        // 4.
        self.watchers_instead(bench, results).await
    }

    /// Phases 2 and 3: the feeds open and idle (their memory), then the windows with them
    /// open, without and with a feed nobody reads.
    async fn feeds_open(&mut self, bench: &mut Bench, results: &mut Results) -> anyhow::Result<()> {
        // Half of them, then the rest. The second half's growth is what a feed keeps
        // (the transient memory of opening, the snapshots read and sent, is free again
        // by then and reused); the whole growth over all of them is the figure the
        // target is about.
        let feeds = Arc::new(Arrivals::default());
        let tenants = self.feed_tenants();
        let n = bench.plan.feeds;
        let before = self.follow_rss(bench);
        let opening = Instant::now();
        let mut tasks = open_feeds(bench, &tenants, 0..n / 2, &feeds);
        follow::settle(&feeds, n / 2).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let half = self.follow_rss(bench);
        tasks.extend(open_feeds(bench, &tenants, n / 2..n, &feeds));
        follow::settle(&feeds, n).await;
        let opened = opening.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = self.follow_rss(bench);
        results.per_feed = per_follower_kib(before, idle, n);
        results.per_feed_kept = per_follower_kib(half, idle, n - n / 2);
        self.summary.note(format!(
            "feeds: {} of {n} feeds synced in {:.1} s (half, 1 s idle, then the rest){}",
            feeds.opened.load(Ordering::Relaxed),
            opened.as_secs_f64(),
            rss_line(before, idle, results.per_feed, "feed")
        ));
        if let (Some(half), Some(kept)) = (half, results.per_feed_kept) {
            self.summary.note(format!(
                "feeds: {:.1} MiB with the first half open: {kept:.2} KiB per idle feed of the second half",
                half as f64 / 1024.0
            ));
        }
        self.count_refused("feed", &feeds);

        let by_tenant = Followers::Feeds(
            (0..bench.plan.tenants)
                .map(|t| bench.plan.feeds_of(t))
                .collect(),
        );
        for run in 0..self.opts.runs.max(1) {
            let label = format!("feeds: {n} feeds #{}", run + 1);
            let measured = self
                .follow_window(bench, &label, &by_tenant, &feeds)
                .await?;
            results.with_feeds.push(measured);

            let rss_before = self.follow_rss(bench);
            let unread = Unread::open(&bench.follow_addr).await?;
            // Long enough for the server to fill its 64 KiB and be stuck.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let label = format!("feeds: + 1 feed nobody reads #{}", run + 1);
            let measured = self
                .follow_window(bench, &label, &by_tenant, &feeds)
                .await?;
            results.with_unread.push(measured);
            let rss_after = self.follow_rss(bench);
            drop(unread);
            if let Some((b, a)) = rss_before.zip(rss_after) {
                println!(
                    "  feeds: followers' server RSS {:.1} MiB before the unread feed opened, {:.1} MiB after its window",
                    b as f64 / 1024.0,
                    a as f64 / 1024.0
                );
                results.unread_rss.push((b, a));
            }
        }
        self.count_failed("feeds", &feeds);
        follow::close(tasks).await;
        Ok(())
    }

    /// Phase 4: the feeds closed, one WatchExecution per execution instead (their
    /// memory), and the windows with them.
    async fn watchers_instead(
        &mut self,
        bench: &mut Bench,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let watchers = Arc::new(Arrivals::default());
        let watched: Vec<Running> = bench.writer.executions();
        let before = self.follow_rss(bench);
        let opening = Instant::now();
        let tasks: Vec<_> = watched
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let channel = bench.follow_channels[i % bench.follow_channels.len()].clone();
                tokio::spawn(follow::watch(
                    Client::new(channel),
                    r.id.clone(),
                    i as u64,
                    watchers.clone(),
                ))
            })
            .collect();
        follow::settle(&watchers, watched.len()).await;
        let opened = opening.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = self.follow_rss(bench);
        results.per_watcher = per_follower_kib(before, idle, watched.len());
        self.summary.note(format!(
            "feeds: {} of {} WatchExecution watchers (one per execution) open in {:.1} s{}",
            watchers.opened.load(Ordering::Relaxed),
            watched.len(),
            opened.as_secs_f64(),
            rss_line(before, idle, results.per_watcher, "watcher")
        ));
        self.count_refused("watcher", &watchers);
        let by_execution = Followers::Watchers(watched.into_iter().map(|r| r.id).collect());
        for run in 0..self.opts.runs.max(1) {
            let label = format!("feeds: watchers instead #{}", run + 1);
            let measured = self
                .follow_window(bench, &label, &by_execution, &watchers)
                .await?;
            results.with_watchers.push(measured);
        }
        self.count_failed("watchers", &watchers);
        follow::close(tasks).await;
        Ok(())
    }

    /// Notes the opens the server refused for the moment (and the followers retried).
    fn count_refused(&mut self, what: &str, followers: &Arrivals) {
        let refused = followers.refused.load(Ordering::Relaxed);
        if refused > 0 {
            self.summary.note(format!(
                "feeds: {refused} {what} opens refused for the moment (RESOURCE_EXHAUSTED, or UNAVAILABLE when the database pool had no connection in time) and retried with backoff"
            ));
        }
    }

    /// Counts the followers whose stream failed as failed calls.
    fn count_failed(&mut self, what: &str, followers: &Arrivals) {
        let failed = followers.failed.load(Ordering::Relaxed);
        if failed > 0 {
            self.errors += failed;
            let first = followers.first_error().unwrap_or_default();
            println!("  feeds: {failed} {what} failed; first: {first}");
        }
    }

    /// The tenants' names (unique to this run, so that a kept database's older executions
    /// never match).
    fn feed_tenants(&self) -> Vec<String> {
        (0..self.opts.feed_tenants.max(1))
            .map(|t| format!("feeds-{}-{t:03}", std::process::id()))
            .collect()
    }

    /// Starts the plan's executions, spread evenly over the tenants, through the writes'
    /// server (then, on PostgreSQL, analyzes them); makes the writer that changes them.
    async fn start_feed_executions(&mut self, bench: &mut Bench) -> anyhow::Result<()> {
        let p = &bench.plan;
        let tenants = self.feed_tenants();
        let began = Instant::now();
        let mut executions = Vec::with_capacity(p.executions);
        for (t, tenant) in tenants.iter().enumerate() {
            let n = p.executions / p.tenants + usize::from(t < p.executions % p.tenants);
            let (tenant, actions) = (tenant.clone(), p.actions);
            let ids = seed::start_many(&self.channels, n, 64, 1, move |i| {
                writer::start_request(actions, &tenant, i)
            })
            .await?;
            executions.extend(ids.into_iter().map(|id| Running {
                id,
                tenant: t,
                step: 0,
            }));
        }
        let secs = began.elapsed().as_secs_f64();
        self.summary.note(format!(
            "feeds: started {} executions of {} actions over {} tenants in {secs:.1} s",
            executions.len(),
            p.actions,
            p.tenants
        ));
        // What autovacuum would have done by now after 10,000 new rows (the benchmark
        // machine runs PostgreSQL without it): without statistics the planner reads the
        // change reader's statement in `seq` order through the whole table (see
        // BENCHMARKS.md, "WatchExecutions").
        if let Some(dbs) = self.dbs.as_ref().filter(|d| d.is_postgres()) {
            use sea_orm::ConnectionTrait;
            dbs.conn.execute_unprepared("ANALYZE executions").await?;
        }
        let clients = self.channels.iter().cloned().map(Client::new).collect();
        bench.writer = Arc::new(Writer::new(clients, executions, tenants, p.actions));
        Ok(())
    }
}

/// Spawns feeds `range` (feed `f` follows tenant `f mod T`'s RUNNING executions, BASIC).
fn open_feeds(
    bench: &Bench,
    tenants: &[String],
    range: std::ops::Range<usize>,
    feeds: &Arc<Arrivals>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let p = &bench.plan;
    range
        .map(|f| {
            let channel = bench.follow_channels[p.connection_of(f)].clone();
            let request = pb::WatchExecutionsRequest {
                statuses: vec![pb::ExecutionStatus::Running as i32],
                user_key: tenants[f % p.tenants].clone(),
                view: pb::ExecutionView::Basic as i32,
                ..Default::default()
            };
            tokio::spawn(follow::feed(
                Client::new(channel),
                request,
                f as u32,
                feeds.clone(),
            ))
        })
        .collect()
}

/// KiB per follower of an RSS growth.
fn per_follower_kib(before: Option<u64>, after: Option<u64>, n: usize) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 / n.max(1) as f64)
}

/// `; server RSS A → B MiB: X KiB per follower`, when measured.
fn rss_line(before: Option<u64>, after: Option<u64>, per: Option<f64>, what: &str) -> String {
    match (before, after, per) {
        (Some(b), Some(a), Some(per)) => format!(
            "; followers' server RSS {:.1} MiB before, {:.1} MiB with them idle: {per:.2} KiB per idle {what}",
            b as f64 / 1024.0,
            a as f64 / 1024.0
        ),
        _ => String::new(),
    }
}
