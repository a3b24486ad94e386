//! Commit-order marks for WatchExecutions' cursors.
//!
//! Every insert or update of an execution row stamps the row's `change_mark` with a value
//! that tells, for any snapshot of the database, whether that snapshot sees the change:
//!
//! - **PostgreSQL**: the writing transaction's id (`pg_current_xact_id()`, 64 bits, never
//!   wraps). A snapshot (`pg_current_snapshot()`) sees it exactly when the transaction had
//!   committed when the snapshot was taken, however long it ran: a transaction that began
//!   before a cursor was handed out and committed after it is in the cursor's list of
//!   transactions in progress, so a resume from that cursor still finds its rows.
//! - **SQLite**: a counter in the one-row table `change_clock`, bumped by every stamped row.
//!   SQLite has one writer at a time, so the counter's order is the commit order and a
//!   snapshot sees every mark up to the counter's value it reads.
//!
//! Triggers do the stamping, so no write path (start, update, stop, bulk stop) can forget
//! it. Rows written before this migration keep mark 0, seen by every snapshot.

use sea_orm_migration::prelude::*;

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_change_marks"
    }
}

const POSTGRES: &[&str] = &[
    "ALTER TABLE executions ADD COLUMN change_mark BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX idx_executions_change_mark ON executions (change_mark)",
    "CREATE FUNCTION executions_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       NEW.change_mark := pg_current_xact_id()::text::bigint;
       RETURN NEW;
     END
     $$",
    "CREATE TRIGGER executions_stamp_change BEFORE INSERT OR UPDATE ON executions
     FOR EACH ROW EXECUTE FUNCTION executions_stamp_change()",
];

const SQLITE: &[&str] = &[
    "ALTER TABLE executions ADD COLUMN change_mark BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX idx_executions_change_mark ON executions (change_mark)",
    "CREATE TABLE change_clock (id INTEGER PRIMARY KEY CHECK (id = 1), mark BIGINT NOT NULL)",
    "INSERT INTO change_clock (id, mark) VALUES (1, 0)",
    // Every UPDATE is stamped, as on PostgreSQL. The inner UPDATE changes change_mark, so
    // the WHEN clause keeps it from firing the trigger again (recursive triggers are off
    // in SQLite by default anyway).
    "CREATE TRIGGER executions_stamp_insert AFTER INSERT ON executions
     BEGIN
       UPDATE change_clock SET mark = mark + 1;
       UPDATE executions SET change_mark = (SELECT mark FROM change_clock) WHERE seq = NEW.seq;
     END",
    "CREATE TRIGGER executions_stamp_update
     AFTER UPDATE ON executions WHEN NEW.change_mark = OLD.change_mark
     BEGIN
       UPDATE change_clock SET mark = mark + 1;
       UPDATE executions SET change_mark = (SELECT mark FROM change_clock) WHERE seq = NEW.seq;
     END",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER executions_stamp_change ON executions",
    "DROP FUNCTION executions_stamp_change()",
    "DROP INDEX idx_executions_change_mark",
    "ALTER TABLE executions DROP COLUMN change_mark",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER executions_stamp_update",
    "DROP TRIGGER executions_stamp_insert",
    "DROP TABLE change_clock",
    "DROP INDEX idx_executions_change_mark",
    "ALTER TABLE executions DROP COLUMN change_mark",
];

async fn run(manager: &SchemaManager<'_>, postgres: &[&str], sqlite: &[&str]) -> Result<(), DbErr> {
    let statements = match manager.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => postgres,
        _ => sqlite,
    };
    super::run_statements(manager, statements).await
}

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES, SQLITE).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_DOWN, SQLITE_DOWN).await
    }
}
