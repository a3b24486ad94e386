//! Locks taken from outside the server, to make a call of it wait.

use sea_orm::{ConnectionTrait, TransactionTrait};

use super::{Backend, TestServer};

/// A lock held by a transaction of its own; released when dropped.
pub struct HeldLock {
    // In this order: the transaction (and its lock) goes first, then its pool.
    _transaction: sea_orm::DatabaseTransaction,
    _connection: sea_orm::DatabaseConnection,
}

/// Holds the database's write lock (SQLite) or the execution's row lock (PostgreSQL) from
/// outside the server, so a change of it waits, until the lock is dropped.
pub async fn hold_lock(server: &TestServer, execution_id: &str) -> HeldLock {
    let connection = sea_orm::Database::connect(server.database_url())
        .await
        .unwrap();
    let transaction = connection.begin().await.unwrap();
    let statement = if server.backend() == Backend::Postgres {
        format!("SELECT 1 FROM executions WHERE id = '{execution_id}' FOR UPDATE")
    } else {
        // Any write statement takes SQLite's one write lock, even one that matches no row.
        "DELETE FROM executions WHERE seq = -1".to_owned()
    };
    transaction.execute_unprepared(&statement).await.unwrap();
    HeldLock {
        _transaction: transaction,
        _connection: connection,
    }
}
