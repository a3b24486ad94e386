//! Reading the history: one execution's events in (revision, ordinal) order, a page at a
//! time, by keyset (no OFFSET).

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::event;
use super::rows;
use crate::domain::RecordedEvent;
use crate::error::Error;

/// Where a page of events resumes: after this (revision, ordinal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPosition {
    /// Revision of the last event of the previous page.
    pub revision: i64,
    /// Its place in its change.
    pub ordinal: i32,
}

/// Events of execution `seq` strictly after `after` in the given order (oldest first when
/// `ascending`), at most `limit`, each with its position.
pub async fn list_events(
    conn: &impl ConnectionTrait,
    seq: i64,
    after: Option<EventPosition>,
    ascending: bool,
    limit: u64,
) -> Result<Vec<(EventPosition, RecordedEvent)>, Error> {
    use event::Column as C;
    let mut condition = Condition::all().add(C::ExecutionSeq.eq(seq));
    if let Some(after) = after {
        // The same shape as the list's keyset: a leading range on the first key, then
        // the tie broken by the second.
        condition = condition.add(if ascending {
            Condition::all().add(C::Revision.gte(after.revision)).add(
                Condition::any()
                    .add(C::Revision.gt(after.revision))
                    .add(C::Ordinal.gt(after.ordinal)),
            )
        } else {
            Condition::all().add(C::Revision.lte(after.revision)).add(
                Condition::any()
                    .add(C::Revision.lt(after.revision))
                    .add(C::Ordinal.lt(after.ordinal)),
            )
        });
    }
    let order = if ascending { Order::Asc } else { Order::Desc };
    event::Entity::find()
        .filter(condition)
        .order_by(C::Revision, order.clone())
        .order_by(C::Ordinal, order)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| {
            let position = EventPosition {
                revision: row.revision,
                ordinal: row.ordinal,
            };
            Ok((position, rows::recorded_event(row)?))
        })
        .collect()
}
