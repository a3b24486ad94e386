//! Retention: deleting finished executions older than a cutoff, with their actions, stop
//! subscriptions and history, a small batch per transaction.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use super::entity::{action, event, execution, stop_subscription};
use super::rows;
use crate::domain::ExecutionStatus;
use crate::error::Error;

/// Deletes at most `limit` executions that finished (COMPLETED, FAILED or STOPPED) before
/// `cutoff`, oldest first, and everything stored with them; answers how many. The rows
/// that depend on an execution are deleted explicitly rather than left to the foreign
/// keys' cascade, which SQLite applies only on connections that enabled it.
pub async fn delete_finished_before(
    conn: &impl ConnectionTrait,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<u64, Error> {
    use execution::Column as C;
    let finished = ExecutionStatus::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str());
    let seqs: Vec<i64> = execution::Entity::find()
        .select_only()
        .column(C::Seq)
        .filter(C::Status.is_in(finished))
        .filter(C::UpdatedAt.lt(rows::to_micros(cutoff)))
        .order_by(C::UpdatedAt, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    if seqs.is_empty() {
        return Ok(0);
    }
    event::Entity::delete_many()
        .filter(event::Column::ExecutionSeq.is_in(seqs.iter().copied()))
        .exec(conn)
        .await?;
    stop_subscription::Entity::delete_many()
        .filter(stop_subscription::Column::ExecutionSeq.is_in(seqs.iter().copied()))
        .exec(conn)
        .await?;
    action::Entity::delete_many()
        .filter(action::Column::ExecutionSeq.is_in(seqs.iter().copied()))
        .exec(conn)
        .await?;
    let deleted = execution::Entity::delete_many()
        .filter(C::Seq.is_in(seqs.iter().copied()))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}

/// Key of the PostgreSQL advisory lock that lets one replica at a time delete.
const RETENTION_LOCK: i64 = 0x6578_6563_7265_746e; // "exec" "retn"

/// True when this transaction may delete: on PostgreSQL it holds the retention lock until
/// it ends (another replica deleting now makes this false, and this round is skipped);
/// SQLite has one server per file.
pub async fn take_retention_turn(conn: &impl ConnectionTrait) -> Result<bool, Error> {
    let backend = conn.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        return Ok(true);
    }
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_try_advisory_xact_lock($1) AS taken",
            [RETENTION_LOCK.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "taken")?,
        None => false,
    })
}
