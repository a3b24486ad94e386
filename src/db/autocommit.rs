//! Statements that commit by themselves: a connection of PostgreSQL's pool held by one
//! caller outside any transaction, for a write that is one statement (a start, see
//! `starts`). It saves the BEGIN and COMMIT round trips a transaction takes, and, unlike
//! a statement sent to the pool, it is taken first: the caller can give up while it waits
//! for it, and knows the time left once it has it.

use std::sync::Arc;

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, Postgres};
use sea_orm::{DbErr, RuntimeErr, Value};
use sea_query_sqlx::SqlxValues;

use super::Database;
use crate::error::Error;

/// A connection of PostgreSQL's pool, outside any transaction: each statement on it
/// commits by itself. It goes back to the pool when dropped.
pub struct Autocommit(PoolConnection<Postgres>);

impl Database {
    /// A connection for statements that commit by themselves (PostgreSQL only; SQLite's
    /// writes take turns in transactions). Waits for one as long as the pool's acquire
    /// timeout, then fails as the database being unavailable (`DatabaseUnavailable`).
    pub async fn autocommit(&self) -> Result<Autocommit, Error> {
        if !self.is_postgres() {
            return Err(Error::internal(
                "statements that commit by themselves are for PostgreSQL",
            ));
        }
        let conn = self
            .conn()
            .get_postgres_connection_pool()
            .acquire()
            .await
            // Whatever stops it getting a connection (the pool's timeout, a database that
            // refuses connections) is the database being unavailable.
            .map_err(|err| Error::from(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)))))?;
        Ok(Autocommit(conn))
    }
}

impl Autocommit {
    /// The row `sql` answers, if any, with `values` bound as `$1`, `$2`, ... (a prepared
    /// statement, kept by the connection for its next use).
    pub(super) async fn fetch_optional(
        &mut self,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Option<PgRow>, Failure> {
        sqlx::query_with(
            sqlx::AssertSqlSafe(sql),
            SqlxValues(sea_orm::sea_query::Values(values)),
        )
        .fetch_optional(&mut *self.0)
        .await
        .map_err(Failure::of)
    }
}

/// A statement that commits by itself and failed: the error, and whether it may have
/// committed all the same.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, classified as every database error is (`impl From<DbErr> for
    /// Error`).
    pub error: Error,
    /// False when the database refused the statement (it answered an error: nothing was
    /// written); true when its outcome is unknown (the connection broke before the answer
    /// came, or the answer could not be read), so that it may have committed.
    pub may_have_committed: bool,
}

impl Failure {
    /// The failure of a statement sqlx reports.
    pub(super) fn of(err: sqlx::Error) -> Self {
        let may_have_committed = err.as_database_error().is_none();
        Self {
            error: DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))).into(),
            may_have_committed,
        }
    }

    /// A failure after the statement committed: its answer was not understood.
    pub(super) fn after_commit(error: Error) -> Self {
        Self {
            error,
            may_have_committed: true,
        }
    }

    /// A failure before the statement was sent.
    pub(super) fn before_sending(error: Error) -> Self {
        Self {
            error,
            may_have_committed: false,
        }
    }
}
