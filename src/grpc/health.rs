//! `grpc.health.v1.Health`, as the gRPC health-checking protocol defines it, for the
//! server as a whole (service `""`) and for `workflow.executions.v1.ExecutionService`,
//! which share one status: SERVING while the database answers, NOT_SERVING while it does
//! not and from the moment shutdown begins.
//!
//! For a service the server does not know, `Check` answers NOT_FOUND and `Watch` sends
//! one `SERVICE_UNKNOWN` and keeps the stream open (the protocol's rule: the service may
//! become known later), where tonic-health would end the stream with NOT_FOUND.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::error::Error;
use crate::service::Executions;

/// The services whose health this server reports.
const KNOWN_SERVICES: [&str; 2] = ["", "workflow.executions.v1.ExecutionService"];

/// Sets the health every probe sees.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    status: watch::Sender<ServingStatus>,
}

/// Answers `grpc.health.v1.Health`.
#[derive(Debug)]
pub struct HealthService {
    status: watch::Receiver<ServingStatus>,
}

/// A reporter, SERVING to begin with, and the service it reports through.
pub fn health() -> (HealthReporter, HealthServer<HealthService>) {
    let (status, receiver) = watch::channel(ServingStatus::Serving);
    (
        HealthReporter { status },
        HealthServer::new(HealthService { status: receiver }),
    )
}

impl HealthReporter {
    /// Reports `status` (watchers hear of it only when it changes).
    pub fn set(&self, status: ServingStatus) {
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

fn wire(status: ServingStatus) -> HealthCheckResponse {
    let status = match status {
        ServingStatus::Unknown => WireStatus::Unknown,
        ServingStatus::Serving => WireStatus::Serving,
        ServingStatus::NotServing => WireStatus::NotServing,
    };
    HealthCheckResponse {
        status: status as i32,
    }
}

fn known(service: &str) -> bool {
    KNOWN_SERVICES.contains(&service)
}

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        if !known(service) {
            return Err(Error::ServiceUnknown(service.clone()).into());
        }
        Ok(Response::new(wire(*self.status.borrow())))
    }

    type WatchStream = HealthStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if !known(&request.get_ref().service) {
            let unknown = HealthCheckResponse {
                status: WireStatus::ServiceUnknown as i32,
            };
            // No service becomes known while the server runs: the stream stays open, quiet.
            let stream =
                futures::stream::once(async move { Ok(unknown) }).chain(futures::stream::pending());
            return Ok(Response::new(Box::pin(stream)));
        }
        let stream = WatchStream::new(self.status.clone()).map(|status| Ok(wire(status)));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Keeps health in step with the database: NOT_SERVING while it does not answer, so load
/// balancers and probes route around this replica; SERVING again once it does.
pub async fn follow_database(
    executions: Executions,
    health: HealthReporter,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut serving = true;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let up = tokio::select! {
            () = stop.cancelled() => return,
            up = executions.database_is_up() => up,
        };
        if up != serving {
            serving = up;
            if up {
                tracing::info!("database answers again: SERVING");
            } else {
                tracing::warn!("database does not answer: NOT_SERVING");
            }
            // A shutdown that began meanwhile has the last word.
            if !stop.is_cancelled() {
                health.set(if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                });
            }
        }
    }
}
