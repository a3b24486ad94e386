//! What WatchExecutions reads: the current point in commit order, and the executions
//! changed since a point (all of them, for a replica's shared change reader; or one
//! filtered keyset page, for one feed's catch-up), each with the mark of its last change.
//! See `domain::feed` for what marks and points mean.

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult, Order,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, Statement,
};

use super::entity::execution;
use super::listing::{after_condition, filter_condition};
use super::load::{RowWithActions, actions_json, select_headers_and, unfold};
use super::rows;
use crate::domain::feed::{Changed, CommitPoint};
use crate::domain::listing::{Cursor, ListFilter, SortOrder};
use crate::domain::{Execution, View};
use crate::error::Error;

/// The point in commit order the caller's snapshot sees. Call it first in a read
/// transaction: the statements after it then see exactly that point (on PostgreSQL, at
/// REPEATABLE READ, `pg_current_snapshot()` is the transaction's snapshot).
pub async fn commit_point(conn: &impl ConnectionTrait) -> Result<CommitPoint, Error> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => "SELECT pg_current_snapshot()::text AS point",
        _ => "SELECT CAST(mark AS TEXT) AS point FROM change_clock",
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| Error::internal("no commit point"))?;
    let text: String = row.try_get("", "point")?;
    match backend {
        DatabaseBackend::Postgres => CommitPoint::from_postgres(&text),
        _ => text.parse().ok().map(CommitPoint::Counter),
    }
    .ok_or_else(|| Error::internal(format!("unreadable commit point {text:?}")))
}

/// Every execution whose last change `since` does not see, at most `limit` (in the
/// order of their marks, the index's: a round reads only what changed, however large
/// the table), as `view` shows it, with its data either way.
pub async fn changed_since(
    conn: &impl ConnectionTrait,
    since: &CommitPoint,
    view: View,
    limit: u64,
) -> Result<Vec<Changed>, Error> {
    let condition = unseen_by(since).unwrap_or_else(Condition::all);
    let select = select_changed(conn.get_database_backend(), view)
        .filter(condition)
        .order_by(mark(), Order::Asc)
        .limit(limit);
    let found = select.into_model::<MarkedRow>().all(conn).await?;
    found
        .into_iter()
        .map(|row| row.into_changed(view))
        .collect()
}

/// One keyset page (newest first, strictly after `after`) of the executions that match
/// `filter` and whose last change `since` does not see.
pub async fn changed_page(
    conn: &impl ConnectionTrait,
    filter: &ListFilter,
    since: &CommitPoint,
    after: Option<Cursor>,
    view: View,
    limit: u64,
) -> Result<Vec<Changed>, Error> {
    use execution::Column as C;
    let backend = conn.get_database_backend();
    let mut condition = filter_condition(filter, backend)?;
    if let Some(unseen) = unseen_by(since) {
        condition = condition.add(unseen);
    }
    if let Some(after) = after {
        condition = condition.add(after_condition(after, SortOrder::NewestFirst));
    }
    let found = select_changed(backend, view)
        .filter(condition)
        .order_by(C::CreatedAt, Order::Desc)
        .order_by(C::Seq, Order::Desc)
        .limit(limit)
        .into_model::<MarkedRow>()
        .all(conn)
        .await?;
    found
        .into_iter()
        .map(|row| row.into_changed(view))
        .collect()
}

/// The rows whose mark `point` does not see (`None`: every row).
fn unseen_by(point: &CommitPoint) -> Option<Condition> {
    match point {
        CommitPoint::Origin => None,
        CommitPoint::Counter(counter) => Some(Condition::all().add(mark().gt(*counter))),
        CommitPoint::Snapshot {
            xmin,
            xmax,
            in_progress,
        } => {
            let mut later = Condition::any().add(mark().gte(*xmax));
            if !in_progress.is_empty() {
                later = later.add(mark().is_in(in_progress.iter().copied()));
            }
            // The leading range lets the index on change_mark bound the scan.
            Some(Condition::all().add(mark().gte(*xmin)).add(later))
        }
    }
}

/// The column holding the mark of a row's last change.
fn mark() -> Expr {
    Expr::col((execution::Entity, Alias::new("change_mark")))
}

/// Execution rows as a feed needs them: BASIC with the data (to match filters on), or
/// FULL with the actions folded in; and the mark of the last change.
fn select_changed(backend: DatabaseBackend, view: View) -> sea_orm::Select<execution::Entity> {
    let select = match view {
        View::Basic => select_headers_and(true),
        View::Full => execution::Entity::find().expr_as(actions_json(backend), "actions_json"),
    };
    select.expr_as(mark(), "change_mark")
}

/// A row of [`select_changed`].
struct MarkedRow {
    row: execution::Model,
    actions_json: Option<String>,
    mark: i64,
}

impl FromQueryResult for MarkedRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            row: execution::Model::from_query_result(res, pre)?,
            // Absent from BASIC rows.
            actions_json: res.try_get(pre, "actions_json").ok().flatten(),
            mark: res.try_get(pre, "change_mark")?,
        })
    }
}

impl MarkedRow {
    fn into_changed(self, view: View) -> Result<Changed, Error> {
        let mark = self.mark;
        Ok(match view {
            View::Basic => Changed {
                execution: Execution {
                    header: rows::header(&self.row)?,
                    detail: None,
                },
                data: self.row.execution_data,
                mark,
            },
            View::Full => Changed {
                execution: unfold(RowWithActions {
                    row: self.row,
                    actions_json: self.actions_json,
                })?
                .into(),
                data: None,
                mark,
            },
        })
    }
}
