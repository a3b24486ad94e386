//! `stop`: StopExecution of a 999-action execution (the most a template may have), against
//! UpdateAction on the same execution and, once `update` ran, UpdateAction of a small one.

use std::sync::Arc;

use executions::proto::v1 as pb;

use crate::drive::{Recorder, Worker};
use crate::{Client, Session, dag};

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

impl Session {
    /// `stop`: StopExecution of 999 actions vs UpdateAction on the same execution.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(dag::MAX_ACTIONS, 2));
        let (w, d) = (self.warmup(), self.duration());
        let ops = [
            "stop (999 actions)",
            "update (999 actions)",
            "start 999 (setup)",
        ];
        let f = self
            .measure("stop", &ops, w, d, |s| {
                s.callers(|i| Stop {
                    client: s.client(i),
                    template: template.clone(),
                    n: i * 1_000_000,
                })
            })
            .await;
        for (op, figures) in ops.iter().zip(&f) {
            self.summary.row(*op, figures);
        }
        let (stop, update) = (&f[0], &f[1]);
        let what = "stop of 999 actions vs UpdateAction on it, p50";
        self.summary.check_p50(what, stop, update, 10.0);
        if let Some(small) = self.update.clone() {
            let what = format!(
                "stop of 999 actions vs UpdateAction of `update` ({} actions), p50",
                self.opts.actions
            );
            self.summary.check_p50(what, stop, &small, 10.0);
        }
        Ok(())
    }
}
