//! `ExecutionService` handlers: parse the request, call the use case, write the response.

use std::pin::Pin;
use std::sync::Arc;

use chrono_tz::Tz;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::admission::{Admission, Slot};
use super::metrics::Metrics;
use super::render_cache::RenderCache;
use super::to_proto::{self, Presentation};
use super::wire::{FeedEvent, ListPage, SharedExecution, WatchEvent};
use super::{caller, from_proto, size};
use crate::domain::{Execution, View};
use crate::error::Error;
use crate::proto::server::execution_service_server::ExecutionService;
use crate::proto::v1 as pb;
use crate::service::Executions;

/// Serves the `workflow.executions.v1.ExecutionService` RPCs.
#[derive(Clone, Debug)]
pub struct ExecutionApi {
    executions: Executions,
    default_zone: Tz,
    renders: RenderCache,
    metrics: Arc<Metrics>,
    max_message_bytes: usize,
    admission: Admission,
}

impl ExecutionApi {
    /// Serves `executions`, writing times in `default_zone` unless a request names one,
    /// counting database errors in `metrics`, and refusing executions that could outgrow
    /// `max_message_bytes`, working on at most `max_concurrent_calls` calls at once.
    pub fn new(
        executions: Executions,
        default_zone: Tz,
        metrics: Arc<Metrics>,
        limits: &super::Limits,
    ) -> Self {
        Self {
            executions,
            default_zone,
            renders: RenderCache::default(),
            metrics,
            max_message_bytes: limits.max_message_bytes,
            admission: Admission::new(limits.max_concurrent_calls),
        }
    }

    /// A slot for working on `request`, whose message has arrived (see `admission`).
    fn admit<T>(&self, request: &Request<T>) -> Result<Slot, Status> {
        Ok(self.admission.admit(request.remote_addr())?)
    }

    /// A use case's error on the wire; database errors are counted on the way.
    fn failed(&self, err: Error) -> Status {
        if err.is_database() {
            self.metrics.count_database_error();
        }
        Status::from(err)
    }

    fn presentation(
        &self,
        view: i32,
        default_view: View,
        zone: &str,
    ) -> Result<Presentation<'_>, Error> {
        Ok(Presentation {
            view: from_proto::view(view, default_view)?,
            zone: from_proto::time_zone(zone, self.default_zone)?,
            hashids: self.executions.hashids(),
        })
    }

    /// An answer of one execution, encoded once for every caller of its revision.
    fn respond(
        &self,
        out: &Presentation<'_>,
        execution: impl Into<Execution>,
    ) -> Response<SharedExecution> {
        Response::new(self.renders.execution(out, &execution.into()))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;
type FeedStream = Pin<Box<dyn Stream<Item = Result<FeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ExecutionService for ExecutionApi {
    async fn get_execution(
        &self,
        request: Request<pb::GetExecutionRequest>,
    ) -> Result<Response<SharedExecution>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let out = self.presentation(req.view, View::Full, &req.time_zone)?;
        let target = from_proto::execution_ref(self.executions.hashids(), "id", &req.id)?;
        if out.view == View::Full {
            // The FULL form of the current revision, if it was encoded already: one cheap
            // read of the revision instead of the execution and its actions.
            let (id, revision) = self
                .executions
                .current_revision(&caller, target)
                .await
                .map_err(|e| self.failed(e))?;
            if let Some(encoded) = self.renders.cached(&out, id, revision) {
                return Ok(Response::new(encoded));
            }
        }
        let execution = self
            .executions
            .get(&caller, target, out.view)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(self.respond(&out, execution))
    }

    async fn list_executions(
        &self,
        request: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<ListPage>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let zone = from_proto::time_zone(&req.time_zone, self.default_zone)?;
        let list = from_proto::list_request(req)?;
        let out = Presentation {
            view: list.view,
            zone,
            hashids: self.executions.hashids(),
        };
        let page = self
            .executions
            .list(&caller, list)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Response::new(ListPage {
            executions: page
                .executions
                .iter()
                .map(|e| self.renders.execution(&out, e))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn count_executions(
        &self,
        request: Request<pb::CountExecutionsRequest>,
    ) -> Result<Response<pb::CountExecutionsResponse>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let filter = from_proto::count_filter(request.into_inner())?;
        let counts = self
            .executions
            .count(&caller, filter)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Response::new(to_proto::counts(&counts)))
    }

    async fn stop_execution(
        &self,
        request: Request<pb::StopExecutionRequest>,
    ) -> Result<Response<SharedExecution>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let out = self.presentation(req.view, View::Full, &req.time_zone)?;
        let target = from_proto::execution_ref(self.executions.hashids(), "id", &req.id)?;
        from_proto::stop_reason(&req.reason)?;
        let execution = self
            .executions
            .stop(&caller, target, req.reason)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(self.respond(&out, execution))
    }

    async fn stop_executions(
        &self,
        request: Request<pb::StopExecutionsRequest>,
    ) -> Result<Response<pb::StopExecutionsResponse>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let stop = from_proto::stop_request(request.into_inner())?;
        let result = self
            .executions
            .stop_many(&caller, stop)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Response::new(to_proto::stop_result(
            &result,
            self.executions.hashids(),
        )))
    }

    async fn list_execution_events(
        &self,
        request: Request<pb::ListExecutionEventsRequest>,
    ) -> Result<Response<pb::ListExecutionEventsResponse>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let events = from_proto::events_request(self.executions.hashids(), request.into_inner())?;
        let page = self
            .executions
            .list_events(&caller, events)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Response::new(to_proto::events_page(page)))
    }

    type WatchExecutionStream = WatchStream;

    async fn watch_execution(
        &self,
        request: Request<pb::WatchExecutionRequest>,
    ) -> Result<Response<Self::WatchExecutionStream>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let out = self.presentation(req.view, View::Full, &req.time_zone)?;
        let (view, zone, hashids) = (out.view, out.zone, self.executions.hashids_arc());
        let target = from_proto::execution_ref(&hashids, "id", &req.id)?;
        let since = from_proto::since_revision(req.since_revision)?;
        let events = self
            .executions
            .watch(&caller, target, since)
            .await
            .map_err(|e| self.failed(e))?;
        let renders = self.renders.clone();
        let responses = events.map(move |event| {
            let out = Presentation {
                view,
                zone,
                hashids: &hashids,
            };
            event
                .map(|e| out.watch_event(&e, &renders))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(responses)))
    }

    type WatchExecutionsStream = FeedStream;

    async fn watch_executions(
        &self,
        request: Request<pb::WatchExecutionsRequest>,
    ) -> Result<Response<Self::WatchExecutionsStream>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let zone = from_proto::time_zone(&req.time_zone, self.default_zone)?;
        let feed = from_proto::feed_request(req)?;
        let view = feed.view;
        let events = self
            .executions
            .watch_many(&caller, feed)
            .await
            .map_err(|e| self.failed(e))?;
        let (renders, hashids) = (self.renders.clone(), self.executions.hashids_arc());
        let responses = events.map(move |event| {
            let out = Presentation {
                view,
                zone,
                hashids: &hashids,
            };
            event
                .map(|e| out.feed_event(&e, &renders))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn start_execution(
        &self,
        request: Request<pb::StartExecutionRequest>,
    ) -> Result<Response<SharedExecution>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let mut req = request.into_inner();
        let out = self.presentation(req.view, View::Full, &std::mem::take(&mut req.time_zone))?;
        let mut new = from_proto::new_execution(req)?;
        new.log_budget =
            size::check_largest_form(&new, self.executions.hashids(), self.max_message_bytes)?;
        let execution = self
            .executions
            .start(&caller, new)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(self.respond(&out, execution))
    }

    async fn update_action(
        &self,
        request: Request<pb::UpdateActionRequest>,
    ) -> Result<Response<SharedExecution>, Status> {
        let _slot = self.admit(&request)?;
        let caller = caller::of(&request);
        let req = request.into_inner();
        let out = self.presentation(req.view, View::Full, &req.time_zone)?;
        let target = from_proto::execution_ref(
            self.executions.hashids(),
            "execution_id",
            &req.execution_id,
        )?;
        let update = from_proto::action_update(&req)?;
        let execution = self
            .executions
            .update_action(&caller, target, update)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(self.respond(&out, execution))
    }
}
