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
//! | `count` | CountExecutions of every execution, and of one tenant's RUNNING ones | `list-first` p50 |
//! | `start` | StartExecution of a fork/join template; then with 1, 8, 32 and 128 callers | on PostgreSQL, pgbench's TPC-B; each caller count, the one before it |
//! | `update` | a worker's whole lifecycle: each action SCHEDULED → RUNNING → COMPLETED | on PostgreSQL, pgbench's TPC-B |
//! | `stop` | StopExecution of a 999-action execution | UpdateAction on the same execution |
//! | `stop-event` | one StopExecutions over 10,000 listening executions | 10,000 StopExecution calls from `--concurrency` callers |
//! | `watch-fanout` | change → last of W watchers; server memory per idle watcher; database reads per change (`--replicas 2`: across two servers) | — |
//! | `feeds` | 1,000 WatchExecutions feeds (100 tenants × 10, RUNNING, BASIC) over 100 connections while 10,000 executions take 500 paced changes/s: change → every matching feed; database reads per change; memory per idle feed; a feed nobody reads (`--replicas 2`: feeds on B, writes through A) | the writes with no feed open; one WatchExecution per execution instead |
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
mod options;
mod report;
mod scenario;
mod seed;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use executions::proto::v1::execution_service_client::ExecutionServiceClient;
use tonic::transport::{Channel, Endpoint};

use database::Databases;
use options::{Options, Scenario, SeedMode};
use report::{Figures, Summary};
use server::Server;

/// The generated client, on one shared connection.
pub type Client = ExecutionServiceClient<Channel>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(code) = server::serve_if_child(&runtime) {
        return code;
    }
    match runtime.block_on(run(Options::from_args())) {
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
    /// The server's address (`http://...`).
    pub addr: String,
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
    let channels = connect(&addr, opts.connections).await?;
    let mut session = Session {
        opts,
        addr,
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
        for scenario in o.scenario.plan() {
            println!("\n== {scenario:?}");
            self.run_scenario(scenario).await?;
            if let Some(mib) = self.rss_mib() {
                println!("  server RSS after {scenario:?}: {mib:.1} MiB");
            }
        }
        self.idle_rss().await;
        self.summary.print();
        Ok(())
    }
}

/// `n` (at least one) HTTP/2 connections to the server at `addr`.
pub async fn connect(addr: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..n.max(1) {
        let endpoint = Endpoint::from_shared(addr.to_owned())?.tcp_nodelay(true);
        channels.push(endpoint.connect().await?);
    }
    Ok(channels)
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
