//! `stop-event`: StopExecutions stopping N listening executions with one call, against
//! StopExecution of N executions one call each from `--concurrency` callers, in the same
//! run (the target: the one call at least 3 times faster).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use executions::proto::v1 as pb;

use crate::report::Bound;
use crate::{Client, Session, dag, seed};

/// Executions each side stops (a tenth of it under `smoke`).
const STOPPED: usize = 10_000;

impl Session {
    /// `stop-event`: one StopExecutions over N executions vs N StopExecution calls.
    pub async fn stop_event(&mut self) -> anyhow::Result<()> {
        let n = if self.opts.smoke {
            STOPPED / 20
        } else {
            STOPPED
        };
        let (mut bulk_runs, mut each_runs) = (Vec::new(), Vec::new());
        for run in 0..self.opts.runs.max(1) {
            let event = format!("bench-{}-{run}", std::process::id());
            // Seeding both sets first, so each side stops from the same database size.
            let began = Instant::now();
            self.start_listeners(&format!("{event}-bulk"), n).await?;
            let singles = self.start_listeners(&format!("{event}-each"), n).await?;
            println!(
                "  stop-event #{}: started 2 × {n} listeners of {} actions in {:.1} s",
                run + 1,
                self.opts.actions,
                began.elapsed().as_secs_f64()
            );

            let mut client = self.client(0);
            let began = Instant::now();
            let answer = client
                .stop_executions(pb::StopExecutionsRequest {
                    stop_event: format!("{event}-bulk"),
                    reason: "load test".into(),
                    request_id: format!("{event}-job"),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let bulk = began.elapsed();
            anyhow::ensure!(
                answer.stopped_count == n as i64,
                "StopExecutions stopped {} of {n}",
                answer.stopped_count
            );

            let each = self.stop_each(Arc::new(singles)).await?;
            println!(
                "  stop-event #{}: one StopExecutions {:.2} s ({:.0}/s), {n} StopExecution calls {:.2} s ({:.0}/s)",
                run + 1,
                bulk.as_secs_f64(),
                n as f64 / bulk.as_secs_f64(),
                each.as_secs_f64(),
                n as f64 / each.as_secs_f64(),
            );
            bulk_runs.push(bulk.as_secs_f64());
            each_runs.push(each.as_secs_f64());
        }
        let (bulk, each) = (median(&mut bulk_runs), median(&mut each_runs));
        self.summary.check(
            format!(
                "stop {n} executions of {} actions: one StopExecutions vs {n} StopExecution calls ({} callers), seconds, median of {}",
                self.opts.actions,
                self.opts.concurrency,
                bulk_runs.len()
            ),
            format!("{bulk:.2} s"),
            format!("{each:.2} s"),
            each / bulk,
            Bound::AtLeast(3.0),
        );
        Ok(())
    }

    /// Starts `n` executions listening to `event`, 64 at a time; answers their ids.
    async fn start_listeners(&self, event: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let template = dag::fork_join(self.opts.actions, 0);
        let event = event.to_owned();
        seed::start_many(&self.channels, n, 64, 1, move |i| {
            pb::StartExecutionRequest {
                stop_events: vec![event.clone()],
                ..dag::start_request(template.clone(), i)
            }
        })
        .await
    }

    /// Stops each of `ids` with its own StopExecution, from `--concurrency` callers;
    /// answers the time it took.
    async fn stop_each(&self, ids: Arc<Vec<String>>) -> anyhow::Result<Duration> {
        let next = Arc::new(AtomicUsize::new(0));
        let began = Instant::now();
        let mut tasks = Vec::new();
        for caller in 0..self.opts.concurrency.max(1) {
            let mut client: Client = self.client(caller);
            let (next, ids) = (next.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else {
                        return Ok::<_, tonic::Status>(());
                    };
                    client
                        .stop_execution(pb::StopExecutionRequest {
                            id: id.clone(),
                            reason: "load test".into(),
                            view: pb::ExecutionView::Basic as i32,
                            ..Default::default()
                        })
                        .await?;
                }
            }));
        }
        for task in tasks {
            task.await?.map_err(|s| anyhow::anyhow!("stop: {s}"))?;
        }
        Ok(began.elapsed())
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
