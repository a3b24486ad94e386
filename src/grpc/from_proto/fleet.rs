//! StopExecutions and ListExecutionEvents: the fleet's stop and an execution's history.

use super::list::data_filter;
use super::{execution_ref, request_id, stop_event, stop_reason, user_key};
use crate::domain::HashidCodec;
use crate::domain::fleet::{StopRequest, StopScope};
use crate::domain::history::events_page_size;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::service::EventsRequest;

/// A StopExecutions request as a validated [`StopRequest`]; an empty `user_key` stays
/// empty until the service fills in the caller's tenant.
pub fn stop_request(req: pb::StopExecutionsRequest) -> Result<StopRequest, Error> {
    if req.stop_event.is_empty() {
        return Err(Error::invalid(
            "stop_event",
            "MISSING_STOP_EVENT",
            "stop_event is required: the stop event whose listeners are stopped",
        ));
    }
    stop_event("stop_event", &req.stop_event)?;
    user_key(&req.user_key)?;
    let request_id = request_id(req.request_id)?;
    stop_reason(&req.reason)?;
    Ok(StopRequest {
        scope: StopScope {
            user_key: req.user_key,
            stop_event: req.stop_event,
            filters: data_filter("filters", req.filters)?,
        },
        reason: req.reason,
        request_id,
        dry_run: req.dry_run,
    })
}

/// A ListExecutionEvents request as a validated [`EventsRequest`].
pub fn events_request(
    hashids: &HashidCodec,
    req: pb::ListExecutionEventsRequest,
) -> Result<EventsRequest, Error> {
    let target = execution_ref(hashids, "execution_id", &req.execution_id)?;
    let page_size = events_page_size(req.page_size).ok_or_else(|| {
        Error::invalid(
            "page_size",
            "INVALID_PAGE_SIZE",
            "page_size must be 0 (the default, 100) or positive",
        )
    })?;
    let ascending = match pb::SortOrder::try_from(req.order) {
        Ok(pb::SortOrder::Unspecified | pb::SortOrder::Ascending) => true,
        Ok(pb::SortOrder::Descending) => false,
        Err(_) => {
            return Err(Error::invalid(
                "order",
                "INVALID_ORDER",
                "order must be a SortOrder value",
            ));
        }
    };
    Ok(EventsRequest {
        target,
        page_size,
        page_token: req.page_token,
        ascending,
    })
}
