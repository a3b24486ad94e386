//! `get` and `get-basic`: GetExecution of random seeded executions, FULL and BASIC views,
//! against `grpc.health.v1.Health/Check` on the same connections (and, for FULL on
//! PostgreSQL, `pgbench -S`).

use std::sync::Arc;

use executions::proto::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::drive::{Recorder, Worker};
use crate::report::{Bound, Figures};
use crate::{Client, Session};

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

impl Session {
    /// Health/Check on the same connections and concurrency (measured once).
    async fn health(&mut self) -> Figures {
        if let Some(h) = &self.health {
            return h.clone();
        }
        let (w, d) = (self.warmup(), self.duration());
        let f = self
            .measure("health", &["health"], w, d, |s| {
                (0..s.opts.concurrency)
                    .map(|i| Health {
                        client: HealthClient::new(s.channels[i % s.channels.len()].clone()),
                    })
                    .collect()
            })
            .await
            .remove(0);
        self.summary
            .row("grpc.health.v1.Health/Check (baseline)", &f);
        self.health = Some(f.clone());
        f
    }

    fn getters(&self, view: pb::ExecutionView, op: &'static str) -> Vec<Get> {
        (0..self.opts.concurrency)
            .map(|i| Get {
                client: self.client(i),
                ids: self.ids.clone(),
                view,
                op,
            })
            .collect()
    }

    /// `get`: FULL view vs Health/Check, and vs pgbench -S on PostgreSQL.
    pub async fn get(&mut self) -> anyhow::Result<()> {
        let health = self.health().await;
        let (w, d) = (self.warmup(), self.duration());
        let get = self
            .measure("get", &["get"], w, d, |s| {
                s.getters(pb::ExecutionView::Full, "get")
            })
            .await
            .remove(0);
        self.summary
            .row(format!("get (FULL, {} actions)", self.opts.actions), &get);
        self.summary.check(
            "get FULL vs Health/Check, calls/s",
            format!("{:.0}/s", get.per_second),
            format!("{:.0}/s", health.per_second),
            get.per_second / health.per_second,
            Bound::AtLeast(0.5),
        );
        if let Some(tps) = self.pgbench(&["-S"]).await? {
            self.summary.check(
                format!(
                    "get FULL vs pgbench -S -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                format!("{:.0}/s", get.per_second),
                format!("{tps:.0} TPS"),
                get.per_second / tps,
                Bound::AtLeast(0.5),
            );
        }
        Ok(())
    }

    /// `get-basic`: BASIC view vs Health/Check.
    pub async fn get_basic(&mut self) -> anyhow::Result<()> {
        let health = self.health().await;
        let (w, d) = (self.warmup(), self.duration());
        let get = self
            .measure("get-basic", &["get-basic"], w, d, |s| {
                s.getters(pb::ExecutionView::Basic, "get-basic")
            })
            .await
            .remove(0);
        self.summary.row("get-basic (BASIC)", &get);
        self.summary.check(
            "get BASIC vs Health/Check, calls/s",
            format!("{:.0}/s", get.per_second),
            format!("{:.0}/s", health.per_second),
            get.per_second / health.per_second,
            Bound::AtLeast(0.5),
        );
        Ok(())
    }
}
