//! The load workers of each scenario: what one of the C concurrent callers does per step.

use std::sync::Arc;
use std::time::Instant;

use executions::proto::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::Client;
use crate::dag;
use crate::drive::{Recorder, Worker};

/// `grpc.health.v1.Health/Check`: the cheapest call the server answers (no database).
pub struct Health {
    /// Client on one of the shared connections.
    pub client: HealthClient<Channel>,
}

impl Worker for Health {
    async fn step(&mut self, rec: &mut Recorder) {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        rec.time("health", self.client.check(request)).await;
    }
}

/// GetExecution of a random seeded execution.
pub struct Get {
    /// Client on one of the shared connections.
    pub client: Client,
    /// Executions to pick from.
    pub ids: Arc<Vec<String>>,
    /// FULL or BASIC.
    pub view: pb::ExecutionView,
    /// Name of the operation in the report.
    pub op: &'static str,
}

impl Worker for Get {
    async fn step(&mut self, rec: &mut Recorder) {
        let id = self.ids[rand::random_range(0..self.ids.len())].clone();
        let request = pb::GetExecutionRequest {
            id,
            view: self.view as i32,
            ..Default::default()
        };
        rec.time(self.op, self.client.get_execution(request)).await;
    }
}

/// ListExecutions of one page of 25 (BASIC), always the same one: the first page (empty
/// token) or the page after a deep token.
pub struct List {
    /// Client on one of the shared connections.
    pub client: Client,
    /// Page token; empty for the first page.
    pub token: String,
    /// Name of the operation in the report.
    pub op: &'static str,
}

impl Worker for List {
    async fn step(&mut self, rec: &mut Recorder) {
        let request = pb::ListExecutionsRequest {
            page_size: 25,
            page_token: self.token.clone(),
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        if let Some(page) = rec
            .time(self.op, self.client.list_executions(request))
            .await
            && page.executions.is_empty()
        {
            rec.fail(self.op, "empty page".into());
        }
    }
}

/// StartExecution of a fork/join template.
pub struct Start {
    /// Client on one of the shared connections.
    pub client: Client,
    /// The template to start.
    pub template: Arc<pb::Template>,
    /// Calls made, for names.
    pub n: usize,
}

impl Worker for Start {
    async fn step(&mut self, rec: &mut Recorder) {
        self.n += 1;
        let request = dag::start_request(pb::Template::clone(&self.template), self.n);
        rec.time("start", self.client.start_execution(request))
            .await;
    }
}

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

/// Stop of a large execution: starts one with 999 actions (the most a template may
/// have: 1,000 nodes with Start), moves a few actions (UpdateAction on the same large
/// execution, the comparison), then stops it.
pub struct Stop {
    /// Client on one of the shared connections.
    pub client: Client,
    /// The 999-action template.
    pub template: Arc<pb::Template>,
    /// Executions started, for names.
    pub n: usize,
}

impl Worker for Stop {
    async fn step(&mut self, rec: &mut Recorder) {
        self.n += 1;
        let request = dag::start_request(pb::Template::clone(&self.template), self.n);
        let Some(e) = rec
            .time("start 999 (setup)", self.client.start_execution(request))
            .await
        else {
            return;
        };
        for (node, status) in [
            ("a0", pb::ActionStatus::Running),
            ("a1", pb::ActionStatus::Running),
            ("a0", pb::ActionStatus::Completed),
        ] {
            let request = pb::UpdateActionRequest {
                execution_id: e.id.clone(),
                node_id: node.into(),
                status: status as i32,
                view: pb::ExecutionView::Basic as i32,
                ..Default::default()
            };
            rec.time("update (999 actions)", self.client.update_action(request))
                .await;
        }
        let request = pb::StopExecutionRequest {
            id: e.id,
            reason: "load test".into(),
            view: pb::ExecutionView::Basic as i32,
            ..Default::default()
        };
        if let Some(stopped) = rec
            .time("stop (999 actions)", self.client.stop_execution(request))
            .await
            && stopped.stopped_actions_count < 990
        {
            rec.fail(
                "stop (999 actions)",
                format!("only {} actions stopped", stopped.stopped_actions_count),
            );
        }
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
