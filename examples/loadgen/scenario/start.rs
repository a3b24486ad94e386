//! `start`: StartExecution of a fork/join template of `--actions` actions, against
//! pgbench's TPC-B with the same client count on PostgreSQL, and at 1, 8, 32 and 128
//! callers: starts must not take turns on anything global, so the rate must rise with
//! the callers until the machine is busy.

use std::sync::Arc;

use executions::proto::v1 as pb;

use crate::drive::{Recorder, Worker};
use crate::{Client, Session, dag};

/// The caller counts of the scaling rows.
const CALLERS: [usize; 4] = [1, 8, 32, 128];

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
    /// `start`: StartExecution with `--concurrency` callers (vs pgbench TPC-B on
    /// PostgreSQL), then with each of [`CALLERS`].
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let template = Arc::new(dag::fork_join(self.opts.actions, 1));
        let actions = self.opts.actions;
        let starts = |callers: usize| {
            let template = template.clone();
            move |s: &Session| {
                (0..callers)
                    .map(|i| Start {
                        client: s.client(i),
                        template: template.clone(),
                        n: i * 1_000_000,
                    })
                    .collect::<Vec<_>>()
            }
        };
        let f = self
            .measure_one("start", starts(self.opts.concurrency))
            .await;
        self.summary.row(format!("start ({actions} actions)"), &f);
        if let Some(tps) = self.pgbench(&[]).await? {
            self.summary.check_rate(
                format!(
                    "start ({actions} actions) vs pgbench TPC-B -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                f.per_second,
                tps,
                " TPS",
                0.5,
            );
        }
        if self.opts.smoke {
            return Ok(());
        }
        let mut previous: Option<(usize, f64)> = None;
        for callers in CALLERS {
            let f = self.measure_one("start", starts(callers)).await;
            self.summary
                .row(format!("start ({actions} actions), {callers} callers"), &f);
            if let Some((fewer, rate)) = previous {
                // Rising: more callers never start fewer executions a second.
                self.summary.check_rate(
                    format!("start, {callers} callers vs {fewer} callers, calls/s"),
                    f.per_second,
                    rate,
                    "/s",
                    1.0,
                );
            }
            previous = Some((callers, f.per_second));
        }
        Ok(())
    }
}
