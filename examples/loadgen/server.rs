//! The server under load: this executable started again in `serve` mode as a child process
//! (so its memory and CPU are its own), its resident memory, its counters (the database
//! reads its change hub and its feeds' change reader made, the changes it committed), and
//! the child mode itself.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

/// When this process is a server child (`loadgen serve URL POOL`), serves until its stdin
/// closes and returns how it ended; `None` when it is the load generator. See [`serve`] for
/// what it says on stdout.
pub fn serve_if_child(runtime: &tokio::runtime::Runtime) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("serve") {
        return None;
    }
    let url = args.get(2).cloned().unwrap_or_default();
    let pool = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(16);
    Some(match runtime.block_on(serve(&url, pool)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server: {err:#}");
            ExitCode::FAILURE
        }
    })
}

/// Child mode (`loadgen serve URL POOL`): a server on port 0 that prints `ready ADDR`,
/// answers each `stats` line on stdin with its [`Stats`] (`stats READS ROUNDS ROWS
/// PUBLISHED`), and stops when its stdin closes (so it never outlives the load generator).
async fn serve(url: &str, pool: u32) -> anyhow::Result<()> {
    use executions::service::{Executions, WatchSettings};
    let db = executions::db::Database::connect(url, pool).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hub = executions::changes::ChangeHub::default();
    let executions = Executions::new(db, hub.clone(), WatchSettings::default());
    let counted = executions.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        println!("ready {addr}");
        let _ = std::io::stdout().flush();
        // Read until EOF: the parent closed our stdin (or died).
        for line in std::io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("stats") => {
                    let (rounds, rows) = counted.feed_reads();
                    println!(
                        "stats {} {rounds} {rows} {}",
                        hub.state_reads(),
                        counted.changes_published()
                    );
                    let _ = std::io::stdout().flush();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = stop.send(());
    });
    let config = executions::grpc::ServerConfig::default();
    executions::grpc::run(config, executions, listener, async {
        let _ = stopped.await;
    })
    .await
}

/// A server child process.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::io::BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Starts a server on `url` with a pool of `pool` database connections (default: the
    /// server's), and waits until it listens (migrations done).
    pub fn spawn(url: &str, pool: Option<u32>) -> anyhow::Result<Self> {
        let pool = pool.unwrap_or_else(|| executions::db::default_max_connections(url));
        // `LOADGEN_WRAP_SERVER=heaptrack` runs the server under that program (any
        // program that takes the command to run as its arguments), to profile it.
        let mut command = match std::env::var_os("LOADGEN_WRAP_SERVER") {
            Some(wrap) => {
                let mut c = Command::new(wrap);
                c.arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        let mut child = command
            .args(["serve", url, &pool.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn")
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut stdout = std::io::BufReader::new(stdout);
        // A wrapper may print lines of its own first.
        let mut line = String::new();
        while !line.starts_with("ready ") {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                break;
            }
        }
        let addr = line
            .trim()
            .strip_prefix("ready ")
            .ok_or_else(|| anyhow::anyhow!("server did not start: {line:?}"))?;
        Ok(Self {
            addr: format!("http://{addr}"),
            child,
            stdin,
            stdout,
        })
    }

    /// Process id (for `perf record -p`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_kib(self.pid()) as f64 / 1024.0
    }

    /// Executions its change hub has read from the database so far.
    pub fn state_reads(&mut self) -> anyhow::Result<u64> {
        Ok(self.stats()?.state_reads)
    }

    /// Its counters so far.
    pub fn stats(&mut self) -> anyhow::Result<Stats> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("server stopped"))?;
        writeln!(stdin, "stats")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let numbers: Vec<u64> = line
            .trim()
            .strip_prefix("stats ")
            .ok_or_else(|| anyhow::anyhow!("server answered {line:?} to stats"))?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [state_reads, feed_rounds, feed_rows, published] = numbers[..] else {
            anyhow::bail!("server answered {line:?} to stats");
        };
        Ok(Stats {
            state_reads,
            feed_rounds,
            feed_rows,
            published,
        })
    }

    /// Closes its stdin and waits for it to finish.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A server child's counters, each counted since it started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Executions its change hub read from the database to serve WatchExecution watchers.
    pub state_reads: u64,
    /// Rounds of its change reader that read the database for WatchExecutions feeds.
    pub feed_rounds: u64,
    /// Executions those rounds read.
    pub feed_rows: u64,
    /// Changes committed through it (and published to its hub).
    pub published: u64,
}

impl Stats {
    /// What was counted between `earlier` and these.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            state_reads: self.state_reads.saturating_sub(earlier.state_reads),
            feed_rounds: self.feed_rounds.saturating_sub(earlier.feed_rounds),
            feed_rows: self.feed_rows.saturating_sub(earlier.feed_rows),
            published: self.published.saturating_sub(earlier.published),
        }
    }
}

/// CPU time (user and system) process `pid` has used so far, in seconds (0 when unknown).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces), from the 3rd: utime is the 14th
    // field and stime the 15th, in clock ticks (USER_HZ, 100 on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU time every process named `comm` (e.g. `postgres`: its server and backends) has
/// used so far, in seconds.
pub fn cpu_seconds_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .map(cpu_seconds)
        .sum()
}

/// Resident memory of process `pid` in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
