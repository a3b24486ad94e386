//! PostgreSQL's NOTIFY and LISTEN, for the relay of changes between replicas
//! (`crate::changes::relay`).

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use super::Database;
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
