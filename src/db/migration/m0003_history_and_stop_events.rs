//! The tables and columns of fleet control and history: each execution's stop events
//! (kept with it for its FULL form, and as `stop_subscriptions` rows that StopExecutions
//! finds it by), each action's last log, the execution's log budget, one row per history
//! event, and one row per StopExecutions job with a request id.

use sea_orm_migration::{prelude::*, schema::*};

/// This migration.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_history_and_stop_events"
    }
}

// The trait is declared through async_trait with an elided `SchemaManager` lifetime; naming
// it here would no longer match the declaration.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE. Executions
        // stored before this migration listen to no stop event and have no room for logs.
        for column in [
            ColumnDef::new("stop_events")
                .text()
                .not_null()
                .default("[]")
                .to_owned(),
            ColumnDef::new("log_budget")
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table("executions")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            ColumnDef::new("log").text().null().to_owned(),
            ColumnDef::new("log_bytes")
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table("actions")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        // StopExecutions walks one tenant's listeners of one stop event in `seq` order.
        manager
            .create_table(
                Table::create()
                    .table("stop_subscriptions")
                    .if_not_exists()
                    .col(string("user_key"))
                    .col(string("stop_event"))
                    .col(big_integer("execution_seq"))
                    .primary_key(
                        Index::create()
                            .col("user_key")
                            .col("stop_event")
                            .col("execution_seq"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("stop_subscriptions_execution")
                            .from("stop_subscriptions", "execution_seq")
                            .to("executions", "seq")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "stop_subscriptions_execution",
                "stop_subscriptions",
                &["execution_seq"],
            ))
            .await?;

        // History: keyed by execution, revision and the event's place in its change, the
        // order ListExecutionEvents pages in.
        manager
            .create_table(
                Table::create()
                    .table("execution_events")
                    .if_not_exists()
                    .col(big_integer("execution_seq"))
                    .col(big_integer("revision"))
                    .col(integer("ordinal"))
                    .col(big_integer("occurred_at"))
                    .col(string("kind"))
                    .col(string_null("node_id"))
                    .col(string_null("from_status"))
                    .col(string_null("to_status"))
                    .col(big_integer_null("scheduled_at"))
                    .col(text_null("note"))
                    .col(string("actor"))
                    .col(string_null("request_id"))
                    .primary_key(
                        Index::create()
                            .col("execution_seq")
                            .col("revision")
                            .col("ordinal"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("execution_events_execution")
                            .from("execution_events", "execution_seq")
                            .to("executions", "seq")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The executions a StopExecutions job stopped, found by its request id.
        manager
            .create_index(index(
                "execution_events_request_id",
                "execution_events",
                &["request_id", "execution_seq"],
            ))
            .await?;

        // One row per StopExecutions job with a request id: what it was asked, how far it
        // got, what it counted.
        manager
            .create_table(
                Table::create()
                    .table("stop_jobs")
                    .if_not_exists()
                    .col(string("user_key"))
                    .col(string("request_id"))
                    .col(string("stop_event"))
                    .col(text("filters"))
                    .col(text("reason"))
                    .col(big_integer("after_seq"))
                    .col(big_integer("matched_count"))
                    .col(big_integer("stopped_count"))
                    .col(boolean("finished"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .primary_key(Index::create().col("user_key").col("request_id"))
                    .to_owned(),
            )
            .await?;
        // Retention deletes finished executions by age.
        manager
            .create_index(index(
                "executions_status_updated",
                "executions",
                &["status", "updated_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["stop_jobs", "execution_events", "stop_subscriptions"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("executions_status_updated")
                    .table("executions")
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            ("actions", "log_bytes"),
            ("actions", "log"),
            ("executions", "log_budget"),
            ("executions", "stop_events"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `CREATE INDEX IF NOT EXISTS name ON table (columns)`.
fn index(name: &str, table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for column in columns {
        index.col(*column);
    }
    index.to_owned()
}
