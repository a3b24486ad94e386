//! The queries of StopExecutions: the executions a stop event reaches (through
//! `stop_subscriptions`, in `seq` order), many of them locked for a change at once, the
//! job records of calls with a request id, and what a job stopped (from the history).

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityName, EntityTrait, IdenStatic,
    Order, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::{event, execution, stop_job, stop_subscription};
use super::listing::filter_condition;
use super::load::{find_full_many, with_actions_of_many};
use super::rows;
use crate::domain::fleet::{StopJob, StopScope, StoppedExecution};
use crate::domain::listing::ListFilter;
use crate::domain::{EventKind, ExecutionId, ExecutionStatus, FullExecution};
use crate::error::{Error, OrInternal};

/// Condition selecting the RUNNING executions in `scope`.
fn in_scope(scope: &StopScope, backend: DatabaseBackend) -> Result<Condition, Error> {
    let filter = ListFilter {
        statuses: vec![ExecutionStatus::Running],
        user_key: Some(scope.user_key.clone()),
        execution_data: scope.filters.clone(),
        ..ListFilter::default()
    };
    let listening = Query::select()
        .column(stop_subscription::Column::ExecutionSeq)
        .from(stop_subscription::Entity)
        .and_where(stop_subscription::Column::UserKey.eq(scope.user_key.as_str()))
        .and_where(stop_subscription::Column::StopEvent.eq(scope.stop_event.as_str()))
        .to_owned();
    Ok(filter_condition(&filter, backend)?.add(execution::Column::Seq.in_subquery(listening)))
}

/// The next listeners of the scope's stop event after `after_seq` (at most `limit`, in
/// `seq` order) and, of those, the sequence numbers of the executions that are RUNNING
/// and match the scope's filters.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// The last listener looked at (`after_seq` when there was none).
    pub last_listener: i64,
    /// Listeners looked at.
    pub listeners: usize,
    /// Those RUNNING and matching, in `seq` order.
    pub matching: Vec<i64>,
}

/// The next batch of a stop job: two statements, each reading about `limit` rows however
/// many executions there are. First the tenant's next listeners of the stop event, by
/// their primary key; then, of those, the RUNNING ones that match, by the executions'
/// primary key. (One statement joining both let PostgreSQL's planner, on fresh tables,
/// scan every RUNNING execution for each batch.)
///
/// `lane` (`(lanes, index)`) keeps the listeners whose `seq` modulo `lanes` is `index`.
pub async fn stop_candidates(
    conn: &impl ConnectionTrait,
    scope: &StopScope,
    after_seq: i64,
    lane: (i64, i64),
    limit: u64,
) -> Result<Candidates, Error> {
    use sea_orm::sea_query::ExprTrait;
    use stop_subscription::Column as S;
    let (lanes, index) = lane;
    let mut select = stop_subscription::Entity::find()
        .select_only()
        .column(S::ExecutionSeq)
        .filter(S::UserKey.eq(scope.user_key.as_str()))
        .filter(S::StopEvent.eq(scope.stop_event.as_str()))
        .filter(S::ExecutionSeq.gt(after_seq));
    if lanes > 1 {
        select = select.filter(Expr::col(S::ExecutionSeq).modulo(lanes).eq(index));
    }
    let listeners: Vec<i64> = select
        .order_by(S::ExecutionSeq, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    let Some(&last_listener) = listeners.last() else {
        return Ok(Candidates {
            last_listener: after_seq,
            ..Candidates::default()
        });
    };
    let filter = ListFilter {
        statuses: vec![ExecutionStatus::Running],
        execution_data: scope.filters.clone(),
        ..ListFilter::default()
    };
    let matching = execution::Entity::find()
        .select_only()
        .column(execution::Column::Seq)
        .filter(execution::Column::Seq.is_in(listeners.iter().copied()))
        .filter(filter_condition(&filter, conn.get_database_backend())?)
        .order_by(execution::Column::Seq, Order::Asc)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(Candidates {
        last_listener,
        listeners: listeners.len(),
        matching,
    })
}

/// How many RUNNING executions are in `scope`, and the first `limit` of them (id, seq,
/// revision), from one snapshot when `conn` is a transaction.
pub async fn scope_now(
    conn: &impl ConnectionTrait,
    scope: &StopScope,
    limit: u64,
) -> Result<(i64, Vec<StoppedExecution>), Error> {
    use execution::Column as C;
    let condition = in_scope(scope, conn.get_database_backend())?;
    let count: Option<i64> = execution::Entity::find()
        .select_only()
        .expr(C::Seq.count())
        .filter(condition.clone())
        .into_tuple()
        .all(conn)
        .await?
        .pop();
    let listed: Vec<(uuid::Uuid, i64, i64, i64)> = execution::Entity::find()
        .select_only()
        .columns([C::Id, C::Seq, C::Revision, C::CreatedAt])
        .filter(condition)
        // Oldest first, as List orders them (creation times, not `seq`, follow commits).
        .order_by(C::CreatedAt, Order::Asc)
        .order_by(C::Seq, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    Ok((
        count.unwrap_or(0),
        listed
            .into_iter()
            .map(stopped_execution)
            .collect::<Result<_, _>>()?,
    ))
}

/// A row of (id, seq, revision, created_at) as a [`StoppedExecution`].
fn stopped_execution(
    (id, seq, revision, created_at): (uuid::Uuid, i64, i64, i64),
) -> Result<StoppedExecution, Error> {
    Ok(StoppedExecution {
        id: ExecutionId::new(id),
        seq,
        revision,
        created_at: rows::from_micros(created_at)?,
    })
}

/// The executions `seqs`, each with its actions, locked for a change until the
/// transaction ends (`FOR UPDATE` on PostgreSQL; on SQLite the caller holds the write
/// lock), in `seq` order. Rows that no longer exist are left out.
///
/// On PostgreSQL the locking statement reads the rows themselves (a row granted after a
/// wait is read as the writer left it) and a second statement their actions, as plain
/// rows: folding 2,000 action rows into JSON (as SQLite's reads do, see
/// `load::RowWithActions`) cost PostgreSQL about four times as much as reading them.
pub async fn load_many_for_change(
    conn: &impl ConnectionTrait,
    seqs: &[i64],
) -> Result<Vec<FullExecution>, Error> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let these = || Condition::all().add(execution::Column::Seq.is_in(seqs.iter().copied()));
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return find_full_many(conn, these(), false).await;
    }
    // The actions are read by a statement that starts after the locks are granted (see
    // `load_for_change`).
    let locked = execution::Entity::find()
        .filter(these())
        .order_by(execution::Column::Seq, Order::Asc)
        .lock_exclusive()
        .all(conn)
        .await?;
    with_actions_of_many(conn, locked).await
}

/// The executions that the job `request_id` of `user_key` stopped, oldest first (List's
/// order), at most
/// `limit`: those with an EXECUTION_STOPPED event that carries its request id. A stopped
/// execution never changes again, so its current revision is the one it was stopped at.
pub async fn stopped_by_job(
    conn: &impl ConnectionTrait,
    user_key: &str,
    request_id: &str,
    limit: u64,
) -> Result<Vec<StoppedExecution>, Error> {
    use execution::Column as C;
    // The kind as a literal: the index on request ids holds only EXECUTION_STOPPED
    // events, and a partial index serves a query only when it names the same constant.
    let stopped_kind = Expr::cust(format!(
        r#""{}"."{}" = '{}'"#,
        event::Entity.table_name(),
        event::Column::Kind.as_str(),
        EventKind::ExecutionStopped.as_str()
    ));
    let stopped = Query::select()
        .column(event::Column::ExecutionSeq)
        .from(event::Entity)
        .and_where(event::Column::RequestId.eq(request_id))
        .and_where(stopped_kind)
        .to_owned();
    let rows: Vec<(uuid::Uuid, i64, i64, i64)> = execution::Entity::find()
        .select_only()
        .columns([C::Id, C::Seq, C::Revision, C::CreatedAt])
        .filter(C::UserKey.eq(user_key))
        .filter(C::Seq.in_subquery(stopped))
        .order_by(C::CreatedAt, Order::Asc)
        .order_by(C::Seq, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    rows.into_iter().map(stopped_execution).collect()
}

/// The job `request_id` of `user_key`, if it exists.
pub async fn find_job(
    conn: &impl ConnectionTrait,
    user_key: &str,
    request_id: &str,
) -> Result<Option<StopJob>, Error> {
    let select = stop_job::Entity::find()
        .filter(stop_job::Column::UserKey.eq(user_key))
        .filter(stop_job::Column::RequestId.eq(request_id));
    let Some(row) = select.all(conn).await?.pop() else {
        return Ok(None);
    };
    Ok(Some(StopJob {
        scope: StopScope {
            user_key: row.user_key,
            stop_event: row.stop_event,
            filters: serde_json::from_str(&row.filters).or_internal()?,
        },
        reason: row.reason,
        request_id: row.request_id,
        after_seq: row.after_seq,
        matched: row.matched_count,
        stopped: row.stopped_count,
        finished: row.finished,
    }))
}

/// Records a new job (with no progress yet); false when a concurrent call recorded it
/// first.
pub async fn insert_job(
    conn: &impl ConnectionTrait,
    job: &StopJob,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, Error> {
    let at = rows::to_micros(now);
    let row = stop_job::ActiveModel {
        user_key: Set(job.scope.user_key.clone()),
        request_id: Set(job.request_id.clone()),
        stop_event: Set(job.scope.stop_event.clone()),
        filters: Set(serde_json::to_string(&job.scope.filters).or_internal()?),
        reason: Set(job.reason.clone()),
        after_seq: Set(job.after_seq),
        matched_count: Set(job.matched),
        stopped_count: Set(job.stopped),
        finished: Set(job.finished),
        created_at: Set(at),
        updated_at: Set(at),
    };
    match stop_job::Entity::insert(row).exec(conn).await {
        Ok(_) => Ok(true),
        Err(err) if super::is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Adds one batch to the job `request_id` of `user_key`: `counted` (executions matched,
/// executions stopped) to its counts, and `position` as the point it may resume from.
/// One UPDATE that adds in place, so that batches of several lanes (or calls) committing
/// in any order add up; it holds the job's row only from here to the commit.
pub async fn add_to_job(
    conn: &impl ConnectionTrait,
    user_key: &str,
    request_id: &str,
    counted: (i64, i64),
    position: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    use sea_orm::sea_query::ExprTrait;
    use stop_job::Column as C;
    let (matched, stopped) = counted;
    stop_job::Entity::update_many()
        .col_expr(C::MatchedCount, Expr::col(C::MatchedCount).add(matched))
        .col_expr(C::StoppedCount, Expr::col(C::StoppedCount).add(stopped))
        .col_expr(C::AfterSeq, Expr::value(position))
        .col_expr(C::UpdatedAt, Expr::value(rows::to_micros(now)))
        .filter(C::UserKey.eq(user_key))
        .filter(C::RequestId.eq(request_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks the job `request_id` of `user_key` finished: every lane went past its last
/// listener.
pub async fn finish_job(
    conn: &impl ConnectionTrait,
    user_key: &str,
    request_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    use stop_job::Column as C;
    stop_job::Entity::update_many()
        .col_expr(C::Finished, Expr::value(true))
        .col_expr(C::UpdatedAt, Expr::value(rows::to_micros(now)))
        .filter(C::UserKey.eq(user_key))
        .filter(C::RequestId.eq(request_id))
        .exec(conn)
        .await?;
    Ok(())
}
