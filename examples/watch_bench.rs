//! Watch fan-out benchmark: `cargo run --release --example watch_bench`.
//!
//! Starts the server in a child process (this same executable, in `serve` mode, so its
//! memory is measured alone), starts a few executions, opens many watchers of them over
//! many HTTP/2 connections, then applies changes one at a time and measures, per change,
//! the time from sending the UpdateAction to the moment the last watcher received the new
//! revision (so it includes the write and its commit). It prints:
//!
//! - fan-out latency per change to all watchers: p50, p99, max;
//! - server memory per idle watcher: RSS delta while the watchers are open / watchers;
//! - database reads per change made to serve watchers, counted by the server's hub.
//!
//! With `--replicas 2` (PostgreSQL only) the watchers sit on replica B while the changes go
//! through replica A, so every change crosses the NOTIFY feed and B reads it once.
//!
//! Options: `--watchers 10000 --connections 100 --executions 10 --changes 100
//! --database-url URL --replicas 1`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // to be folded into loadgen

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use executions::proto::v1::execution_service_client::ExecutionServiceClient;
use tonic::transport::{Channel, Endpoint};

struct Options {
    watchers: usize,
    connections: usize,
    executions: usize,
    changes: usize,
    database_url: Option<String>,
    replicas: usize,
}

fn options() -> Options {
    let mut o = Options {
        watchers: 10_000,
        connections: 100,
        executions: 10,
        changes: 100,
        database_url: None,
        replicas: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || value.parse::<usize>().expect("a number");
        match args[i].as_str() {
            "--watchers" => o.watchers = number(),
            "--connections" => o.connections = number(),
            "--executions" => o.executions = number(),
            "--changes" => o.changes = number(),
            "--replicas" => o.replicas = number(),
            "--database-url" => o.database_url = Some(value.clone()),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    assert!(o.replicas == 1 || o.replicas == 2, "--replicas is 1 or 2");
    o
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    if std::env::args().nth(1).as_deref() == Some("serve") {
        let url = std::env::args().nth(2).expect("serve URL");
        return runtime.block_on(serve(url));
    }
    runtime.block_on(bench(options()))
}

/// Child mode: a server on port 0 that prints `ready ADDR`, answers `stats` on stdin with
/// `stats READS`, and stops when stdin closes.
async fn serve(url: String) -> anyhow::Result<()> {
    use executions::service::{Executions, WatchSettings};
    let db = executions::db::Database::connect(&url, 16).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hub = executions::changes::ChangeHub::default();
    let executions = Executions::new(db, hub.clone(), WatchSettings::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        println!("ready {addr}");
        let _ = std::io::stdout().flush();
        for line in std::io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("stats") => {
                    println!("stats {}", hub.state_reads());
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
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    addr: String,
}

impl Server {
    fn spawn(url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("ready ")
            .ok_or_else(|| anyhow::anyhow!("server did not start: {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    fn state_reads(&mut self) -> anyhow::Result<u64> {
        writeln!(self.stdin, "stats")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().trim_start_matches("stats ").parse()?)
    }

    /// Resident memory of the server, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

async fn connect(addr: &str) -> anyhow::Result<ExecutionServiceClient<Channel>> {
    // One Channel per connection: tonic multiplexes every stream of a client over it.
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok(ExecutionServiceClient::new(channel))
}

/// start -> `n` parallel actions, so changes never finish the execution.
fn template(n: usize) -> pb::Template {
    let mut nodes = vec![pb::Node {
        id: "start_of_workflow".into(),
        r#type: "Start".into(),
        name: "Start".into(),
        data: None,
    }];
    let mut edges = Vec::new();
    for i in 0..n {
        nodes.push(pb::Node {
            id: format!("a{i}"),
            r#type: "HttpRequest".into(),
            name: format!("Action {i}"),
            data: None,
        });
        edges.push(pb::Edge {
            source: "start_of_workflow".into(),
            target: format!("a{i}"),
        });
    }
    pb::Template {
        nodes,
        edges,
        ..Default::default()
    }
}

/// Arrivals of each (execution, revision) at the watchers.
#[derive(Default)]
struct Arrivals {
    counts: Mutex<HashMap<(usize, i64), Arc<Arrival>>>,
}

#[derive(Default)]
struct Arrival {
    received: AtomicUsize,
    last_at: Mutex<Option<Instant>>,
}

impl Arrivals {
    fn entry(&self, key: (usize, i64)) -> Arc<Arrival> {
        self.counts.lock().unwrap().entry(key).or_default().clone()
    }

    fn record(&self, key: (usize, i64)) {
        let arrival = self.entry(key);
        arrival.received.fetch_add(1, Ordering::SeqCst);
        *arrival.last_at.lock().unwrap() = Some(Instant::now());
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

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

async fn bench(o: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = o.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    assert!(
        o.replicas == 1 || url.starts_with("postgres"),
        "--replicas 2 needs PostgreSQL"
    );
    let mut writer_server = Server::spawn(&url)?;
    let mut watch_server = if o.replicas == 2 {
        Some(Server::spawn(&url)?)
    } else {
        None
    };
    let watch_addr = watch_server
        .as_ref()
        .map_or(writer_server.addr.clone(), |s| s.addr.clone());

    let mut writer = connect(&writer_server.addr).await?;
    let changes_per_execution = o.changes.div_ceil(o.executions);
    let mut ids = Vec::new();
    for i in 0..o.executions {
        let e = writer
            .start_execution(pb::StartExecutionRequest {
                key: format!("bench_{i}"),
                name: format!("Bench {i}"),
                template: Some(template(changes_per_execution.max(20))),
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.push(e.id);
    }

    let mut clients = Vec::new();
    for _ in 0..o.connections {
        clients.push(connect(&watch_addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watch_rss =
        |w: &Option<Server>, s: &Server| w.as_ref().map_or_else(|| s.rss_kib(), |w| w.rss_kib());
    let rss_before = watch_rss(&watch_server, &writer_server);

    let arrivals = Arc::new(Arrivals::default());
    let opened = Arc::new(AtomicUsize::new(0));
    let opening = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..o.watchers {
        let mut client = clients[w % o.connections].clone();
        let execution = w % o.executions;
        let id = ids[execution].clone();
        let arrivals = arrivals.clone();
        let opened = opened.clone();
        tasks.push(tokio::spawn(async move {
            // 10,000 opens at once exceed the server's in-flight limit: those it sheds
            // (RESOURCE_EXHAUSTED) retry after a pause, as a real client would.
            let mut events = loop {
                match client
                    .watch_execution(pb::WatchExecutionRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(response) => break response.into_inner(),
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(20 + (w % 50) as u64)).await;
                    }
                    Err(status) => panic!("open watch: {status:?}"),
                }
            };
            events.message().await.expect("snapshot").expect("snapshot");
            opened.fetch_add(1, Ordering::SeqCst);
            while let Ok(Some(m)) = events.message().await {
                if m.kind() == pb::WatchEventKind::Update {
                    arrivals.record((execution, m.revision));
                }
            }
        }));
    }
    while opened.load(Ordering::SeqCst) < o.watchers {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opening = opening.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = watch_rss(&watch_server, &writer_server);

    let reads_before = match watch_server.as_mut() {
        Some(s) => s.state_reads()?,
        None => writer_server.state_reads()?,
    };
    let per_execution: Vec<usize> = (0..o.executions)
        .map(|e| (0..o.watchers).filter(|w| w % o.executions == e).count())
        .collect();
    let mut fan_out = Vec::new();
    let mut writes = Vec::new();
    for change in 0..o.changes {
        let execution = change % o.executions;
        let node = format!("a{}", change / o.executions);
        let sent = Instant::now();
        let updated = writer
            .update_action(pb::UpdateActionRequest {
                execution_id: ids[execution].clone(),
                node_id: node,
                status: pb::ActionStatus::Running as i32,
                view: pb::ExecutionView::Basic as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        writes.push(sent.elapsed());
        let arrival = arrivals.entry((execution, updated.revision));
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrival.received.load(Ordering::SeqCst) < per_execution[execution] {
            assert!(
                Instant::now() < deadline,
                "change {change} did not reach every watcher in 30 s"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let last = arrival.last_at.lock().unwrap().expect("arrived");
        fan_out.push(last.duration_since(sent));
    }
    let reads = match watch_server.as_mut() {
        Some(s) => s.state_reads()?,
        None => writer_server.state_reads()?,
    } - reads_before;

    fan_out.sort();
    writes.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    let per_watcher_kib = (rss_idle.saturating_sub(rss_before)) as f64 / o.watchers as f64;
    println!("watch fan-out benchmark");
    println!("  machine:            {}", machine());
    println!(
        "  database:           {}",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite (temp file)"
        }
    );
    println!(
        "  setup:              {} watchers of {} executions over {} HTTP/2 connections, {} replica(s); {} changes",
        o.watchers, o.executions, o.connections, o.replicas, o.changes
    );
    println!("  opening watchers:   {:.0} ms for all", ms(opening));
    println!(
        "  fan-out latency:    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (UpdateAction sent -> last of {} watchers received it)",
        ms(percentile(&fan_out, 0.50)),
        ms(percentile(&fan_out, 0.99)),
        ms(*fan_out.last().unwrap()),
        per_execution.iter().max().unwrap()
    );
    println!(
        "  UpdateAction alone: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&writes, 0.50)),
        ms(percentile(&writes, 0.99))
    );
    println!(
        "  server memory:      {:.1} MiB before watchers, {:.1} MiB with them idle: {:.2} KiB per idle watcher",
        rss_before as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        per_watcher_kib
    );
    println!(
        "  database reads:     {} for {} changes on the watchers' replica ({:.2} per change)",
        reads,
        o.changes,
        reads as f64 / o.changes as f64
    );

    for task in &tasks {
        task.abort();
    }
    drop(clients);
    if let Some(s) = watch_server {
        s.stop();
    }
    writer_server.stop();
    Ok(())
}
