//! `update`: an engine worker's whole lifecycle through UpdateAction: start an execution,
//! then each action SCHEDULED → RUNNING → COMPLETED in an order where it is always ready,
//! until it completes; on PostgreSQL against pgbench's TPC-B. `mixed` runs the same worker.

use std::sync::Arc;
use std::time::Instant;

use executions::proto::v1 as pb;

use crate::drive::{Recorder, Worker};
use crate::{Client, Session, dag};

/// An engine's worker: starts an execution, then moves each action, in an order where it
/// is always ready, SCHEDULED → RUNNING → COMPLETED until the execution completes; then
/// starts the next one.
pub struct Lifecycle {
    /// Client on one of the shared connections.
    pub client: Client,
    /// The template each execution runs.
    pub template: Arc<pb::Template>,
    /// Its action ids in completion order.
    pub order: Arc<Vec<String>>,
    /// The execution in progress and when it started.
    pub current: Option<(String, Instant)>,
    /// Next step: action `step / 3`, move `step % 3`.
    pub step: usize,
    /// Executions started, for names.
    pub n: usize,
}

impl Lifecycle {
    /// A worker that will run executions of `template`.
    pub fn new(client: Client, template: Arc<pb::Template>) -> Self {
        let order = Arc::new(dag::action_ids(&template));
        Self {
            client,
            template,
            order,
            current: None,
            step: 0,
            n: 0,
        }
    }

    /// Starts an execution (recorded under `start_op`) if none is in progress; then makes
    /// the next move (under `update_op`). Returns the id of a newly started execution.
    pub async fn advance(
        &mut self,
        rec: &mut Recorder,
        start_op: &'static str,
        update_op: &'static str,
    ) -> Option<String> {
        let Some((id, since)) = self.current.clone() else {
            self.n += 1;
            let request = dag::start_request(pb::Template::clone(&self.template), self.n);
            let e = rec
                .time(start_op, self.client.start_execution(request))
                .await?;
            self.current = Some((e.id.clone(), Instant::now()));
            self.step = 0;
            return Some(e.id);
        };
        let moves = [
            pb::ActionStatus::Scheduled,
            pb::ActionStatus::Running,
            pb::ActionStatus::Completed,
        ];
        let status = moves[self.step % 3];
        let request = pb::UpdateActionRequest {
            execution_id: id,
            node_id: self.order[self.step / 3].clone(),
            status: status as i32,
            scheduled_at: (status == pb::ActionStatus::Scheduled).then(now),
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        let Some(e) = rec
            .time(update_op, self.client.update_action(request))
            .await
        else {
            // Refused: give this execution up and start another.
            self.current = None;
            return None;
        };
        self.step += 1;
        if self.step == self.order.len() * 3 {
            if e.status() == pb::ExecutionStatus::Completed {
                rec.record("lifecycle", since.elapsed());
            } else {
                rec.fail(
                    "lifecycle",
                    format!("ended {:?} after its last action", e.status()),
                );
            }
            self.current = None;
        }
        None
    }
}

impl Worker for Lifecycle {
    async fn step(&mut self, rec: &mut Recorder) {
        self.advance(rec, "start (setup)", "update").await;
    }
}

impl Session {
    /// `update`: whole worker lifecycles; vs pgbench TPC-B on PostgreSQL.
    pub async fn update(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 0));
        let (w, d) = (self.warmup(), self.duration());
        let mut f = self
            .measure("update", &["update", "lifecycle"], w, d, |s| {
                s.callers(|i| Lifecycle::new(s.client(i), template.clone()))
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
            self.summary.check_rate(
                format!(
                    "UpdateAction vs pgbench TPC-B -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                update.per_second,
                tps,
                " TPS",
                0.5,
            );
        }
        Ok(())
    }
}

/// The current time, as the wire writes it.
fn now() -> prost_types::Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: since_epoch.as_secs() as i64,
        nanos: since_epoch.subsec_nanos() as i32,
    }
}
