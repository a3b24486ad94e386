//! Cheaper history rows: every change writes one row per event (21 for a stop of 20
//! actions), so what each row costs to insert is most of what a stop costs the database.
//!
//! - **No foreign key from `execution_events` to `executions`.** PostgreSQL checks a
//!   foreign key with a trigger per inserted row (a lookup and a `FOR KEY SHARE` lock on
//!   the execution): measured on 210,000 rows, 4.5 s with it, 2.4 s without. The
//!   reference holds by construction: events are inserted only by the transaction that
//!   changed their execution, holding its row, and retention deletes an execution's
//!   events with it explicitly (`db::retention`). SQLite cannot drop a constraint, so
//!   there the table is rebuilt without it, rows kept.
//! - **The index that finds what a StopExecutions job stopped holds only
//!   EXECUTION_STOPPED events** (one per stopped execution instead of one per event).
//!   Queries name the kind as a literal (`db::fleet::stopped_by_job`), as a partial
//!   index requires on both databases.

use sea_orm_migration::prelude::*;

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_lighter_history_rows"
    }
}

/// The partial index, the same on both databases.
const STOPPED_BY_REQUEST: &str = "CREATE INDEX execution_events_request_id \
     ON execution_events (request_id, execution_seq) WHERE kind = 'EXECUTION_STOPPED'";

const POSTGRES: &[&str] = &[
    "ALTER TABLE execution_events DROP CONSTRAINT execution_events_execution",
    "DROP INDEX execution_events_request_id",
    STOPPED_BY_REQUEST,
];

/// The table as m0003 created it (same columns and types), without the foreign key.
const SQLITE: &[&str] = &[
    r#"CREATE TABLE "execution_events_new" (
        "execution_seq" integer NOT NULL,
        "revision" integer NOT NULL,
        "ordinal" integer NOT NULL,
        "occurred_at" integer NOT NULL,
        "kind" varchar NOT NULL,
        "node_id" varchar NULL,
        "from_status" varchar NULL,
        "to_status" varchar NULL,
        "scheduled_at" integer NULL,
        "note" text NULL,
        "actor" varchar NOT NULL,
        "request_id" varchar NULL,
        PRIMARY KEY ("execution_seq", "revision", "ordinal")
    )"#,
    r#"INSERT INTO "execution_events_new" SELECT "execution_seq", "revision", "ordinal",
        "occurred_at", "kind", "node_id", "from_status", "to_status", "scheduled_at", "note",
        "actor", "request_id" FROM "execution_events""#,
    r#"DROP TABLE "execution_events""#,
    r#"ALTER TABLE "execution_events_new" RENAME TO "execution_events""#,
    STOPPED_BY_REQUEST,
];

const DOWN: &[&str] = &[
    "DROP INDEX execution_events_request_id",
    "CREATE INDEX execution_events_request_id ON execution_events (request_id, execution_seq)",
];

const POSTGRES_FOREIGN_KEY: &str = "ALTER TABLE execution_events \
     ADD CONSTRAINT execution_events_execution FOREIGN KEY (execution_seq) \
     REFERENCES executions (seq) ON DELETE CASCADE";

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => super::run_statements(manager, POSTGRES).await,
            // One call, so one connection: a pooled connection that loaded the schema
            // before another one dropped the old table refuses the rename ("there is
            // already another table or index with this name").
            _ => super::run_statements(manager, &[SQLITE.join(";\n").as_str()]).await,
        }
    }

    /// Restores the full index, and on PostgreSQL the foreign key (SQLite's table keeps
    /// its rebuilt form).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::run_statements(manager, DOWN).await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            super::run_statements(manager, &[POSTGRES_FOREIGN_KEY]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, ConnectionTrait};
    use sea_orm_migration::MigratorTrait;

    use crate::db::migration::{Migrator, first_value};

    async fn one_number(conn: &impl ConnectionTrait, sql: &str) -> i64 {
        first_value(conn, sql).await
    }

    /// On SQLite the table is rebuilt on a pool of several connections (where a rename
    /// on another connection than the drop's failed), its rows kept, without the foreign
    /// key and with the partial index.
    #[tokio::test]
    async fn sqlite_history_is_rebuilt_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(4)
            .min_connections(4)
            .map_sqlx_sqlite_opts(|opts| opts.foreign_keys(false));
        let conn = sea_orm::Database::connect(options).await.unwrap();
        Migrator::up(&conn, Some(4)).await.unwrap();
        conn.execute_unprepared(
            "INSERT INTO execution_events (execution_seq, revision, ordinal, occurred_at, kind, \
             actor, request_id) VALUES (7, 1, 0, 100, 'EXECUTION_STARTED', 'ann', NULL), \
             (7, 2, 0, 200, 'EXECUTION_STOPPED', 'ann', 'job-1')",
        )
        .await
        .unwrap();

        Migrator::up(&conn, None).await.unwrap();

        let kept = "SELECT count(*) FROM execution_events WHERE execution_seq = 7";
        assert_eq!(one_number(&conn, kept).await, 2);
        let stopped = "SELECT execution_seq FROM execution_events \
                       WHERE request_id = 'job-1' AND kind = 'EXECUTION_STOPPED'";
        assert_eq!(one_number(&conn, stopped).await, 7);
        let foreign_keys = "SELECT count(*) FROM pragma_foreign_key_list('execution_events')";
        assert_eq!(one_number(&conn, foreign_keys).await, 0);
        let partial = "SELECT count(*) FROM sqlite_master WHERE name = \
                       'execution_events_request_id' AND sql LIKE '%WHERE kind%'";
        assert_eq!(one_number(&conn, partial).await, 1);
    }
}
