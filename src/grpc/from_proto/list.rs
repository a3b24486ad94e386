//! ListExecutions: the filter, the order and the page; and the same filter for
//! CountExecutions and WatchExecutions.

use std::collections::BTreeMap;

use super::well_known::{execution_status, json_object, timestamp, view};
use super::{MAX_KEY_CHARS, workflow_and_tenant};
use crate::domain::View;
use crate::domain::listing::{ListFilter, SortOrder, page_size};
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::service::{FeedRequest, ListRequest};

/// The [`ListFilterFields`] of a request message that has them all, moved out of it (its
/// other fields stay usable).
macro_rules! filter_fields {
    ($req:ident) => {
        ListFilterFields {
            statuses: &$req.statuses,
            key: $req.key,
            user_key: $req.user_key,
            created_after: $req.created_after,
            created_before: $req.created_before,
            execution_data: $req.execution_data,
        }
    };
}

/// A ListExecutions request as a validated [`ListRequest`].
pub fn list_request(req: pb::ListExecutionsRequest) -> Result<ListRequest, Error> {
    let page_size = page_size(req.page_size).ok_or_else(|| {
        Error::invalid(
            "page_size",
            "INVALID_PAGE_SIZE",
            "page_size must not be negative",
        )
    })?;
    let order = SortOrder::parse(&req.order_by).ok_or_else(|| {
        Error::invalid(
            "order_by",
            "INVALID_ORDER_BY",
            "order_by is \"created_at desc\" or \"created_at asc\"",
        )
    })?;
    let filter = list_filter(filter_fields!(req))?;
    Ok(ListRequest {
        filter,
        order,
        page_size,
        page_token: req.page_token,
        view: view(req.view, View::Basic)?,
    })
}

/// A CountExecutions request as a validated filter.
pub fn count_filter(req: pb::CountExecutionsRequest) -> Result<ListFilter, Error> {
    list_filter(filter_fields!(req))
}

/// A WatchExecutions request as a validated [`FeedRequest`] (the cursor is checked
/// against the filters by the use case).
pub fn feed_request(req: pb::WatchExecutionsRequest) -> Result<FeedRequest, Error> {
    let view = view(req.view, View::Basic)?;
    let filter = list_filter(filter_fields!(req))?;
    Ok(FeedRequest {
        filter,
        view,
        resume_cursor: req.resume_cursor,
    })
}

/// The filter fields that ListExecutions, CountExecutions and WatchExecutions share.
struct ListFilterFields<'a> {
    statuses: &'a [i32],
    key: String,
    user_key: String,
    created_after: Option<prost_types::Timestamp>,
    created_before: Option<prost_types::Timestamp>,
    execution_data: Option<prost_types::Struct>,
}

/// The filters of a List or Count request, each field checked.
fn list_filter(req: ListFilterFields<'_>) -> Result<ListFilter, Error> {
    let mut statuses = req
        .statuses
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            execution_status(*raw).ok_or_else(|| {
                Error::invalid(
                    format!("statuses[{i}]"),
                    "INVALID_STATUS",
                    "statuses must be ExecutionStatus values other than EXECUTION_STATUS_UNSPECIFIED",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    statuses.sort();
    statuses.dedup();
    let created_after = req
        .created_after
        .map(|ts| timestamp("created_after", ts))
        .transpose()?;
    let created_before = req
        .created_before
        .map(|ts| timestamp("created_before", ts))
        .transpose()?;
    if let (Some(after), Some(before)) = (created_after, created_before)
        && after >= before
    {
        return Err(Error::invalid(
            "created_before",
            "INVALID_TIME_RANGE",
            "created_before must be later than created_after",
        ));
    }
    let execution_data = data_filter("execution_data", req.execution_data)?;
    workflow_and_tenant(&req.key, 0, &req.user_key)?;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(ListFilter {
        statuses,
        key: non_empty(req.key),
        user_key: non_empty(req.user_key),
        created_after,
        created_before,
        execution_data,
    })
}

/// An execution_data filter (ListExecutions' `execution_data`, StopExecutions'
/// `filters`): top-level keys of 1 to 256 literal characters, each with the value it
/// must have.
pub(super) fn data_filter(
    field: &str,
    data: Option<prost_types::Struct>,
) -> Result<BTreeMap<String, serde_json::Value>, Error> {
    let mut filter = BTreeMap::new();
    if let Some(data) = data {
        for (key, value) in json_object(field, data)? {
            // Keys are literal: any character but NUL (refused above), 1 to 256 of them.
            if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
                return Err(Error::invalid(
                    field,
                    "INVALID_EXECUTION_DATA_FILTER",
                    format!("{field} keys have 1 to {MAX_KEY_CHARS} characters"),
                ));
            }
            filter.insert(key, value);
        }
    }
    Ok(filter)
}
