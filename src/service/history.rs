//! ListExecutionEvents as a use case: one execution's history, a page at a time, confined
//! to the caller's tenant like every read.

use super::{Caller, Executions, page_token};
use crate::db::{self, EventPosition};
use crate::domain::{ExecutionRef, RecordedEvent, View};
use crate::error::Error;

/// A history page request, validated field by field.
#[derive(Clone, Debug)]
pub struct EventsRequest {
    /// The execution.
    pub target: ExecutionRef,
    /// Events per page (already defaulted and clamped).
    pub page_size: u64,
    /// Opaque token from the previous page; empty for the first.
    pub page_token: String,
    /// Oldest first when true.
    pub ascending: bool,
}

/// One page of history.
#[derive(Clone, Debug)]
pub struct EventsPage {
    /// The events, in order.
    pub events: Vec<RecordedEvent>,
    /// Token for the next page; empty on the last page.
    pub next_page_token: String,
}

impl Executions {
    /// A page of the history of one execution, read in one snapshot with the execution
    /// (so an execution the caller may not see is not found, and a page never holds half
    /// a change).
    pub async fn list_events(
        &self,
        caller: &Caller,
        request: EventsRequest,
    ) -> Result<EventsPage, Error> {
        let txn = self.db.begin_read(caller.budget()?).await?;
        let execution = db::load(&txn, request.target, caller.tenant.as_deref(), View::Basic)
            .await?
            .ok_or_else(|| self.not_found(request.target))?;
        let seq = execution.header.seq;
        let fingerprint = page_token::events_fingerprint(seq, request.ascending);
        let after =
            page_token::decode_position(&request.page_token, fingerprint, "ListExecutionEvents")?
                .map(|[revision, ordinal]| EventPosition {
                    revision,
                    ordinal: i32::try_from(ordinal).unwrap_or(i32::MAX),
                });
        // One more than the page, to know whether another page follows.
        let mut found =
            db::list_events(&txn, seq, after, request.ascending, request.page_size + 1).await?;
        txn.commit().await?;
        let more = found.len() as u64 > request.page_size;
        found.truncate(request.page_size as usize);
        let next_page_token = match found.last() {
            Some((last, _)) if more => {
                page_token::encode_position([last.revision, i64::from(last.ordinal)], fingerprint)
            }
            _ => String::new(),
        };
        Ok(EventsPage {
            events: found.into_iter().map(|(_, event)| event).collect(),
            next_page_token,
        })
    }
}
