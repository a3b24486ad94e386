//! The command line: options, scenarios, seeding modes, and the short, small settings of
//! `smoke`.

use clap::{CommandFactory, Parser, ValueEnum};

/// Command line of the load generator.
#[derive(Parser, Clone, Debug)]
#[command(name = "loadgen", about = "Load generator for the executions server")]
pub struct Options {
    /// What to drive.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Target a running server (e.g. `http://127.0.0.1:50051`) instead of starting one.
    /// With `--database-url` as well, that URL must be the server's database (used as it
    /// is, for SQL seeding and id sampling).
    #[arg(long)]
    pub addr: Option<String>,
    /// `postgres://USER@HOST:PORT/ANY`: the server runs on a fresh database `loadgen_<pid>`
    /// on that PostgreSQL server, dropped at the end. Default: a SQLite temp file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Use (and keep) this PostgreSQL database instead of a fresh one; seeding only tops it
    /// up to `--seed`, so repeated runs skip it.
    #[arg(long)]
    pub keep_database: Option<String>,
    /// Executions to seed before the load; 0 for none (`start`, `update`, `stop`,
    /// `watch-fanout` and `idle` read no seeded execution).
    #[arg(long, default_value_t = 1_000)]
    pub seed: usize,
    /// Actions per seeded execution (and per execution started by the load).
    #[arg(long, default_value_t = 20)]
    pub actions: usize,
    /// How to seed: through StartExecution, or a few through the API copied in SQL;
    /// `auto` uses SQL above 200,000 executions.
    #[arg(long, value_enum, default_value = "auto")]
    pub seed_mode: SeedMode,
    /// Concurrent StartExecution calls while seeding through the API.
    #[arg(long, default_value_t = 64)]
    pub seed_concurrency: usize,
    /// HTTP/2 connections the calls share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Concurrent calls (closed loop: each caller waits for its answer).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before each scenario.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Runs of each measurement; the median of each figure is reported.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Watchers for `watch-fanout`, and idle watchers held open during `mixed`.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Executions the `watch-fanout` watchers watch (watcher i watches execution i mod E);
    /// by default one per 100 watchers, 1 to 10.
    #[arg(long, help_heading = "watch-fanout")]
    pub watch_executions: Option<usize>,
    /// Changes `watch-fanout` makes, one at a time; by default as many as fit in
    /// `--duration`. Each watched execution gets `--actions` actions, or as many as its
    /// share of the changes needs (at least 50 when the changes are timed).
    #[arg(long, help_heading = "watch-fanout")]
    pub changes: Option<usize>,
    /// `watch-fanout` watches executions of bare nodes (type and name; no data, no
    /// layout, no execution data), as the figures of BENCHMARKS.md's "Watch fan-out"
    /// section were measured; by default the nodes are shaped like the rest of the load's.
    #[arg(long, help_heading = "watch-fanout")]
    pub bare_template: bool,
    /// Servers: with 2 (PostgreSQL, server started by this run), `watch-fanout`'s
    /// watchers (and `feeds`' feeds and watchers) sit on a second server on the same
    /// database while the changes go through the first, so every change crosses the
    /// PostgreSQL NOTIFY relay.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2), help_heading = "watch-fanout")]
    pub replicas: u8,
    /// Tenants (`user_key`s) of `feeds`: the executions and the feeds are spread evenly
    /// over them.
    #[arg(long, default_value_t = 100, help_heading = "feeds")]
    pub feed_tenants: usize,
    /// WatchExecutions feeds `feeds` opens, each following its tenant's RUNNING
    /// executions (BASIC view).
    #[arg(long, default_value_t = 1_000, help_heading = "feeds")]
    pub feeds: usize,
    /// RUNNING executions `feeds` starts and changes (and watches one by one, for the
    /// baseline).
    #[arg(long, default_value_t = 10_000, help_heading = "feeds")]
    pub feed_executions: usize,
    /// Changes per second `feeds` makes, paced (whatever the answers' latency).
    #[arg(long, default_value_t = 500.0, help_heading = "feeds")]
    pub change_rate: f64,
    /// HTTP/2 connections `feeds`' feeds (and its per-execution watchers) share.
    #[arg(long, default_value_t = 100, help_heading = "feeds")]
    pub feed_connections: usize,
    /// Seconds between server RSS samples during `mixed`.
    #[arg(long, default_value_t = 10)]
    pub rss_every: u64,
    /// Rows skipped before the page `list-deep` reads (default: 90% of the rows).
    #[arg(long)]
    pub depth: Option<u64>,
    /// Database connections of the server's pool [default: the server's own default,
    /// `executions::db::default_max_connections`].
    #[arg(long)]
    pub pool: Option<u32>,
    /// Run `smoke`'s short, small settings whatever the scenario.
    #[arg(long)]
    pub smoke: bool,
    /// Skip the pgbench baselines on PostgreSQL.
    #[arg(long)]
    pub no_pgbench: bool,
    /// pgbench to run for the PostgreSQL baselines.
    #[arg(long, default_value = "/usr/bin/pgbench")]
    pub pgbench: String,
    /// Before each measurement, wait (at most 5 min) until no `rustc` runs on the machine.
    #[arg(long)]
    pub wait_quiet: bool,
}

/// What to drive.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// GetExecution, FULL view, vs Health/Check (and pgbench -S on PostgreSQL).
    Get,
    /// GetExecution, BASIC view.
    GetBasic,
    /// ListExecutions, first page of 25 (BASIC).
    ListFirst,
    /// ListExecutions, a deep page of 25 vs the first.
    ListDeep,
    /// CountExecutions of every execution and of one tenant's RUNNING ones, vs the first
    /// List page.
    Count,
    /// StartExecution (vs pgbench TPC-B on PostgreSQL), then at 1, 8, 32 and 128 callers.
    Start,
    /// Whole worker lifecycles through UpdateAction (vs pgbench TPC-B on PostgreSQL).
    Update,
    /// StopExecution of a 999-action execution vs UpdateAction on it.
    Stop,
    /// One StopExecutions over 10,000 listening executions vs 10,000 StopExecution calls.
    StopEvent,
    /// Change → all watchers latency, server memory per idle watcher, database reads per
    /// change.
    WatchFanout,
    /// WatchExecutions: change → every matching feed latency under a paced write load,
    /// database reads per change, server memory per idle feed, a feed nobody reads; vs
    /// one WatchExecution per execution.
    Feeds,
    /// A realistic blend, with the server's RSS sampled.
    Mixed,
    /// Get latency vs actions, List latency vs depth.
    Growth,
    /// Only the server's idle RSS.
    Idle,
    /// Every scenario.
    All,
    /// Every scenario, short and small, on SQLite; for CI.
    Smoke,
}

/// How to seed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedMode {
    /// API up to 200,000 executions, SQL above.
    Auto,
    /// Every execution through StartExecution.
    Api,
    /// A few through the API, copied in SQL.
    Sql,
}

impl Options {
    /// Parses the command line; `smoke` (or `--smoke`) replaces the sizes and durations
    /// with short, small ones, on SQLite unless `--addr` names a server.
    pub fn from_args() -> Self {
        let mut options = Self::parse();
        if options.smoke || options.scenario == Scenario::Smoke {
            options.smoke = true;
            options.seed = 50;
            options.duration = 1.5;
            options.warmup = 0.2;
            options.runs = 1;
            options.connections = 2;
            options.concurrency = 8;
            options.watchers = 50;
            options.feed_tenants = 5;
            options.feeds = 20;
            options.feed_executions = 200;
            options.change_rate = 50.0;
            options.feed_connections = 4;
            options.rss_every = 1;
            options.seed_mode = SeedMode::Api;
            if options.addr.is_none() {
                options.database_url = None;
            }
        }
        let postgres = options
            .database_url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres"));
        if options.replicas > 1 && (options.addr.is_some() || !postgres) {
            Self::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--replicas 2 needs PostgreSQL (--database-url postgres://...) and a server this run starts (no --addr)",
                )
                .exit();
        }
        options
    }
}
