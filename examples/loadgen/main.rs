//! Load generator: `cargo run --release --example loadgen -- <scenario> [options]`.
//!
//! Starts the server as a child process (this executable in `serve` mode, on a SQLite temp
//! file, or on a fresh PostgreSQL database with `--database-url postgres://...`) or targets
//! a running one (`--addr`), seeds `--seed` executions of `--actions` actions (fork/join
//! DAGs), then drives a scenario with `--connections` HTTP/2 connections and
//! `--concurrency` concurrent calls for `--duration` seconds and prints throughput and
//! p50/p99/p99.9 latency, next to the baseline it is compared with in the same run:
//!
//! | scenario | what | compared with |
//! |---|---|---|
//! | `get` | GetExecution, FULL view, random seeded execution | `grpc.health.v1.Health/Check` on the same connections; on PostgreSQL also `pgbench -S` |
//! | `get-basic` | GetExecution, BASIC view | Health/Check |
//! | `list-first` | ListExecutions, first page of 25, BASIC | — |
//! | `list-deep` | the page of 25 after a deep token (reached once by following tokens) | `list-first` p50 |
//! | `start` | StartExecution of a fork/join template | — |
//! | `update` | a worker's whole lifecycle: each action SCHEDULED → RUNNING → COMPLETED | on PostgreSQL, pgbench's TPC-B |
//! | `stop` | StopExecution of a 999-action execution | UpdateAction on the same execution |
//! | `watch-fanout` | change → last of W watchers (see also `watch_bench`) | — |
//! | `mixed` | reads, watches, starts, updates; server RSS every `--rss-every` s | — |
//! | `growth` | Get latency vs actions per execution, List latency vs page depth | — |
//! | `all` | every scenario above, on one seeded data set | |
//! | `smoke` | `all` for ~1.5 s each on 50 executions on SQLite; exits 1 if any call failed | |
//!
//! Every run also reports the server's idle RSS. The process exits non-zero if any call
//! failed, in any scenario.

mod dag;
mod database;
mod drive;
mod fanout;
mod mixed;
mod report;
mod scenarios;
mod seed;
mod server;
mod workers;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use executions::proto::v1::execution_service_client::ExecutionServiceClient;
use tonic::transport::{Channel, Endpoint};

use database::Databases;
use report::{Figures, Summary};
use server::Server;

/// The generated client, on one shared connection.
pub type Client = ExecutionServiceClient<Channel>;

/// Command line of the load generator.
#[derive(Parser, Clone, Debug)]
#[command(about = "Load generator for the executions server")]
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
    /// Executions to seed before the load.
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
    /// Seconds between server RSS samples during `mixed`.
    #[arg(long, default_value_t = 10)]
    pub rss_every: u64,
    /// Rows skipped before the page `list-deep` reads (default: 90% of the rows).
    #[arg(long)]
    pub depth: Option<u64>,
    /// Database connections of the server's pool.
    #[arg(long, default_value_t = 16)]
    pub pool: u32,
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
    /// StartExecution.
    Start,
    /// Whole worker lifecycles through UpdateAction (vs pgbench TPC-B on PostgreSQL).
    Update,
    /// StopExecution of a 999-action execution vs UpdateAction on it.
    Stop,
    /// Change → all watchers latency.
    WatchFanout,
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

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let url = args.get(2).cloned().unwrap_or_default();
        let pool = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(16);
        return match runtime.block_on(server::serve(&url, pool)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("server: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut options = Options::parse();
    if options.smoke || options.scenario == Scenario::Smoke {
        options.smoke = true;
        options.seed = 50;
        options.duration = 1.5;
        options.warmup = 0.2;
        options.runs = 1;
        options.connections = 2;
        options.concurrency = 8;
        options.watchers = 50;
        options.rss_every = 1;
        options.seed_mode = SeedMode::Api;
        if options.addr.is_none() {
            options.database_url = None;
        }
    }
    match runtime.block_on(run(options)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("FAILED: {errors} calls failed");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// One load-generation session: the server, its data and the connections to it.
pub struct Session {
    /// Settings.
    pub opts: Options,
    /// The shared HTTP/2 connections.
    pub channels: Vec<Channel>,
    /// A sample of seeded execution ids.
    pub ids: Arc<Vec<String>>,
    /// Executions stored when the load began.
    pub total: u64,
    /// The server child, when this run started it.
    pub server: Option<Server>,
    /// The database, when this run knows it.
    pub dbs: Option<Databases>,
    /// What was measured.
    pub summary: Summary,
    /// Failed calls so far.
    pub errors: u64,
    /// Health/Check figures, once measured.
    pub health: Option<Figures>,
    /// list-first figures, once measured.
    pub list_first: Option<Figures>,
    /// UpdateAction figures of `update`, once measured.
    pub update: Option<Figures>,
    /// pgbench scratch database, once initialised.
    pub pgbench_db: Option<String>,
}

async fn run(opts: Options) -> anyhow::Result<u64> {
    let dbs = if opts.addr.is_none() || opts.database_url.is_some() {
        Some(
            Databases::prepare(
                opts.database_url.as_deref(),
                opts.addr.is_none(),
                opts.keep_database.as_deref(),
            )
            .await?,
        )
    } else {
        None
    };
    let server = match (&opts.addr, &dbs) {
        (None, Some(dbs)) => Some(Server::spawn(&dbs.url, opts.pool)?),
        _ => None,
    };
    let addr = match (&server, &opts.addr) {
        (Some(server), _) => server.addr.clone(),
        (None, Some(addr)) => addr.clone(),
        (None, None) => anyhow::bail!("no server to drive"),
    };
    let mut channels = Vec::new();
    for _ in 0..opts.connections.max(1) {
        channels.push(
            Endpoint::from_shared(addr.clone())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    let mut session = Session {
        opts,
        channels,
        ids: Arc::default(),
        total: 0,
        server,
        dbs,
        summary: Summary::default(),
        errors: 0,
        health: None,
        list_first: None,
        update: None,
        pgbench_db: None,
    };
    let outcome = session.run_all().await;
    if let Some(server) = session.server.take() {
        server.stop();
    }
    if let Some(dbs) = session.dbs.take() {
        dbs.cleanup().await?;
    }
    outcome?;
    Ok(session.errors)
}

impl Session {
    /// A client on connection `i` (mod the number of connections).
    pub fn client(&self, i: usize) -> Client {
        Client::new(self.channels[i % self.channels.len()].clone())
    }

    /// Unmeasured warm-up of each measurement.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.opts.warmup)
    }

    /// Measured window of each measurement.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.opts.duration)
    }

    /// The server's RSS in MiB, when this run started it.
    pub fn rss_mib(&self) -> Option<f64> {
        self.server.as_ref().map(Server::rss_mib)
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        let o = self.opts.clone();
        println!("loadgen: {:?}", o.scenario);
        println!("  machine:  {}", machine());
        match (&self.server, &self.dbs) {
            (Some(server), Some(dbs)) => println!(
                "  server:   pid {} at {} on {}",
                server.pid(),
                server.addr,
                if dbs.is_postgres() {
                    "PostgreSQL"
                } else {
                    "SQLite (temp file)"
                }
            ),
            _ => println!(
                "  server:   {} (not started by this run)",
                o.addr.clone().unwrap_or_default()
            ),
        }
        println!(
            "  load:     {} connections, {} concurrent calls, {} s per measurement (+{} s warm-up), median of {}",
            o.connections, o.concurrency, o.duration, o.warmup, o.runs
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_start = self.rss_mib();
        self.seed().await?;
        if let Some(mib) = rss_start {
            self.summary.notes.push(format!(
                "server RSS after start (empty, idle): {mib:.1} MiB"
            ));
        }
        use Scenario::*;
        let plan: Vec<Scenario> = match o.scenario {
            All | Smoke => vec![
                Get,
                GetBasic,
                ListFirst,
                ListDeep,
                Growth,
                WatchFanout,
                Start,
                Update,
                Stop,
                Mixed,
            ],
            one => vec![one],
        };
        for scenario in plan {
            println!("\n== {scenario:?}");
            match scenario {
                Get => self.get().await?,
                GetBasic => self.get_basic().await?,
                ListFirst => {
                    self.list_first().await?;
                }
                ListDeep => self.list_deep().await?,
                Start => self.start().await?,
                Update => self.update().await?,
                Stop => self.stop().await?,
                WatchFanout => self.watch_fanout().await?,
                Mixed => self.mixed().await?,
                Growth => self.growth().await?,
                Idle | All | Smoke => {}
            }
            if let Some(mib) = self.rss_mib() {
                println!("  server RSS after {scenario:?}: {mib:.1} MiB");
            }
        }
        self.idle_rss().await;
        self.summary.print();
        Ok(())
    }
}

/// Cores and CPU model, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}
