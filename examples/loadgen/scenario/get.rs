//! `get` and `get-basic`: GetExecution of random seeded executions, FULL and BASIC views,
//! against `grpc.health.v1.Health/Check` on the same connections (and, for FULL on
//! PostgreSQL, `pgbench -S`).

use std::sync::Arc;

use executions::proto::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::Session;
use crate::drive::{Recorder, Worker};
use crate::report::Figures;

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

/// The fields of an answer of GetExecution that the load generator checks: the
/// execution's id and revision. Decoding into this skips the other fields (the template,
/// the actions' states) without building them, as `pgbench`'s client reads only the
/// values of its row: what is measured is the server's work, not the client's.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecutionProbe {
    /// `Execution.id`.
    #[prost(string, tag = "9")]
    pub id: String,
    /// `Execution.revision`.
    #[prost(int64, tag = "20")]
    pub revision: i64,
}

/// GetExecution of a random seeded execution; each answer must be that execution, at a
/// revision.
pub struct Get {
    /// A gRPC client on one of the shared connections.
    pub grpc: tonic::client::Grpc<Channel>,
    /// Executions to pick from.
    pub ids: Arc<Vec<String>>,
    /// FULL or BASIC.
    pub view: pb::ExecutionView,
    /// Name of the operation in the report.
    pub op: &'static str,
}

impl Get {
    /// GetExecution of `ids` in `view` on `channel`, reported as `op`.
    pub fn new(
        channel: Channel,
        ids: Arc<Vec<String>>,
        view: pb::ExecutionView,
        op: &'static str,
    ) -> Self {
        Self {
            grpc: tonic::client::Grpc::new(channel),
            ids,
            view,
            op,
        }
    }

    async fn call(
        &mut self,
        request: pb::GetExecutionRequest,
    ) -> Result<tonic::Response<ExecutionProbe>, tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(
            "/workflow.executions.v1.ExecutionService/GetExecution",
        );
        let codec = tonic_prost::ProstCodec::<pb::GetExecutionRequest, ExecutionProbe>::default();
        self.grpc
            .unary(tonic::Request::new(request), path, codec)
            .await
    }
}

impl Worker for Get {
    async fn step(&mut self, rec: &mut Recorder) {
        let id = self.ids[rand::random_range(0..self.ids.len())].clone();
        let request = pb::GetExecutionRequest {
            id: id.clone(),
            view: self.view as i32,
            ..Default::default()
        };
        let op = self.op;
        if let Some(probe) = rec.time(op, self.call(request)).await
            && (probe.id != id || probe.revision < 1)
        {
            let found = format!("asked for {id}, got {} at {}", probe.id, probe.revision);
            rec.fail(op, found);
        }
    }
}

impl Session {
    /// Health/Check on the same connections and concurrency (measured once).
    async fn health(&mut self) -> Figures {
        if let Some(h) = &self.health {
            return h.clone();
        }
        let f = self
            .measure_one("health", |s| {
                s.callers(|i| Health {
                    client: HealthClient::new(s.channels[i % s.channels.len()].clone()),
                })
            })
            .await;
        self.summary
            .row("grpc.health.v1.Health/Check (baseline)", &f);
        self.health = Some(f.clone());
        f
    }

    /// GetExecution in `view` (named `name` in the comparison) measured as `op`, in the row
    /// `row`, against Health/Check.
    async fn get_view(
        &mut self,
        view: pb::ExecutionView,
        name: &str,
        op: &'static str,
        row: String,
    ) -> Figures {
        let health = self.health().await;
        let get = self
            .measure_one(op, |s| {
                s.callers(|i| {
                    let channel = s.channels[i % s.channels.len()].clone();
                    Get::new(channel, s.ids.clone(), view, op)
                })
            })
            .await;
        self.summary.row(row, &get);
        self.summary.check_rate(
            format!("get {name} vs Health/Check, calls/s"),
            get.per_second,
            health.per_second,
            "/s",
            // The target of the issue that set it: a quarter of the transport's own rate.
            0.25,
        );
        get
    }

    /// `get`: FULL view vs Health/Check, and vs pgbench -S on PostgreSQL.
    pub async fn get(&mut self) -> anyhow::Result<()> {
        let row = format!("get (FULL, {} actions)", self.opts.actions);
        let get = self
            .get_view(pb::ExecutionView::Full, "FULL", "get", row)
            .await;
        if let Some(tps) = self.pgbench(&["-S"]).await? {
            self.summary.check_rate(
                format!(
                    "get FULL vs pgbench -S -c {} -j 2, TPS",
                    self.opts.concurrency
                ),
                get.per_second,
                tps,
                " TPS",
                0.5,
            );
        }
        Ok(())
    }

    /// `get-basic`: BASIC view vs Health/Check.
    pub async fn get_basic(&mut self) -> anyhow::Result<()> {
        let row = "get-basic (BASIC)".to_owned();
        self.get_view(pb::ExecutionView::Basic, "BASIC", "get-basic", row)
            .await;
        Ok(())
    }
}
