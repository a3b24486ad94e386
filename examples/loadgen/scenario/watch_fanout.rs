//! Watch fan-out, as `examples/watch_bench.rs` measures it (that one scales to 10,000
//! watchers and two replicas; this one runs in the same session as the other scenarios):
//! W watchers of a few executions over the shared connections, then changes one at a time,
//! each timed from sending the UpdateAction to the moment the last watcher of that
//! execution received its revision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;
use tonic::transport::Channel;

use super::wait_quiet;
use crate::drive::{Recorder, Report};
use crate::report::Figures;
use crate::{Client, Session, dag};

/// When each (execution, revision) arrived, and how many times.
type Arrivals = Mutex<HashMap<(usize, i64), (usize, Instant)>>;

/// Runs the fan-out for `duration` (or until every action of the watched executions
/// runs) with `watchers` watchers of executions of `actions` parallel actions (at least
/// 50, so there is room for changes); the report has `fan-out` (to the last watcher) and
/// `update (watched)` (the write alone).
async fn run(
    channels: &[Channel],
    watchers: usize,
    actions: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let actions = actions.clamp(50, dag::MAX_ACTIONS);
    let executions = (watchers / 100).clamp(1, 10);
    let mut writer = Client::new(channels[0].clone());
    let mut ids = Vec::new();
    for i in 0..executions {
        let e = writer
            .start_execution(dag::start_request(dag::wide(actions), i))
            .await?
            .into_inner();
        ids.push(e.id);
    }
    let arrivals: Arc<Arrivals> = Arc::default();
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let mut client = Client::new(channels[w % channels.len()].clone());
        let execution = w % executions;
        let request = pb::WatchExecutionRequest {
            id: ids[execution].clone(),
            ..Default::default()
        };
        let (arrivals, opened, failed) = (arrivals.clone(), opened.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            // Opens past the server's in-flight limit are shed (RESOURCE_EXHAUSTED): retry
            // after a pause, as a real client would.
            let response = loop {
                match client.watch_execution(request.clone()).await {
                    Ok(response) => break response,
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(20 + (w % 50) as u64)).await;
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            };
            let mut events = response.into_inner();
            if !matches!(events.message().await, Ok(Some(_))) {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            opened.fetch_add(1, Ordering::Relaxed);
            loop {
                match events.message().await {
                    Ok(Some(m)) if m.kind() == pb::WatchEventKind::Update => {
                        let now = Instant::now();
                        let mut map = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                        let entry = map.entry((execution, m.revision)).or_insert((0, now));
                        entry.0 += 1;
                        entry.1 = now;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return,
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) + (failed.load(Ordering::Relaxed) as usize) < watchers
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let per_execution: Vec<usize> = (0..executions)
        .map(|e| (0..watchers).filter(|w| w % executions == e).count())
        .collect();

    let began = Instant::now();
    let mut rec = Recorder::new(began, began + duration);
    let mut change = 0;
    while !rec.done() && change < executions * actions {
        let execution = change % executions;
        let request = pb::UpdateActionRequest {
            execution_id: ids[execution].clone(),
            node_id: format!("a{}", change / executions),
            status: pb::ActionStatus::Running as i32,
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        change += 1;
        let sent = Instant::now();
        let Some(updated) = rec
            .time("update (watched)", writer.update_action(request))
            .await
        else {
            continue;
        };
        let wait_until = Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(execution, updated.revision))
                .copied();
            match arrived {
                Some((n, last)) if n >= per_execution[execution] => {
                    rec.record("fan-out", last.duration_since(sent));
                    break;
                }
                _ if Instant::now() > wait_until => {
                    rec.fail(
                        "fan-out",
                        format!("revision {} missed some watchers", updated.revision),
                    );
                    break;
                }
                _ => tokio::time::sleep(Duration::from_micros(200)).await,
            }
        }
    }
    let window = began.elapsed();
    for task in &tasks {
        task.abort();
    }
    for _ in 0..failed.load(Ordering::Relaxed) {
        rec.fail("watch stream", "a watch stream failed".into());
    }
    Ok(Report::new(rec, window))
}

impl Session {
    /// `watch-fanout`: change → last of `--watchers` watchers.
    pub async fn watch_fanout(&mut self) -> anyhow::Result<()> {
        if self.opts.wait_quiet {
            wait_quiet().await;
        }
        let watchers = self.opts.watchers;
        let report = run(&self.channels, watchers, self.opts.actions, self.duration()).await?;
        self.record("watch-fanout", &report);
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
}
