//! Writing executions: insert a new one with its actions, take its creation time, and save
//! a change guarded by the revision it was made from.

use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QuerySelect,
    SqlErr, Statement,
};

use super::entity::{action, event, execution, stop_subscription};
use super::rows;
use crate::domain::{ActionState, Event, FullExecution, Provenance};
use crate::error::Error;

/// Rows per multi-row INSERT of actions; far below both databases' parameter limits.
const ACTION_INSERT_CHUNK: usize = 500;

/// Inserts a new execution and its actions, and returns its sequence number; `None` when
/// its tenant already has an execution with the same request id.
pub async fn insert_execution(
    conn: &impl ConnectionTrait,
    execution: &FullExecution,
    request_id: Option<String>,
) -> Result<Option<i64>, Error> {
    let row = rows::new_execution_row(execution, request_id)?;
    let seq = match execution::Entity::insert(row).exec(conn).await {
        Ok(inserted) => inserted.last_insert_id,
        Err(err) if is_unique_violation(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let actions: Vec<action::ActiveModel> = execution
        .detail
        .actions
        .iter()
        .map(|(node_id, state)| rows::action_row(seq, node_id, state))
        .collect();
    for chunk in actions.chunks(ACTION_INSERT_CHUNK) {
        action::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await?;
    }
    if !execution.detail.stop_events.is_empty() {
        let subscriptions =
            execution
                .detail
                .stop_events
                .iter()
                .map(|stop_event| stop_subscription::ActiveModel {
                    user_key: sea_orm::ActiveValue::Set(execution.header.user_key.clone()),
                    stop_event: sea_orm::ActiveValue::Set(stop_event.clone()),
                    execution_seq: sea_orm::ActiveValue::Set(seq),
                });
        stop_subscription::Entity::insert_many(subscriptions)
            .exec(conn)
            .await?;
    }
    Ok(Some(seq))
}

/// Records the events of one change of execution `seq`, made `by` a caller, in the
/// caller's transaction (so the history commits or rolls back with the change).
pub async fn insert_events(
    conn: &impl ConnectionTrait,
    seq: i64,
    events: &[Event],
    by: &Provenance,
) -> Result<(), Error> {
    let rows: Vec<event::ActiveModel> = events
        .iter()
        .enumerate()
        .map(|(ordinal, e)| rows::event_row(seq, ordinal as i32, e, by))
        .collect();
    for chunk in rows.chunks(ACTION_INSERT_CHUNK) {
        event::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Key of the PostgreSQL advisory lock that orders creations.
const CREATION_LOCK: i64 = 0x6578_6563_6372_6561; // "exec" "crea"

/// The creation time of a new execution, taken inside the write transaction so that
/// creation times increase in commit order: list pages walk `created_at`, and a row that
/// committed after a page was read must not sort before that page's cursor. On
/// PostgreSQL, creations (across replicas) take turns on an advisory lock held until
/// commit; on SQLite the caller already holds the only write lock. The time is `now`, or
/// 1 µs after the newest execution if the clock is behind it.
pub async fn creation_time(
    conn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    let backend = conn.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1)",
            [CREATION_LOCK.into()],
        ))
        .await?;
    }
    let newest: Option<i64> = execution::Entity::find()
        .select_only()
        .expr(execution::Column::CreatedAt.max())
        .into_tuple()
        // `.all()`, not `.one()`: no `LIMIT ?` to make SQLite recompile it (see `load`).
        .all(conn)
        .await?
        .pop()
        .flatten();
    let now_us = rows::to_micros(now);
    match newest {
        Some(newest) if newest >= now_us => rows::from_micros(newest + 1),
        _ => Ok(now),
    }
}

/// True when a write failed on a unique index.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Saves a change made by the domain: the header (only if the stored revision is still the
/// one the change was made from) and the new state of each changed action. Actions that
/// reached the same state together (as in a stop) are written with one statement.
pub async fn save_change(
    conn: &impl ConnectionTrait,
    execution: &FullExecution,
    changed_actions: &[String],
) -> Result<(), Error> {
    use execution::Column as C;
    let h = &execution.header;
    let saved = execution::Entity::update_many()
        .col_expr(C::Status, Expr::value(h.status.as_str()))
        .col_expr(C::StopReason, Expr::value(h.stop_reason.clone()))
        .col_expr(C::Revision, Expr::value(h.revision))
        .col_expr(C::IdleCount, Expr::value(h.counts.idle))
        .col_expr(C::ScheduledCount, Expr::value(h.counts.scheduled))
        .col_expr(C::RunningCount, Expr::value(h.counts.running))
        .col_expr(C::CompletedCount, Expr::value(h.counts.completed))
        .col_expr(C::FailedCount, Expr::value(h.counts.failed))
        .col_expr(C::StoppedCount, Expr::value(h.counts.stopped))
        .col_expr(C::UpdatedAt, Expr::value(rows::to_micros(h.updated_at)))
        .filter(C::Seq.eq(h.seq))
        .filter(C::Revision.eq(h.revision - 1))
        .exec(conn)
        .await?;
    if saved.rows_affected != 1 {
        // The row lock makes this unreachable; if it ever happens, refuse to write rather
        // than lose a change.
        return Err(Error::internal(format!(
            "execution {} moved past revision {} while locked",
            h.id,
            h.revision - 1
        )));
    }

    let mut groups: Vec<(&ActionState, Vec<&str>)> = Vec::new();
    for node_id in changed_actions {
        let Some(state) = execution.detail.actions.get(node_id) else {
            return Err(Error::internal(format!(
                "changed action {node_id} is unknown"
            )));
        };
        match groups.iter_mut().find(|(s, _)| *s == state) {
            Some((_, ids)) => ids.push(node_id),
            None => groups.push((state, vec![node_id])),
        }
    }
    for (state, node_ids) in groups {
        let mut values = rows::action_row(h.seq, "", state);
        values.execution_seq = NotSet;
        values.node_id = NotSet;
        let updated = action::Entity::update_many()
            .set(values)
            .filter(action::Column::ExecutionSeq.eq(h.seq))
            .filter(action::Column::NodeId.is_in(node_ids.iter().copied()))
            .exec(conn)
            .await?;
        if updated.rows_affected != node_ids.len() as u64 {
            return Err(Error::internal(format!(
                "execution {}: {} of {} action rows updated",
                h.id,
                updated.rows_affected,
                node_ids.len()
            )));
        }
    }
    Ok(())
}
