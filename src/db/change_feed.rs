//! The PostgreSQL side of the change feed between replicas: NOTIFY after commit, a
//! LISTEN connection, and reading many executions at once for watchers.

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Statement};

use super::Database;
use super::entity::execution;
use super::store::with_actions_of_many;
use crate::domain::{ExecutionId, FullExecution};
use crate::error::Error;

/// A NOTIFY payload is limited to 8000 bytes; stay well below.
pub const MAX_PAYLOAD_BYTES: usize = 7_000;

/// Sends one notification on `channel` (its own short transaction, outside any write).
pub async fn notify(db: &Database, channel: &str, payload: &str) -> Result<(), Error> {
    db.conn()
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [channel.into(), payload.into()],
        ))
        .await?;
    Ok(())
}

/// A dedicated connection listening on `channel`.
pub async fn listen(db: &Database, channel: &str) -> Result<PgListener, Error> {
    let pool = db.conn().get_postgres_connection_pool();
    let lost = |err| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(err)));
    let mut listener = PgListener::connect_with(pool).await.map_err(lost)?;
    listener.listen(channel).await.map_err(lost)?;
    Ok(listener)
}

/// The current full state of each of `ids` that exists, read in one snapshot with one
/// query for the rows and one for their actions.
pub async fn load_many(db: &Database, ids: &[ExecutionId]) -> Result<Vec<FullExecution>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let txn = db.begin_read(None).await?;
    let found = execution::Entity::find()
        .filter(execution::Column::Id.is_in(ids.iter().map(|id| id.as_uuid())))
        .all(&txn)
        .await?;
    let loaded = with_actions_of_many(&txn, found).await?;
    txn.commit().await?;
    Ok(loaded)
}
