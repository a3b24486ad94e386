//! `start`: StartExecution of a fork/join template of `--actions` actions.

use std::sync::Arc;

use executions::proto::v1 as pb;

use crate::drive::{Recorder, Worker};
use crate::{Client, Session, dag};

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

impl Session {
    /// `start`: StartExecution of a fork/join template.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 1));
        let f = self
            .measure_one("start", |s| {
                s.callers(|i| Start {
                    client: s.client(i),
                    template: template.clone(),
                    n: i * 1_000_000,
                })
            })
            .await;
        self.summary
            .row(format!("start ({} actions)", self.opts.actions), &f);
        Ok(())
    }
}
