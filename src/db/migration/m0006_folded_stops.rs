//! A stop's history in one row: `execution_events.folded_actions` holds, on the
//! EXECUTION_STOPPED row of a change, the ACTION_STOPPED events of that change (one per
//! action it stopped, 20 for a stop of 20 unfinished actions), which are then not rows of
//! their own. Reads unfold them (`db::history`), so ListExecutionEvents answers the same
//! events as before. Rows written before this migration stay as they are.
//!
//! Down unfolds every folded row back into rows of their own, then drops the column.

use sea_orm_migration::prelude::*;

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_folded_stops"
    }
}

const UP: &[&str] = &["ALTER TABLE execution_events ADD COLUMN folded_actions text NULL"];

/// The folded events as rows of their own: `[node_id, from_status]` each, the `n`
/// events before the row's own ordinal, to STOPPED, with the row's revision, time, actor
/// and request id.
const POSTGRES_DOWN: &[&str] = &[
    r#"INSERT INTO execution_events (execution_seq, revision, ordinal, occurred_at, kind,
        node_id, from_status, to_status, actor, request_id)
     SELECT e.execution_seq, e.revision,
        e.ordinal - json_array_length(e.folded_actions::json) + (f.place - 1)::integer,
        e.occurred_at, 'ACTION_STOPPED', f.action->>0, f.action->>1, 'STOPPED', e.actor,
        e.request_id
     FROM execution_events e,
        json_array_elements(e.folded_actions::json) WITH ORDINALITY AS f(action, place)
     WHERE e.folded_actions IS NOT NULL"#,
    "ALTER TABLE execution_events DROP COLUMN folded_actions",
];

const SQLITE_DOWN: &[&str] = &[
    r#"INSERT INTO execution_events (execution_seq, revision, ordinal, occurred_at, kind,
        node_id, from_status, to_status, actor, request_id)
     SELECT e.execution_seq, e.revision,
        e.ordinal - json_array_length(e.folded_actions) + f.key,
        e.occurred_at, 'ACTION_STOPPED', f.value ->> 0, f.value ->> 1, 'STOPPED', e.actor,
        e.request_id
     FROM execution_events e, json_each(e.folded_actions) AS f
     WHERE e.folded_actions IS NOT NULL"#,
    "ALTER TABLE execution_events DROP COLUMN folded_actions",
];

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::run_statements(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                super::run_statements(manager, POSTGRES_DOWN).await
            }
            _ => super::run_statements(manager, SQLITE_DOWN).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;

    use crate::db::migration::{Migrator, first_value};

    /// Down gives every folded event a row of its own, at its place in its change.
    #[tokio::test]
    async fn down_unfolds_every_stop() {
        let conn = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        // Up to this migration (the sixth), so that down undoes this one.
        Migrator::up(&conn, Some(6)).await.unwrap();
        conn.execute_unprepared(
            "INSERT INTO execution_events (execution_seq, revision, ordinal, occurred_at, kind, \
             actor, request_id, folded_actions) VALUES \
             (7, 1, 0, 100, 'EXECUTION_STARTED', 'ann', NULL, NULL), \
             (7, 2, 2, 200, 'EXECUTION_STOPPED', 'ann', 'job-1', \
              '[[\"a\",\"RUNNING\"],[\"b\",\"IDLE\"]]')",
        )
        .await
        .unwrap();

        Migrator::down(&conn, Some(1)).await.unwrap();

        let rows: String = first_value(
            &conn,
            "SELECT group_concat(line, ' ') FROM (SELECT revision || ':' || ordinal || ':' || \
             kind || ':' || ifnull(node_id, '') || ':' || ifnull(from_status, '') || ':' || \
             ifnull(to_status, '') || ':' || occurred_at || ':' || ifnull(request_id, '') \
             AS line FROM execution_events ORDER BY revision, ordinal)",
        )
        .await;
        assert_eq!(
            rows,
            "1:0:EXECUTION_STARTED::::100: \
             2:0:ACTION_STOPPED:a:RUNNING:STOPPED:200:job-1 \
             2:1:ACTION_STOPPED:b:IDLE:STOPPED:200:job-1 \
             2:2:EXECUTION_STOPPED::::200:job-1"
        );
    }
}
